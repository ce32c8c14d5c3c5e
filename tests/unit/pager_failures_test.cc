// The pager when things fail: decode tasks and replies that throw, allocation
// failures, bad bytes from the store or a cache; one request fails, the
// rest serve on, and nothing bad stays cached.
#include "unit/pager_fixture.h"

namespace pagerfs {
namespace {

using range::kPageSize;

TEST_F(PagerTest, AnInlineDecodeThatThrowsFailsThatReadOnlyAndTheNextRetries) {
  const auto content = testing::random_bytes(4 * kChunk);
  PagerOptions options;
  options.readahead = kChunk;
  auto pager = make_pager(options);
  auto blob = pager->open(add_blob(content)).value();
  const uint64_t injected = fault::injected(fault::Point::decode);
  fault::arm(fault::Point::decode, 1);
  auto failed = pager->read(*blob, kChunk + 10, 100);  // one chunk: decoded on this thread
  ASSERT_FALSE(failed);
  EXPECT_EQ(to_errno(failed.error()), ENOMEM);
  EXPECT_EQ(fault::injected(fault::Point::decode), injected + 1);
  fault::disarm_all();
  EXPECT_NE(pager->dump().find(" 0 chunk(s) in flight"), std::string::npos) << pager->dump();
  auto retried = pager->read(*blob, kChunk + 10, 100);
  ASSERT_TRUE(retried) << retried.error().message();
  EXPECT_TRUE(retried.value() == expected(content, kChunk + 10, 100));
  EXPECT_EQ(pager->stats().failures.at(ENOMEM), 1u);
}

TEST_F(PagerTest, PoolDecodeTasksThatThrowFailTheirChunksNotTheProcess) {
  const auto content = testing::random_bytes(8 * kChunk + 77);
  PagerOptions options;
  options.readahead = 4 * kChunk;
  options.adaptive_readahead = false;
  auto pager = make_pager(options);
  auto blob = pager->open(add_blob(content)).value();
  const uint64_t injected = fault::injected(fault::Point::decode);
  fault::arm(fault::Point::decode, 1);
  // Four chunks: three decode on the pool (a throw there used to reach
  // Boost.Asio and std::terminate), the last on this thread.
  auto failed = pager->read(*blob, 0, 4 * kChunk);
  ASSERT_FALSE(failed);
  EXPECT_EQ(to_errno(failed.error()), ENOMEM);
  EXPECT_EQ(fault::injected(fault::Point::decode), injected + 4);
  fault::disarm_all();
  EXPECT_NE(pager->dump().find(" 0 chunk(s) in flight"), std::string::npos) << pager->dump();
  auto all = pager->read(*blob, 0, content.size());
  ASSERT_TRUE(all) << all.error().message();
  EXPECT_TRUE(all.value() == expected(content, 0, content.size()));
  EXPECT_EQ(pager->stats().chunks_decoded, 9u);
}

TEST_F(PagerTest, EveryWaiterOfAThrowingDecodeWakesWithItsError) {
  const auto content = testing::random_bytes(4 * kChunk);
  PagerOptions options;
  options.readahead = kChunk;
  auto pager = make_pager(options);
  auto blob = pager->open(add_blob(content)).value();
  faults_->latency_us = 50000;  // the first fetch is slow: the others join it
  fault::arm(fault::Point::decode, 1);
  std::atomic<int> out_of_memory{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto got = pager->read(*blob, kChunk + t * 100, 100);
      if (!got && to_errno(got.error()) == ENOMEM) ++out_of_memory;
      else ++other;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(out_of_memory, 8);
  EXPECT_EQ(other, 0);
  EXPECT_GT(pager->stats().coalesced_waits, 0u) << "some joined the throwing decode";
  fault::disarm_all();
  faults_->latency_us = 0;
  auto got = pager->read(*blob, kChunk, 100);
  ASSERT_TRUE(got);
  EXPECT_TRUE(got.value() == expected(content, kChunk, 100));
}

TEST_F(PagerTest, AnAllocationFailureBelowThePagerFailsOnlyThatRequest) {
  const auto content = testing::random_bytes(4 * kChunk);
  PagerOptions options;
  options.readahead = kChunk;
  auto pager = make_pager(options);
  auto blob = pager->open(add_blob(content)).value();
  const Digest other = add_blob(testing::random_bytes(5000, 9));
  faults_->throw_bad_alloc = true;
  auto failed = pager->read(*blob, 2 * kChunk, 100);
  ASSERT_FALSE(failed);
  EXPECT_EQ(to_errno(failed.error()), ENOMEM);
  auto not_opened = pager->open(other);
  ASSERT_FALSE(not_opened);
  EXPECT_EQ(to_errno(not_opened.error()), ENOMEM);
  faults_->throw_bad_alloc = false;
  EXPECT_NE(pager->dump().find(" 0 chunk(s) in flight"), std::string::npos) << pager->dump();
  auto got = pager->read(*blob, 2 * kChunk, 100);
  ASSERT_TRUE(got);
  EXPECT_TRUE(got.value() == expected(content, 2 * kChunk, 100));
  EXPECT_TRUE(pager->open(other));
}

TEST_F(PagerTest, ASupplyThatThrowsAfterTheReplyLosesOnlyReadAhead) {
  const auto content = testing::random_bytes(8 * kChunk);
  PagerOptions options;
  options.readahead = 4 * kChunk;
  options.adaptive_readahead = false;
  auto pager = make_pager(options);
  auto blob = pager->open(add_blob(content)).value();
  int replies = 0;
  auto r = pager->page_in(
      *blob, kChunk, 100,
      [&](Pager::Pieces pieces) {
        ++replies;
        std::vector<std::byte> got;
        for (const auto piece : pieces) got.insert(got.end(), piece.begin(), piece.end());
        EXPECT_TRUE(got == expected(content, kChunk, 100));
      },
      [&](uint64_t, std::span<const std::byte>) { throw std::bad_alloc(); });
  ASSERT_TRUE(r) << "the request was answered: " << r.error().message();
  EXPECT_EQ(replies, 1);
  EXPECT_EQ(pager->stats().after_reply_failures, 1u);
  EXPECT_TRUE(pager->stats().failures.empty());
  auto again = pager->read(*blob, 3 * kChunk, 100);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again.value() == expected(content, 3 * kChunk, 100));
}

TEST_F(PagerTest, AReplyThatThrowsIsTheRequestsErrorAndLeavesNothingInFlight) {
  const auto content = testing::random_bytes(4 * kChunk);
  PagerOptions options;
  options.readahead = kChunk;
  auto pager = make_pager(options);
  auto blob = pager->open(add_blob(content)).value();
  auto r = pager->page_in(*blob, 0, 100, [](Pager::Pieces) { throw std::bad_alloc(); });
  ASSERT_FALSE(r);
  EXPECT_EQ(to_errno(r.error()), ENOMEM);
  EXPECT_NE(pager->dump().find(" 0 chunk(s) in flight"), std::string::npos) << pager->dump();
  auto got = pager->read(*blob, 0, 100);
  ASSERT_TRUE(got);
  EXPECT_TRUE(got.value() == expected(content, 0, 100));
  EXPECT_EQ(pager->stats().chunk_cache_hits, 1u) << "the chunk itself had decoded fine";
}

TEST_F(PagerTest, ABadReadFromTheStoreIsNotLeftInACacheAndARepairedStoreServes) {
  const auto content = testing::random_bytes(4 * kChunk);
  PagerOptions options;
  options.readahead = kChunk;
  auto pager = make_pager(options, /*cached=*/true);
  const Digest d = add_blob(content);
  auto blob = pager->open(d).value();
  faults_->corrupt = true;  // the store returns damaged bytes
  auto bad = pager->read(*blob, kChunk, 10);
  ASSERT_FALSE(bad);
  EXPECT_EQ(to_errno(bad.error()), EIO);
  EXPECT_EQ(pager->stats().integrity_retries, 1u);
  EXPECT_EQ(pager->stats().integrity_repairs, 0u);
  const std::set<uint64_t> held = cache_->present(d);
  for (uint64_t s : frame_sectors(*blob, 1)) EXPECT_FALSE(held.contains(s)) << "sector " << s << " kept damaged bytes";
  faults_->corrupt = false;  // the store is repaired
  auto good = pager->read(*blob, kChunk, 10);
  ASSERT_TRUE(good) << good.error().message();
  EXPECT_TRUE(good.value() == expected(content, kChunk, 10));
  // Now the cache holds the frame, and it holds the store's bytes.
  const auto cached = cache_->content(d);
  const auto& file = files_[d];
  for (uint64_t s : frame_sectors(*blob, 1)) {
    ASSERT_TRUE(cache_->present(d).contains(s));
    const uint64_t end = std::min<uint64_t>(file.size(), (s + 1) * 4096);
    EXPECT_TRUE(std::equal(file.begin() + static_cast<ptrdiff_t>(s * 4096), file.begin() + static_cast<ptrdiff_t>(end),
                           cached.begin() + static_cast<ptrdiff_t>(s * 4096)));
  }
}

TEST_F(PagerTest, DamagedBytesInACacheAreReplacedWithGoodOnesFromTheStore) {
  const auto content = testing::random_bytes(4 * kChunk);
  PagerOptions options;
  options.readahead = kChunk;
  auto pager = make_pager(options, /*cached=*/true);
  const Digest d = add_blob(content);
  auto blob = pager->open(d).value();
  ASSERT_TRUE(pager->read(*blob, 2 * kChunk, 10));  // fills the cache
  // Damage the cached copy of chunk 2's frame in place.
  const format::ChunkEntry& e = blob->reader().chunks()[2];
  auto held = cache_->content(d);
  held[e.offset + e.compressed_size / 2] ^= std::byte{0x10};
  cache_->add(d, held, cache_->present(d));
  pager->drop_chunk_cache();
  auto got = pager->read(*blob, 2 * kChunk, 10);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_TRUE(got.value() == expected(content, 2 * kChunk, 10));
  EXPECT_EQ(pager->stats().integrity_retries, 1u);
  EXPECT_EQ(pager->stats().integrity_repairs, 1u);
  EXPECT_FALSE(cache_->invalidations().empty());
  EXPECT_EQ(cache_->content(d)[e.offset + e.compressed_size / 2], files_[d][e.offset + e.compressed_size / 2])
      << "the cache holds the good byte again";
}

TEST_F(PagerTest, ADamagedHeaderInACacheIsReadAgainFromTheStore) {
  PagerOptions options;
  options.kept_blob_bytes = 0;  // the second open reads the header again
  auto pager = make_pager(options, /*cached=*/true);
  const auto content = testing::random_bytes(3 * kChunk);
  const Digest d = add_blob(content);
  ASSERT_TRUE(pager->open(d));  // caches the header and the seek table; released at once
  auto held = cache_->content(d);
  held[20] ^= std::byte{0x01};
  cache_->add(d, held, cache_->present(d));
  auto blob = pager->open(d);
  ASSERT_TRUE(blob) << blob.error().message();
  EXPECT_EQ(pager->stats().integrity_repairs, 1u);
  auto got = pager->read(*blob.value(), 0, content.size());
  ASSERT_TRUE(got);
  EXPECT_TRUE(got.value() == expected(content, 0, content.size()));
}

}  // namespace
}  // namespace pagerfs
