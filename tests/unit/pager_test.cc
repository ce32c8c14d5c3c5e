// The pager: byte-exact reads, zero padding, read-ahead, coalescing of
// concurrent requests, shutdown, prewarm, its chunk cache.
#include "unit/pager_fixture.h"

namespace pagerfs {
namespace {

using range::kPageSize;


class PagerSizeTest : public PagerTest, public ::testing::WithParamInterface<uint64_t> {};

TEST_P(PagerSizeTest, RandomReadsEqualTheSource) {
  const uint64_t size = GetParam();
  const auto content = testing::compressible_bytes(size, size + 1);
  auto pager = make_pager();
  auto blob = pager->open(add_blob(content));
  ASSERT_TRUE(blob) << blob.error().message();
  EXPECT_EQ(blob.value()->byte_size(), size);
  std::mt19937_64 rng(size);
  for (int i = 0; i < 300; ++i) {
    const uint64_t offset = rng() % (size + 2 * kPageSize);
    const uint64_t length = rng() % 3 == 0 ? kPageSize : 1 + rng() % (3 * kChunk);
    auto got = pager->read(*blob.value(), offset, length);
    ASSERT_TRUE(got) << got.error().message();
    ASSERT_TRUE(got.value() == expected(content, offset, length)) << "offset " << offset << " length " << length;
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, PagerSizeTest,
                         ::testing::Values(0, 1, kPageSize - 42, kPageSize, kChunk - 1, kChunk, kChunk + 1,
                                           3 * 1024 * 1024 + 4096 - 42),
                         [](const auto& info) { return "size" + std::to_string(info.param); });

TEST_F(PagerTest, TheLastPageIsZeroPaddedAndNothingLies) {
  const auto content = testing::random_bytes(kChunk + 100);
  auto pager = make_pager();
  auto blob = pager->open(add_blob(content)).value();
  auto tail = pager->read(*blob, kChunk, kPageSize * 4);
  ASSERT_TRUE(tail);
  ASSERT_EQ(tail.value().size(), kPageSize);  // up to the page end, no further
  EXPECT_TRUE(std::equal(tail.value().begin(), tail.value().begin() + 100, content.begin() + kChunk));
  EXPECT_TRUE(std::all_of(tail.value().begin() + 100, tail.value().end(), [](std::byte b) { return b == std::byte{0}; }));
  EXPECT_TRUE(pager->read(*blob, kChunk + kPageSize, 10).value().empty());
  EXPECT_TRUE(pager->read(*blob, UINT64_MAX - 1, 10).value().empty());
}

TEST_F(PagerTest, ReplyAndSupplyCoverTheWindowExactly) {
  const auto content = testing::random_bytes(10 * kChunk + 1234);
  PagerOptions options;
  options.readahead = 4 * kChunk;
  options.adaptive_readahead = false;  // every request gets the full window
  auto pager = make_pager(options);
  auto blob = pager->open(add_blob(content)).value();
  const uint64_t offset = 5 * kChunk + 300, length = 5000;
  std::vector<std::pair<uint64_t, uint64_t>> pieces;
  auto r = pager->page_in(
      *blob, offset, length,
      [&](Pager::Pieces reply) {
        uint64_t at = offset;
        for (const auto data : reply) {
          EXPECT_TRUE(std::equal(data.begin(), data.end(), content.begin() + static_cast<ptrdiff_t>(at)));
          at += data.size();
        }
        pieces.emplace_back(offset, at);
      },
      [&](uint64_t at, std::span<const std::byte> data) {
        EXPECT_TRUE(std::equal(data.begin(), data.end(), content.begin() + static_cast<ptrdiff_t>(at)));
        pieces.emplace_back(at, at + data.size());
      });
  ASSERT_TRUE(r);
  std::sort(pieces.begin(), pieces.end());
  uint64_t pos = 4 * kChunk;  // window [4 chunks, 8 chunks)
  for (const auto& [begin, end] : pieces) {
    EXPECT_EQ(begin, pos) << "no gap, no overlap";
    pos = end;
  }
  EXPECT_EQ(pos, 8 * kChunk);
  // The final window stops at byte_size, never past it.
  pieces.clear();
  ASSERT_TRUE(pager->page_in(*blob, 10 * kChunk, 1, [&](auto) {}, [&](uint64_t at, std::span<const std::byte> d) {
    pieces.emplace_back(at, at + d.size());
  }));
  for (const auto& [begin, end] : pieces) EXPECT_LE(end, content.size());
  const auto stats = pager->stats();
  EXPECT_GT(stats.bytes_supplied, 0u);
  EXPECT_GT(stats.readahead_chunks, 0u);
}

TEST_F(PagerTest, AdaptiveReadAheadWidensOnlyStreamingRequests) {
  const auto content = testing::random_bytes(64 * kChunk);
  PagerOptions options;
  options.readahead = 4 * kChunk;
  auto pager = make_pager(options);
  auto blob = pager->open(add_blob(content)).value();
  // Random 4 KiB faults: only the chunk touched is decoded.
  for (uint64_t c : {40, 3, 17, 60}) {
    auto got = pager->read(*blob, c * kChunk + 8192, 4096);
    ASSERT_TRUE(got);
    EXPECT_TRUE(got.value() == expected(content, c * kChunk + 8192, 4096));
  }
  EXPECT_EQ(pager->stats().chunks_decoded, 4u);
  EXPECT_EQ(pager->stats().random_faults, 4u);
  EXPECT_EQ(pager->stats().readahead_chunks, 0u);
  // A small request continuing the previous one is sequential: full window.
  ASSERT_TRUE(pager->read(*blob, 60 * kChunk + 12288, 4096));
  EXPECT_EQ(pager->stats().chunks_decoded, 4u + 3u);  // chunks 61..63 of the window [60, 64)
  // A large request is streaming: full window.
  ASSERT_TRUE(pager->read(*blob, 20 * kChunk, 32 * 1024));
  EXPECT_EQ(pager->stats().chunks_decoded, 7u + 4u);
  EXPECT_EQ(pager->stats().random_faults, 4u);
}

TEST_F(PagerTest, ConcurrentRequestsForOneChunkDecodeItOnce) {
  const auto content = testing::random_bytes(4 * kChunk);
  PagerOptions options;
  options.readahead = kChunk;
  auto pager = make_pager(options);
  auto blob = pager->open(add_blob(content)).value();
  faults_->latency_us = 50000;  // the first fetch is slow: everyone else joins it
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto got = pager->read(*blob, kChunk + t * 100, 100);
      if (!got || got.value() != expected(content, kChunk + t * 100, 100)) ++wrong;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong, 0);
  const auto stats = pager->stats();
  EXPECT_EQ(stats.chunks_decoded, 1u);
  EXPECT_EQ(stats.fetches, 1u);
  EXPECT_EQ(stats.chunk_cache_misses, 1u);
  EXPECT_EQ(stats.coalesced_waits + stats.chunk_cache_hits, 7u);
}

TEST_F(PagerTest, ALayerErrorFailsOnlyThatRequestAndIsRetried) {
  const auto content = testing::random_bytes(8 * kChunk);
  PagerOptions options;
  options.readahead = kChunk;
  auto pager = make_pager(options);
  auto blob = pager->open(add_blob(content)).value();
  ASSERT_TRUE(pager->read(*blob, 0, 100));
  faults_->fail_reads = true;
  auto failed = pager->read(*blob, 3 * kChunk, 100);
  ASSERT_FALSE(failed);
  EXPECT_EQ(to_errno(failed.error()), EIO);
  EXPECT_TRUE(pager->read(*blob, 0, 100)) << "cached chunks still serve";
  faults_->fail_reads = false;
  auto retried = pager->read(*blob, 3 * kChunk, 100);
  ASSERT_TRUE(retried) << "a failure is not remembered";
  EXPECT_TRUE(retried.value() == expected(content, 3 * kChunk, 100));
  EXPECT_EQ(pager->stats().failures.at(EIO), 1u);
}

TEST_F(PagerTest, CorruptBytesAreEioAndNeverCached) {
  const auto content = testing::random_bytes(4 * kChunk);
  PagerOptions options;
  options.readahead = kChunk;
  auto pager = make_pager(options);
  auto blob = pager->open(add_blob(content)).value();
  faults_->corrupt = true;
  auto bad = pager->read(*blob, kChunk, 10);
  ASSERT_FALSE(bad);
  EXPECT_EQ(to_errno(bad.error()), EIO);
  EXPECT_NE(bad.error().message().find("chunk 1"), std::string::npos) << bad.error().message();
  faults_->corrupt = false;
  auto good = pager->read(*blob, kChunk, 10);
  ASSERT_TRUE(good);
  EXPECT_TRUE(good.value() == expected(content, kChunk, 10));
}

TEST_F(PagerTest, ReadAheadFailuresDoNotFailTheRequest) {
  const auto content = testing::random_bytes(8 * kChunk);
  PagerOptions options;
  options.readahead = 4 * kChunk;
  auto pager = make_pager(options);
  auto blob = pager->open(add_blob(content)).value();
  // Random faults decode chunks 3 and 4 alone; then the store fails.
  ASSERT_TRUE(pager->read(*blob, 3 * kChunk + 100, 10));
  ASSERT_TRUE(pager->read(*blob, 4 * kChunk + 100, 10));
  EXPECT_EQ(pager->stats().chunks_decoded, 2u);
  faults_->fail_reads = true;
  // A streaming request for chunks 3-4 wants the window of chunks 0-7: the
  // read-ahead part cannot be fetched, the requested part is cached.
  auto got = pager->read(*blob, 3 * kChunk, 32 * 1024);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_TRUE(got.value() == expected(content, 3 * kChunk, 32 * 1024));
  EXPECT_EQ(pager->stats().readahead_chunks, 0u);
  EXPECT_TRUE(pager->stats().failures.empty()) << "a read-ahead failure is not the request's";
  // A request that needs a chunk the store cannot give fails.
  auto failed = pager->read(*blob, 1 * kChunk, 32 * 1024);
  ASSERT_FALSE(failed);
  EXPECT_EQ(to_errno(failed.error()), EIO);
}

TEST_F(PagerTest, ShutdownWithRequestsInFlightNeitherHangsNorCrashes) {
  const auto content = testing::random_bytes(64 * kChunk);
  PagerOptions options;
  options.readahead = kChunk;
  auto pager = make_pager(options);
  auto blob = pager->open(add_blob(content)).value();
  faults_->latency_us = 20000;
  std::vector<std::thread> threads;
  std::atomic<int> ok_count{0}, shutdown_count{0}, other{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        auto got = pager->read(*blob, (t * 8 + i) * kChunk, 10);
        if (got) ++ok_count;
        else if (to_errno(got.error()) == ESHUTDOWN) ++shutdown_count;
        else ++other;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  pager->request_shutdown();
  for (auto& t : threads) t.join();
  EXPECT_EQ(other, 0);
  EXPECT_GT(shutdown_count, 0);
  EXPECT_EQ(ok_count + shutdown_count, 40);
  auto after = pager->read(*blob, 0, 10);
  ASSERT_FALSE(after);
  EXPECT_EQ(to_errno(after.error()), ESHUTDOWN);
  EXPECT_FALSE(pager->open(blob->digest()));
  pager->request_shutdown();  // idempotent
}

TEST_F(PagerTest, PrewarmDecodesAheadOfNeed) {
  const auto content = testing::random_bytes(20 * kChunk);
  auto pager = make_pager();
  auto blob = pager->open(add_blob(content)).value();
  ASSERT_TRUE(pager->prewarm(*blob, {{0, content.size()}}));
  EXPECT_EQ(pager->stats().chunks_decoded, 20u);
  const uint64_t fetches = pager->stats().fetches;
  for (uint64_t off = 0; off < content.size(); off += 7000) ASSERT_TRUE(pager->read(*blob, off, 3000));
  EXPECT_EQ(pager->stats().fetches, fetches) << "everything was decoded already";
  EXPECT_EQ(pager->stats().chunks_decoded, 20u);
}

TEST_F(PagerTest, OpenSharesStateAndReleasesIt) {
  auto pager = make_pager();
  const Digest d = add_blob(testing::random_bytes(1000));
  auto a = pager->open(d).value();
  auto b = pager->open(d).value();
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(pager->stats().open_blobs, 1u);
  EXPECT_NE(pager->dump().find("open: " + d.str()), std::string::npos);
  a.reset();
  b.reset();
  EXPECT_EQ(pager->stats().open_blobs, 0u) << "no caller holds it";
  EXPECT_EQ(pager->stats().kept_blobs, 1u) << "kept among the recently opened";
  auto missing = pager->open(Digest());
  ASSERT_FALSE(missing);
  EXPECT_EQ(to_errno(missing.error()), ENOENT);
}

// A pack of small files is opened once per file: its header and seek table
// are read once, and its sequential hint carries from one file to the next.
TEST_F(PagerTest, ReopenOfARecentBlobReadsNothingAndKeepsReadingAhead) {
  auto pager = make_pager();
  const auto content = testing::random_bytes(20 * kChunk);
  const Digest d = add_blob(content);
  ASSERT_TRUE(pager->read(*pager->open(d).value(), 0, 1000));
  const size_t reads = store_->reads().size();
  const uint64_t random = pager->stats().random_faults;
  // The next file of the pack, opened afresh, continues where the last ended.
  auto again = pager->open(d).value();
  EXPECT_EQ(store_->reads().size(), reads) << "the header and seek table were not read again";
  ASSERT_TRUE(pager->read(*again, 1000, 1000));
  EXPECT_EQ(pager->stats().random_faults, random) << "a continuation, not a random fault";
}

TEST_F(PagerTest, RecentlyOpenedBlobsAreBoundedBySeekTableBytes) {
  PagerOptions options;
  options.kept_blob_bytes = 8 * 1024;
  auto pager = make_pager(options);
  // Tiny blobs cost a few hundred bytes each: some fit, not all.
  std::vector<Digest> digests;
  for (uint64_t i = 0; i < 100; ++i) digests.push_back(add_blob(testing::random_bytes(2000, i + 1)));
  for (const Digest& d : digests) ASSERT_TRUE(pager->open(d));
  const uint64_t kept = pager->stats().kept_blobs;
  EXPECT_GT(kept, 0u);
  EXPECT_LT(kept, 100u);
  EXPECT_EQ(pager->stats().open_blobs, 0u);
  // The last opened are kept; the first is read again.
  const size_t reads = store_->reads().size();
  ASSERT_TRUE(pager->open(digests.back()));
  EXPECT_EQ(store_->reads().size(), reads);
  ASSERT_TRUE(pager->open(digests.front()));
  EXPECT_GT(store_->reads().size(), reads);
  // A blob whose seek table alone is over the budget is not kept and
  // evicts nothing: 200 chunks of 4 KiB, 11 KiB of seek table.
  const Digest big = add_blob(testing::random_bytes(200 * 4096), 4096);
  const uint64_t before = pager->stats().kept_blobs;
  ASSERT_TRUE(pager->open(big));
  EXPECT_EQ(pager->stats().kept_blobs, before);
}

TEST_F(PagerTest, NoBlobIsKeptWithABudgetOfZero) {
  PagerOptions options;
  options.kept_blob_bytes = 0;
  auto pager = make_pager(options);
  ASSERT_TRUE(pager->open(add_blob(testing::random_bytes(2000))));
  EXPECT_EQ(pager->stats().kept_blobs, 0u);
}

TEST_F(PagerTest, ChunkCacheIsBounded) {
  const auto content = testing::random_bytes(40 * kChunk);
  PagerOptions options;
  options.chunk_cache_bytes = 4 * kChunk;
  options.readahead = kChunk;
  auto pager = make_pager(options);
  auto blob = pager->open(add_blob(content)).value();
  for (uint64_t c = 0; c < 40; ++c) ASSERT_TRUE(pager->read(*blob, c * kChunk, 10));
  EXPECT_EQ(pager->stats().chunk_cache_bytes, 4u * kChunk) << "full, and no fuller";
  EXPECT_EQ(pager->stats().chunks_decoded, 40u);
  // The last four chunks are held: served without reading the layers again.
  const PagerStats before = pager->stats();
  const uint64_t layer_reads = faults_->reads_seen.load();
  for (uint64_t c = 36; c < 40; ++c) {
    auto got = pager->read(*blob, c * kChunk + 100, 10);
    ASSERT_TRUE(got);
    EXPECT_TRUE(got.value() == expected(content, c * kChunk + 100, 10));
  }
  EXPECT_EQ(pager->stats().chunk_cache_hits, before.chunk_cache_hits + 4);
  EXPECT_EQ(pager->stats().fetches, before.fetches);
  EXPECT_EQ(pager->stats().chunks_decoded, 40u);
  EXPECT_EQ(faults_->reads_seen.load(), layer_reads) << "the layers were not read again";
  // An early chunk was evicted: it is read and decoded again.
  ASSERT_TRUE(pager->read(*blob, 0, 10));
  EXPECT_EQ(pager->stats().fetches, before.fetches + 1);
  EXPECT_EQ(pager->stats().chunks_decoded, 41u);
}

// --- Failures stay local: exceptions, and damaged bytes in caches ---

}  // namespace
}  // namespace pagerfs
