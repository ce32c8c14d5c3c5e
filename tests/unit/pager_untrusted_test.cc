// The pager over a stack whose store is untrusted (what a remote is): every
// chunk is checked by SHA-256 whatever the options say; nothing the store
// returns is cached before it verified; an unanchored open (the blobs view)
// checks the whole content against the blob's name; v1 blobs are refused.
#include "unit/pager_fixture.h"

#include "support/blob_forgery.h"

namespace pagerfs {
namespace {

class PagerUntrustedTest : public PagerTest {
 protected:
  void SetUp() override { store_->set_trusted(false); }

  // A pager with the cache layer over the untrusted store; XXH3 only asked.
  std::shared_ptr<Pager> make_untrusted_pager() {
    PagerOptions options;
    options.readahead = kChunk;
    options.verify_sha256 = false;
    return make_pager(options, /*cached=*/true);
  }

  Digest table_digest_of(const Digest& d) {
    return BlobReader::open(memory_random_access_file(files_[d])).value()->table_digest();
  }
};

TEST_F(PagerUntrustedTest, VerifiedRunsAndTheAnchoredTableAreCachedAndServeASecondPagerAlone) {
  const auto content = testing::random_bytes(5 * kChunk + 123);
  const Digest d = add_blob(content);
  {
    auto pager = make_untrusted_pager();
    auto blob = pager->open(d, table_digest_of(d));
    ASSERT_TRUE(blob) << blob.error().message();
    auto got = pager->read(*blob.value(), 0, content.size());
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_TRUE(got.value() == expected(content, 0, content.size()));
  }
  EXPECT_FALSE(cache_->fills().empty()) << "verified sectors were not cached";
  // Everything the reads needed is now in the cache: the store is not asked.
  const size_t store_reads = store_->reads().size();
  auto pager = make_untrusted_pager();
  auto blob = pager->open(d, table_digest_of(d));
  ASSERT_TRUE(blob) << blob.error().message();
  auto again = pager->read(*blob.value(), 0, content.size());
  ASSERT_TRUE(again);
  EXPECT_TRUE(again.value() == expected(content, 0, content.size()));
  EXPECT_EQ(store_->reads().size(), store_reads) << "the second pager read the untrusted store";
}

TEST_F(PagerUntrustedTest, AForgedChunkIsEioEvenWithXxh3AskedAndNeverCached) {
  const auto content = testing::random_bytes(3 * kChunk);
  const Digest d = add_blob(content);
  auto reader = BlobReader::open(memory_random_access_file(files_[d])).value();
  // Chunk 1 replaced by other bytes with a matching XXH3 (the seek table
  // still claims the genuine SHA-256): the forgery passes the XXH3 check.
  auto other = content;
  other[kChunk + 7] ^= std::byte{0x5a};
  const Digest o = add_blob(other);
  std::vector<std::byte> forged = files_[o];
  store_->add(o, {});
  testing::forge_chunk_sha256(forged, 1, reader->chunks()[1].sha256);
  testing::forge_header_digest(forged, d);
  store_->add(d, forged);
  auto pager = make_untrusted_pager();
  // Anchored by the forged table (as if the manifest named it): only the
  // chunk's SHA-256 stands in the way.
  auto blob = pager->open(d, BlobReader::open(memory_random_access_file(forged)).value()->table_digest());
  ASSERT_TRUE(blob) << blob.error().message();
  auto got = pager->read(*blob.value(), kChunk, 100);
  ASSERT_FALSE(got) << "forged bytes served";
  EXPECT_EQ(to_errno(got.error()), EIO);
  for (const auto& fill : cache_->fills()) {
    for (uint64_t s = fill.first; s < fill.first + fill.count; ++s) {
      EXPECT_FALSE(frame_sectors(*blob.value(), 1).contains(s) && !frame_sectors(*blob.value(), 0).contains(s) &&
                   !frame_sectors(*blob.value(), 2).contains(s))
          << "sector " << s << " of the forged frame was cached";
    }
  }
}

TEST_F(PagerUntrustedTest, TheBlobsViewChecksTheWholeContentAgainstTheName) {
  const auto content = testing::random_bytes(4 * kChunk);
  const Digest d = add_blob(content);
  {
    auto pager = make_untrusted_pager();
    auto blob = pager->open(d);  // no anchor
    ASSERT_TRUE(blob) << blob.error().message();
    auto got = pager->read(*blob.value(), 0, content.size());
    ASSERT_TRUE(got);
    EXPECT_TRUE(got.value() == expected(content, 0, content.size()));
  }
  // A self-consistent blob of other content that claims d's name: every
  // chunk checks out against its own table; only the whole digest tells.
  const auto other = testing::random_bytes(4 * kChunk, 7);
  const Digest o = add_blob(other);
  std::vector<std::byte> forged = files_[o];
  testing::forge_header_digest(forged, d);
  store_->add(d, forged);
  cache_ = std::make_shared<testing::FakeLayer>("cache", false, true);
  auto pager = make_untrusted_pager();
  auto blob = pager->open(d);
  ASSERT_FALSE(blob);
  EXPECT_EQ(to_errno(blob.error()), EIO);
  EXPECT_NE(blob.error().message().find("hashes to"), std::string::npos) << blob.error().message();
  EXPECT_TRUE(cache_->fills().empty()) << "bytes of a blob that failed its check were cached";
  EXPECT_EQ(pager->stats().anchor_mismatches, 1u);
}

TEST_F(PagerUntrustedTest, V1BlobsCannotBeCheckedAndAreRefused) {
  // A blob written by the first format (24-byte seek entries, no SHA-256).
  constexpr std::string_view kV1 = "e17de274f118f08e1f1c5e4645e0e667e004d2713f46211fe12ff015aa667c9e";
  const char* data = std::getenv("PAGERFS_TEST_DATA");
  ASSERT_NE(data, nullptr) << "run through meson test";
  auto file = open_random_access_file(std::string(data) + "/v1-blob/" + std::string(kV1));
  ASSERT_TRUE(file) << file.error().message();
  std::vector<std::byte> bytes(file.value()->size());
  ASSERT_TRUE(file.value()->read_exact(0, bytes));
  const Digest d = Digest::parse(kV1).value();
  store_->add(d, bytes);
  auto pager = make_untrusted_pager();
  auto blob = pager->open(d);
  ASSERT_FALSE(blob);
  EXPECT_EQ(to_errno(blob.error()), EIO);
  EXPECT_NE(blob.error().message().find("v1"), std::string::npos) << blob.error().message();
  store_->set_trusted(true);
  auto trusted = make_untrusted_pager()->open(d);
  EXPECT_TRUE(trusted) << "a trusted store serves v1 as before: " << trusted.error().message();
}

}  // namespace
}  // namespace pagerfs
