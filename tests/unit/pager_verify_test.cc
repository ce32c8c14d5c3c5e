// The pager and the SHA-256 chain: a blob opened with the wrong anchor (table
// digest) is refused; a v2 chunk whose XXH3 was made to match but whose
// SHA-256 does not is EIO, never served and never cached (chunk cache, cache
// layer); decoded chunks are keyed by the table digest.
#include "unit/pager_fixture.h"

#include "support/blob_forgery.h"

namespace pagerfs {
namespace {

class PagerVerifyTest : public PagerTest {
 protected:
  // A blob file claiming `content` (its digest, its chunk 1 SHA-256) whose
  // chunk 1 holds other bytes, with their XXH3: an untrusted store's lie.
  std::vector<std::byte> forged_copy(const std::vector<std::byte>& content, const Digest& genuine) {
    auto other = content;
    other[kChunk + 100] ^= std::byte{0xff};
    const Digest d = add_blob(other);
    std::vector<std::byte> file = files_[d];
    files_.erase(d);
    auto reader = BlobReader::open(memory_random_access_file(files_[genuine])).value();
    testing::forge_chunk_sha256(file, 1, reader->chunks()[1].sha256);
    testing::forge_header_digest(file, genuine);
    return file;
  }
};

TEST_F(PagerVerifyTest, AForgedChunkIsEioNeverServedNeverCached) {
  const auto content = testing::random_bytes(3 * kChunk);
  const Digest d = add_blob(content);
  const auto forged = forged_copy(content, d);
  store_->add(d, forged);
  PagerOptions options;
  options.readahead = kChunk;
  options.verify_sha256 = true;
  auto pager = make_pager(options, /*cached=*/true);
  auto blob = pager->open(d);
  ASSERT_TRUE(blob) << blob.error().message();
  ASSERT_TRUE(pager->read(*blob.value(), 0, 100)) << "chunk 0 is genuine";
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto got = pager->read(*blob.value(), kChunk, 100);
    ASSERT_FALSE(got) << "forged bytes served";
    EXPECT_EQ(to_errno(got.error()), EIO);
    EXPECT_NE(got.error().message().find("SHA-256"), std::string::npos) << got.error().message();
  }
  const PagerStats stats = pager->stats();
  EXPECT_EQ(stats.chunk_cache_misses, 3u) << "chunk 1 was never in the chunk cache";
  EXPECT_EQ(stats.chunk_cache_bytes, kChunk) << "only chunk 0 is cached";
  EXPECT_EQ(stats.integrity_retries, 2u) << "each failure re-read the frame below the caches once";
  EXPECT_EQ(stats.integrity_repairs, 0u);
  const std::set<uint64_t> held = cache_->present(d);
  for (uint64_t s : frame_sectors(*blob.value(), 1)) {
    if (frame_sectors(*blob.value(), 0).contains(s)) continue;  // shared with the genuine chunk 0
    EXPECT_FALSE(held.contains(s)) << "the cache layer kept sector " << s << " of the forged frame";
  }
}

TEST_F(PagerVerifyTest, WithXxh3OnlyTheForgeryWouldBeServed) {
  // The other side of the test above: it fails if the SHA-256 check is off.
  const auto content = testing::random_bytes(3 * kChunk);
  const Digest d = add_blob(content);
  store_->add(d, forged_copy(content, d));
  PagerOptions options;
  options.verify_sha256 = false;
  auto pager = make_pager(options);
  auto blob = pager->open(d).value();
  auto got = pager->read(*blob, kChunk, 200);
  ASSERT_TRUE(got);
  EXPECT_FALSE(got.value() == expected(content, kChunk, 200));
}

TEST_F(PagerVerifyTest, TheWrongAnchorIsEioAndNotKeptOpen) {
  const auto content = testing::random_bytes(2 * kChunk + 42);
  const Digest d = add_blob(content);
  auto pager = make_pager();
  const Digest anchor = BlobReader::open(memory_random_access_file(files_[d])).value()->table_digest();
  Digest wrong = anchor;
  auto bytes = wrong.bytes();
  bytes[0] ^= 1;
  wrong = Digest(bytes);

  auto refused = pager->open(d, wrong);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), errc::corrupt_blob);
  EXPECT_EQ(to_errno(refused.error()), EIO);
  EXPECT_NE(refused.error().message().find("table digest"), std::string::npos) << refused.error().message();
  EXPECT_EQ(pager->stats().anchor_mismatches, 1u);
  EXPECT_EQ(pager->stats().open_blobs, 0u);

  auto blob = pager->open(d, anchor);
  ASSERT_TRUE(blob) << blob.error().message();
  EXPECT_EQ(blob.value()->table_digest(), anchor);
  auto got = pager->read(*blob.value(), 0, content.size());
  ASSERT_TRUE(got);
  EXPECT_TRUE(got.value() == expected(content, 0, content.size()));
  // While it is open, the wrong anchor is still refused, the right one shares it.
  EXPECT_FALSE(pager->open(d, wrong));
  EXPECT_EQ(pager->stats().anchor_mismatches, 2u);
  EXPECT_EQ(pager->open(d, anchor).value(), blob.value());
  EXPECT_EQ(pager->open(d).value(), blob.value());
}

TEST_F(PagerVerifyTest, AForgedSeekTableFailsTheAnchorEvenWhenItsChunksCheckOut) {
  // The store swaps in a consistent forgery: its own seek table, every
  // checksum and SHA-256 of its own bytes. Only the anchor catches it.
  const auto content = testing::random_bytes(2 * kChunk);
  const Digest d = add_blob(content);
  const Digest anchor = BlobReader::open(memory_random_access_file(files_[d])).value()->table_digest();
  auto other = content;
  other[10] ^= std::byte{1};
  const Digest o = add_blob(other);
  auto file = files_[o];
  testing::forge_header_digest(file, d);
  store_->add(d, file);
  auto pager = make_pager();
  auto refused = pager->open(d, anchor);
  ASSERT_FALSE(refused);
  EXPECT_EQ(to_errno(refused.error()), EIO);
  EXPECT_EQ(pager->stats().anchor_mismatches, 1u);
  EXPECT_EQ(pager->stats().integrity_retries, 1u) << "read once more from below the caches first";
}

TEST_F(PagerVerifyTest, DecodedChunksAreKeyedByTheTableDigest) {
  // Chunk 1 of the genuine blob is decoded and cached; then the store holds a
  // forgery under the same content digest. A reader anchoring the forged
  // table must not get the genuine table's cached chunk, nor the other way.
  const auto content = testing::random_bytes(3 * kChunk);
  const Digest d = add_blob(content);
  const auto genuine_file = files_[d];
  const auto forged = forged_copy(content, d);
  const Digest forged_anchor = BlobReader::open(memory_random_access_file(forged)).value()->table_digest();
  PagerOptions options;
  options.verify_sha256 = true;
  options.readahead = kChunk;
  auto pager = make_pager(options);
  auto genuine = pager->open(d).value();
  ASSERT_TRUE(pager->read(*genuine, kChunk, 100));
  store_->add(d, forged);
  auto other = pager->open(d, forged_anchor);
  ASSERT_TRUE(other) << other.error().message();
  EXPECT_NE(other.value(), genuine) << "another table: another PagedBlob";
  const uint64_t misses = pager->stats().chunk_cache_misses;
  auto got = pager->read(*other.value(), kChunk, 100);
  EXPECT_FALSE(got) << "served the genuine table's cached chunk to the forged table's reader";
  EXPECT_EQ(pager->stats().chunk_cache_misses, misses + 1);
  // The genuine blob still serves its cached chunk.
  auto again = pager->read(*genuine, kChunk, 100);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again.value() == expected(content, kChunk, 100));
}

}  // namespace
}  // namespace pagerfs
