#include "pagerfs/pager/pager.h"

#include <gtest/gtest.h>

#include <set>

#include <new>
#include <random>
#include <thread>

#include "pagerfs/format/blob_writer.h"
#include "layers/fault_layer.h"
#include "support/fake_layer.h"
#include "support/test_data.h"
#include "util/fault_injection.h"

namespace pagerfs {
namespace {

using range::kPageSize;
constexpr uint32_t kChunk = 16 * 1024;

// A pager over a fake store holding blobs packed in memory.
class PagerTest : public ::testing::Test {
 protected:
  Digest add_blob(const std::vector<std::byte>& content, uint32_t chunk_size = kChunk) {
    std::vector<std::byte> file;
    auto input = memory_input_stream(content);
    auto output = memory_writable_file(&file);
    BlobWriterOptions options;
    options.chunk_size = chunk_size;
    auto header = write_blob(*input, *output, options);
    EXPECT_TRUE(header);
    store_->add(header.value().digest, file);
    files_[header.value().digest] = file;
    return header.value().digest;
  }

  // A pager over the (fault-wrapped) store; `cached`: with cache_ above it.
  std::shared_ptr<Pager> make_pager(PagerOptions options = {}, bool cached = false) {
    options.threads = 2;
    if (options.readahead == PagerOptions{}.readahead) options.readahead = 64 * 1024;
    std::vector<std::shared_ptr<Layer>> layers;
    if (cached) layers.push_back(cache_);
    layers.push_back(make_fault_layer(store_, faults_));
    auto stack = LayerStack::create(std::move(layers), nullptr);
    EXPECT_TRUE(stack);
    auto pager = Pager::create(stack.value(), options);
    EXPECT_TRUE(pager) << pager.error().message();
    return pager.value();
  }

  void TearDown() override { fault::disarm_all(); }

  // The sectors of blob file `d` that hold chunk `c`'s frame.
  std::set<uint64_t> frame_sectors(const PagedBlob& blob, uint64_t c) const {
    const format::ChunkEntry& e = blob.reader().chunks()[c];
    std::set<uint64_t> out;
    for (uint64_t s = e.offset / 4096; s * 4096 < e.offset + e.compressed_size; ++s) out.insert(s);
    return out;
  }

  std::shared_ptr<testing::FakeLayer> store_ = std::make_shared<testing::FakeLayer>("store", true, false);
  std::shared_ptr<testing::FakeLayer> cache_ = std::make_shared<testing::FakeLayer>("cache", false, true);
  std::shared_ptr<FaultConfig> faults_ = std::make_shared<FaultConfig>();
  std::map<Digest, std::vector<std::byte>> files_;
};

// The expected answer: content bytes, zeros to the page end, nothing after.
std::vector<std::byte> expected(const std::vector<std::byte>& content, uint64_t offset, uint64_t length) {
  const range::ByteRange want = range::requested_range(offset, length, content.size());
  std::vector<std::byte> out(want.size(), std::byte{0});
  for (uint64_t i = want.begin; i < std::min<uint64_t>(want.end, content.size()); ++i) out[i - want.begin] = content[i];
  return out;
}

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
  EXPECT_EQ(pager->stats().open_blobs, 0u) << "on_zero_children releases the state";
  auto missing = pager->open(Digest());
  ASSERT_FALSE(missing);
  EXPECT_EQ(to_errno(missing.error()), ENOENT);
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
  auto pager = make_pager({}, /*cached=*/true);
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
