#include "pagerfs/layers/cache_layer.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "pagerfs/format/blob_writer.h"
#include "layers/fault_layer.h"
#include "pagerfs/layers/layer_stack.h"
#include "pagerfs/pager/pager.h"
#include "support/fake_layer.h"
#include "support/returns_quickly.h"
#include "support/subprocess.h"
#include "support/test_data.h"

namespace pagerfs {
namespace {

using testing::FakeLayer;
using testing::TempDir;
constexpr uint32_t kSector = 4096;

// Bytes actually allocated under `dir` (what `du` reports).
uint64_t disk_usage(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    struct stat st {};
    if (::stat(e.path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) total += uint64_t(st.st_blocks) * 512;
  }
  return total;
}

class CacheLayerTest : public ::testing::Test {
 protected:
  // Registers a blob of `size` bytes (content derived from `seed`) in the bottom layer.
  BlobExtent add_blob(uint64_t size, uint64_t seed) {
    auto content = testing::random_bytes(size, seed);
    const Digest d = Sha256::of(content);
    contents_[d] = content;
    bottom_->add(d, std::move(content));
    return {d, size};
  }

  std::shared_ptr<Layer> open_cache(uint64_t budget, const std::string& dir = "") {
    CacheLayerOptions options;
    options.budget_bytes = budget;
    options.extent_sectors = 16;
    auto cache = make_cache_layer(dir.empty() ? dir_ / "cache" : dir, options);
    EXPECT_TRUE(cache) << cache.error().message();
    return cache ? cache.value() : nullptr;
  }

  std::shared_ptr<LayerStack> stack(std::shared_ptr<Layer> cache) {
    return LayerStack::create({std::move(cache), bottom_}, nullptr).value();
  }

  // Reads [offset, offset+length) through the stack and checks every byte.
  void expect_read(const LayerStack& s, const BlobExtent& b, uint64_t offset, uint64_t length) {
    std::vector<std::byte> out(length);
    auto r = s.read(b, offset, out);
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_TRUE(std::equal(out.begin(), out.end(), contents_[b.digest].begin() + static_cast<ptrdiff_t>(offset)));
  }

  TempDir dir_;
  std::shared_ptr<FakeLayer> bottom_ = std::make_shared<FakeLayer>("bottom", true, false);
  std::map<Digest, std::vector<std::byte>> contents_;
};

TEST_F(CacheLayerTest, FillsOnMissAndServesAfterReopen) {
  const BlobExtent b = add_blob(100 * kSector - 42, 1);
  {
    auto cache = open_cache(64 << 20);
    auto s = stack(cache);
    expect_read(*s, b, 0, b.size);
    EXPECT_EQ(cache->stats().snapshot().sectors_hit, 0u);
    EXPECT_EQ(cache->stats().snapshot().bytes_cached, 100u * kSector);
    expect_read(*s, b, 5000, 70000);
    EXPECT_EQ(cache->stats().snapshot().sectors_hit, 18u);
  }
  // A new cache over the same directory (a remount) serves what it holds:
  // the store is not read again.
  auto cache = open_cache(64 << 20);
  auto fresh_bottom = std::make_shared<FakeLayer>("bottom", true, false);
  fresh_bottom->add(b.digest, contents_[b.digest]);
  auto s = LayerStack::create({cache, fresh_bottom}, nullptr).value();
  EXPECT_EQ(s->blob_size(b.digest).value(), b.size);
  expect_read(*s, b, 0, b.size);
  EXPECT_EQ(cache->stats().snapshot().sectors_hit, 100u);
  EXPECT_TRUE(fresh_bottom->reads().empty());
  // The store decides which blobs exist: one it no longer has is gone.
  auto empty_bottom = std::make_shared<FakeLayer>("bottom", true, false);
  auto gone = LayerStack::create({cache, empty_bottom}, nullptr).value();
  EXPECT_FALSE(gone->blob_size(b.digest));
}

TEST_F(CacheLayerTest, NeverOverwritesStoredSectors) {
  const BlobExtent b = add_blob(8 * kSector, 2);
  auto cache = open_cache(64 << 20);
  const auto& content = contents_[b.digest];
  ASSERT_TRUE(cache->write_no_overwrite(b, 2, std::span(content).subspan(2 * kSector, 3 * kSector)));
  const std::vector<std::byte> junk(6 * kSector, std::byte{0xee});
  ASSERT_TRUE(cache->write_no_overwrite(b, 0, junk));
  std::vector<std::byte> out(8 * kSector);
  SectorMarker marker(0, 8);
  ASSERT_TRUE(cache->read(b, out, marker));
  EXPECT_TRUE(marker.all() == false);
  EXPECT_EQ(marker.runs(true), (std::vector<SectorMarker::Run>{{0, 6}}));
  EXPECT_TRUE(std::equal(out.begin() + 2 * kSector, out.begin() + 5 * kSector, content.begin() + 2 * kSector));
  EXPECT_EQ(out[0], std::byte{0xee});
  EXPECT_EQ(out[5 * kSector], std::byte{0xee});
}

TEST_F(CacheLayerTest, DamagedSectorsAreDroppedAndRefetched) {
  const BlobExtent b = add_blob(20 * kSector, 3);
  auto cache = open_cache(64 << 20);
  auto s = stack(cache);
  expect_read(*s, b, 0, b.size);
  {
    std::fstream f(dir_ / "cache/blobs/" + b.digest.hex() + ".data", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(7 * kSector + 100);
    f.put('\x42');
  }
  const auto reads_before = bottom_->reads().size();
  expect_read(*s, b, 0, b.size);
  EXPECT_EQ(bottom_->reads().size(), reads_before + 1);
  EXPECT_EQ(bottom_->reads().back(), (FakeLayer::Call{7, 1}));
  expect_read(*s, b, 0, b.size);  // refilled: all hits again
  EXPECT_EQ(bottom_->reads().size(), reads_before + 1);
}

TEST_F(CacheLayerTest, InvalidatedSectorsAreForgottenAcrossReopen) {
  const BlobExtent b = add_blob(20 * kSector - 5, 30);
  {
    auto cache = open_cache(64 << 20);
    auto s = stack(cache);
    expect_read(*s, b, 0, b.size);
    ASSERT_TRUE(cache->invalidate(b, 5, 3));
    ASSERT_TRUE(cache->invalidate(b, 19, 10));  // clamped: the short last sector
    EXPECT_EQ(cache->stats().snapshot().sectors_invalidated, 4u);
    EXPECT_EQ(cache->stats().snapshot().bytes_cached, 16u * kSector);
    const size_t before = bottom_->reads().size();
    ASSERT_TRUE(cache->invalidate(b, 5, 3));  // nothing left to drop there
    EXPECT_EQ(cache->stats().snapshot().sectors_invalidated, 4u);
    std::vector<std::byte> out(b.size);
    SectorMarker marker(0, 20);
    ASSERT_TRUE(cache->read(b, out, marker));
    EXPECT_EQ(marker.runs(false), (std::vector<SectorMarker::Run>{{5, 3}, {19, 1}}));
    EXPECT_EQ(bottom_->reads().size(), before);
  }
  // The map was updated: a remount does not serve them either.
  auto cache = open_cache(64 << 20);
  EXPECT_EQ(cache->stats().snapshot().bytes_cached, 16u * kSector);
  auto s = stack(cache);
  const size_t before = bottom_->reads().size();
  expect_read(*s, b, 0, b.size);
  const auto reads = bottom_->reads();
  EXPECT_EQ(std::vector<FakeLayer::Call>(reads.begin() + static_cast<ptrdiff_t>(before), reads.end()),
            (std::vector<FakeLayer::Call>{{5, 3}, {19, 1}}));
}

// The case of issue 12: one bad read from the store filled the cache disk
// with damaged bytes under good sector checksums. Once the store is
// repaired, reads are right again, without dropping the cache.
TEST_F(CacheLayerTest, BytesThatFailThePagersCheckDoNotOutliveARepairedStore) {
  const auto content = testing::random_bytes(6 * 16384 + 99, 31);
  std::vector<std::byte> file;
  auto input = memory_input_stream(content);
  auto output = memory_writable_file(&file);
  BlobWriterOptions writer;
  writer.chunk_size = 16384;
  const Digest d = write_blob(*input, *output, writer).value().header.digest;
  bottom_->add(d, file);
  const BlobExtent b{d, file.size()};
  auto faults = std::make_shared<FaultConfig>();
  auto cache = open_cache(64 << 20);
  auto s = LayerStack::create({cache, make_fault_layer(bottom_, faults)}, nullptr).value();
  PagerOptions options;
  options.readahead = 16384;
  options.threads = 1;
  auto pager = Pager::create(s, options).value();
  auto blob = pager->open(d).value();
  const format::ChunkEntry chunk2 = blob->reader().chunks()[2], chunk4 = blob->reader().chunks()[4];

  // Chunk 2: the store answers with damaged bytes, they reach the cache
  // disk (the stack fills before any check), and the pager refuses them.
  faults->corrupt = true;
  auto bad = pager->read(*blob, 2 * 16384, 100);
  ASSERT_FALSE(bad);
  EXPECT_EQ(to_errno(bad.error()), EIO);
  // Chunk 4 the way the old code left it: damaged bytes cached by a plain
  // stack read, checked by nobody.
  std::vector<std::byte> frame(chunk4.compressed_size);
  ASSERT_TRUE(s->read(b, chunk4.offset, frame));
  faults->corrupt = false;  // the store is repaired
  EXPECT_GT(cache->stats().snapshot().sectors_invalidated, 0u);

  for (const uint64_t c : {2, 4}) {
    auto good = pager->read(*blob, c * 16384, 16384);
    ASSERT_TRUE(good) << "chunk " << c << ": " << good.error().message();
    EXPECT_TRUE(std::equal(good.value().begin(), good.value().end(), content.begin() + static_cast<ptrdiff_t>(c * 16384)));
  }
  EXPECT_EQ(pager->stats().integrity_repairs, 1u) << "chunk 4 came damaged from the cache";
  // What the cache disk holds of both frames now is the store's bytes, also after a remount.
  pager.reset();
  blob.reset();
  s.reset();
  cache.reset();
  auto reopened = open_cache(64 << 20);
  for (const format::ChunkEntry& e : {chunk2, chunk4}) {
    const uint64_t first = e.offset / kSector, end = (e.offset + e.compressed_size + kSector - 1) / kSector;
    std::vector<std::byte> out(std::min<uint64_t>(b.size, end * kSector) - first * kSector);
    SectorMarker marker(first, end - first);
    ASSERT_TRUE(reopened->read(b, out, marker));
    for (const auto& run : marker.runs(true)) {
      const uint64_t from = (run.first - first) * kSector;
      const uint64_t to = std::min<uint64_t>(out.size(), from + run.count * kSector);
      EXPECT_TRUE(std::equal(out.begin() + static_cast<ptrdiff_t>(from), out.begin() + static_cast<ptrdiff_t>(to),
                             file.begin() + static_cast<ptrdiff_t>(first * kSector + from)))
          << "damaged bytes still cached in sectors " << run.first << "+" << run.count;
    }
  }
}

TEST_F(CacheLayerTest, EvictionKeepsTheBudgetUnderConcurrentLoad) {
  const uint64_t budget = 256 * kSector;  // 1 MiB
  std::vector<BlobExtent> blobs;
  for (int i = 0; i < 8; ++i) blobs.push_back(add_blob(100 * kSector + 7 * i, 10 + i));
  auto cache = open_cache(budget);
  auto s = stack(cache);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < 300; ++i) {
        const BlobExtent& b = blobs[rng() % blobs.size()];
        const uint64_t offset = rng() % b.size;
        const uint64_t length = std::min<uint64_t>(b.size - offset, 1 + rng() % (40 * kSector));
        std::vector<std::byte> out(length);
        if (!s->read(b, offset, out) ||
            !std::equal(out.begin(), out.end(), contents_[b.digest].begin() + static_cast<ptrdiff_t>(offset))) {
          ++failures;
        }
        if (cache->stats().snapshot().bytes_cached > budget) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  const auto stats = cache->stats().snapshot();
  EXPECT_LE(stats.bytes_cached, budget);
  EXPECT_GT(stats.evictions, 0u);
  EXPECT_GT(stats.sectors_hit, 0u);
  // Holes are punched: the disk holds the budget plus the maps, not more.
  EXPECT_LE(disk_usage(dir_ / "cache"), budget + 64 * 1024);
  // One pair of files per blob the index holds, none for a retired one.
  size_t maps = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "cache/blobs")) {
    maps += e.path().extension() == ".map";
  }
  EXPECT_EQ(maps, stats.blobs_cached);
  // Reopening recounts the same usage from the maps.
  const uint64_t held = stats.bytes_cached;
  cache.reset();
  s.reset();
  EXPECT_EQ(open_cache(budget)->stats().snapshot().bytes_cached, held);
  // A smaller budget on reopen evicts down to it.
  EXPECT_LE(open_cache(budget / 4)->stats().snapshot().bytes_cached, budget / 4);
}

// The cache's memory follows what it holds: a blob whose extents are all
// evicted is forgotten, in memory (blobs_cached) and on disk (its files).
TEST_F(CacheLayerTest, ABlobWhoseExtentsAreAllEvictedIsForgotten) {
  const uint64_t budget = 32 * kSector;  // two extents of 16 sectors
  const BlobExtent a = add_blob(20 * kSector, 1), b = add_blob(20 * kSector, 2), c = add_blob(20 * kSector, 3);
  auto cache = open_cache(budget);
  auto s = stack(cache);
  const auto files_of = [&](const BlobExtent& blob) {
    return std::filesystem::exists(dir_ / ("cache/blobs/" + blob.digest.hex() + ".map")) +
           std::filesystem::exists(dir_ / ("cache/blobs/" + blob.digest.hex() + ".data"));
  };
  expect_read(*s, a, 0, a.size);
  EXPECT_EQ(cache->stats().snapshot().blobs_cached, 1u);
  EXPECT_EQ(files_of(a), 2);
  expect_read(*s, b, 0, b.size);  // evicts a's first extent: a keeps its second
  EXPECT_EQ(cache->stats().snapshot().blobs_cached, 2u);
  expect_read(*s, c, 0, c.size);  // evicts a's last extent, then b's first
  EXPECT_EQ(cache->stats().snapshot().blobs_cached, 2u);
  EXPECT_EQ(files_of(a), 0) << "a blob with nothing cached keeps no files";
  EXPECT_EQ(files_of(b), 2);
  EXPECT_LE(cache->stats().snapshot().bytes_cached, budget);
  expect_read(*s, a, 0, a.size);  // served from below, cached afresh
  expect_read(*s, a, 0, a.size);
  EXPECT_GT(cache->stats().snapshot().sectors_hit, 0u);
  const uint64_t held = cache->stats().snapshot().blobs_cached;
  cache.reset();
  s.reset();
  EXPECT_EQ(open_cache(budget)->stats().snapshot().blobs_cached, held);
  // Emptied: nothing is remembered.
  cache = open_cache(budget);
  s = stack(cache);
  ASSERT_TRUE(s->drop_caches());
  EXPECT_EQ(cache->stats().snapshot().blobs_cached, 0u);
  EXPECT_EQ(files_of(a) + files_of(b) + files_of(c), 0);
}

TEST_F(CacheLayerTest, DropEmptiesTheCache) {
  const BlobExtent b = add_blob(50 * kSector, 4);
  auto cache = open_cache(64 << 20);
  auto s = stack(cache);
  expect_read(*s, b, 0, b.size);
  ASSERT_TRUE(s->drop_caches());
  EXPECT_EQ(cache->stats().snapshot().bytes_cached, 0u);
  EXPECT_LE(disk_usage(dir_ / "cache"), 16u * 1024);
  expect_read(*s, b, 0, b.size);
}

TEST_F(CacheLayerTest, AnotherFormatVersionIsWiped) {
  const BlobExtent b = add_blob(10 * kSector, 5);
  {
    auto s = stack(open_cache(64 << 20));
    expect_read(*s, b, 0, b.size);
  }
  testing::write_file(dir_ / "cache/VERSION", "pagerfs-cache 99\n");
  auto cache = open_cache(64 << 20);
  EXPECT_EQ(cache->stats().snapshot().bytes_cached, 0u);
  EXPECT_EQ(testing::read_file(dir_ / "cache/VERSION"), "pagerfs-cache 1\n");
}

// The cache holds blob bytes that may be private: owner-only, whatever the
// umask, and a looser blobs/ left by someone else is tightened.
TEST_F(CacheLayerTest, TheCacheIsOwnerOnly) {
  const BlobExtent b = add_blob(10 * kSector, 11);
  const std::string dir = dir_ / "cache";
  const mode_t old_umask = ::umask(0);
  {
    auto s = stack(open_cache(64 << 20));
    expect_read(*s, b, 0, b.size);
  }
  ::umask(old_umask);
  const std::string hex = b.digest.hex();
  for (const auto& [path, mode] : std::vector<std::pair<std::string, mode_t>>{
           {dir, 0700}, {dir + "/blobs", 0700}, {dir + "/VERSION", 0600},
           {dir + "/blobs/" + hex + ".map", 0600}, {dir + "/blobs/" + hex + ".data", 0600}}) {
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 07777, mode) << path;
  }
  ASSERT_EQ(::chmod((dir + "/blobs").c_str(), 0755), 0);
  auto cache = open_cache(64 << 20);
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/blobs").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(cache->stats().snapshot().bytes_cached, 10u * kSector) << "and what it held is kept";
}

// Whatever someone left in the cache directory under our names (a FIFO, a
// symlink) costs only that blob: it is dropped at start, never waited on or
// followed, and the blob is cached afresh in files of our own.
TEST_F(CacheLayerTest, FifosAndSymlinksInTheCacheAreDroppedNotWaitedOn) {
  const BlobExtent a = add_blob(10 * kSector, 12), b = add_blob(10 * kSector, 13), c = add_blob(10 * kSector, 14),
                   d = add_blob(10 * kSector, 15);
  const std::string blobs = dir_ / "cache/blobs";
  {
    auto s = stack(open_cache(64 << 20));
    for (const BlobExtent& x : {a, b, c, d}) expect_read(*s, x, 0, x.size);
  }
  auto fifo = [](const std::string& path) {
    ASSERT_EQ(::unlink(path.c_str()), 0) << path;
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << path;
  };
  fifo(blobs + "/" + a.digest.hex() + ".map");
  fifo(blobs + "/" + b.digest.hex() + ".data");
  // c's map: a link to a good copy of itself, elsewhere.
  const std::string c_map = blobs + "/" + c.digest.hex() + ".map";
  ASSERT_EQ(::rename(c_map.c_str(), (dir_ / "c.map").c_str()), 0);
  ASSERT_EQ(::symlink((dir_ / "c.map").c_str(), c_map.c_str()), 0);

  auto cache = testing::returns_quickly({blobs + "/" + a.digest.hex() + ".map", blobs + "/" + b.digest.hex() + ".data"},
                                         [&] { return open_cache(64 << 20); });
  ASSERT_TRUE(cache);
  EXPECT_EQ(cache->stats().snapshot().bytes_cached, 10u * kSector) << "d is kept; a, b and c are dropped";
  auto s = stack(cache);
  expect_read(*s, d, 0, d.size);
  EXPECT_EQ(cache->stats().snapshot().sectors_hit, 10u);
  for (const BlobExtent& x : {a, b, c}) expect_read(*s, x, 0, x.size);
  EXPECT_EQ(cache->stats().snapshot().fill_errors, 0u);
  for (const BlobExtent& x : {a, b, c}) {
    for (const char* ext : {".map", ".data"}) {
      struct stat st {};
      const std::string path = blobs + "/" + x.digest.hex() + ext;
      ASSERT_EQ(::lstat(path.c_str(), &st), 0) << path;
      EXPECT_TRUE(S_ISREG(st.st_mode)) << path;
    }
    expect_read(*s, x, 0, x.size);
  }
  EXPECT_EQ(cache->stats().snapshot().sectors_hit, 40u) << "all four served from the cache again";
}

TEST_F(CacheLayerTest, AFifoAsTheVersionFileIsReplaced) {
  const BlobExtent a = add_blob(10 * kSector, 16);
  { auto s = stack(open_cache(64 << 20)); expect_read(*s, a, 0, a.size); }
  ASSERT_EQ(::unlink((dir_ / "cache/VERSION").c_str()), 0);
  ASSERT_EQ(::mkfifo((dir_ / "cache/VERSION").c_str(), 0600), 0);
  auto cache = testing::returns_quickly(dir_ / "cache/VERSION", [&] { return open_cache(64 << 20); });
  ASSERT_TRUE(cache);
  EXPECT_EQ(testing::read_file(dir_ / "cache/VERSION"), "pagerfs-cache 1\n");
  EXPECT_EQ(cache->stats().snapshot().bytes_cached, 0u) << "an unreadable VERSION wipes the cache";
  auto s = stack(cache);
  expect_read(*s, a, 0, a.size);
  expect_read(*s, a, 0, a.size);
  EXPECT_EQ(cache->stats().snapshot().sectors_hit, 10u);
}

TEST_F(CacheLayerTest, UnusableDirectoriesAreRejected) {
  testing::write_file(dir_ / "file", "x");
  CacheLayerOptions options;
  auto not_dir = make_cache_layer(dir_ / "file", options);
  ASSERT_FALSE(not_dir);
  EXPECT_NE(not_dir.error().message().find("'" + dir_ / "file'"), std::string::npos) << not_dir.error().message();
  EXPECT_FALSE(make_cache_layer(dir_ / "missing/parent/cache", options));
}

TEST_F(CacheLayerTest, ADeletedCacheDirectoryKeepsServingFromBelow) {
  const BlobExtent a = add_blob(10 * kSector, 6), b = add_blob(10 * kSector, 7);
  auto cache = open_cache(64 << 20);
  auto s = stack(cache);
  expect_read(*s, a, 0, a.size);
  std::filesystem::remove_all(dir_ / "cache");
  expect_read(*s, a, 0, a.size);  // open files of deleted paths still serve
  expect_read(*s, b, 0, b.size);  // the fill fails; the read does not
  EXPECT_GE(cache->stats().snapshot().fill_errors, 1u);
}

TEST_F(CacheLayerTest, AFullCacheDiskKeepsServingFromBelow) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a tiny tmpfs";
  const std::string mnt = dir_ / "tiny";
  std::filesystem::create_directory(mnt);
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=256k"), 0) << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};
  const BlobExtent b = add_blob(200 * kSector, 8);  // 800 KiB: more than the disk
  auto cache = open_cache(64 << 20, mnt + "/cache");
  auto s = stack(cache);
  expect_read(*s, b, 0, b.size);
  expect_read(*s, b, 0, b.size);
  EXPECT_GE(cache->stats().snapshot().fill_errors, 1u);
  EXPECT_GT(cache->stats().snapshot().sectors_hit, 0u) << "what fit is served";
}

// kill -9 of a process that is filling the cache, at many points: the
// reopened cache serves only bytes that were completely stored.
TEST_F(CacheLayerTest, KillDuringFillNeverServesIncompleteBytes) {
  std::vector<BlobExtent> blobs;
  for (int i = 0; i < 4; ++i) blobs.push_back(add_blob(300 * kSector + 11 * i, 20 + i));
  std::mt19937_64 rng(99);
  uint64_t served = 0;
  for (int round = 0; round < 25; ++round) {
    // The child says when its first fill is stored, so that a slow start (a
    // sanitizer build) is not mistaken for a kill point.
    int started[2];
    ASSERT_EQ(::pipe(started), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(started[0]);
      // Fill forever in random pieces; the parent kills us somewhere.
      CacheLayerOptions options;
      options.budget_bytes = 600 * kSector;
      options.extent_sectors = 16;
      auto cache = make_cache_layer(dir_ / "cache", options);
      if (!cache) ::_exit(3);
      std::mt19937_64 child_rng(round);
      for (;;) {
        const BlobExtent& b = blobs[child_rng() % blobs.size()];
        const uint64_t first = child_rng() % b.sector_count(kSector);
        const uint64_t n = std::min<uint64_t>(b.sector_count(kSector) - first, 1 + child_rng() % 64);
        const uint64_t end = std::min<uint64_t>(b.size, (first + n) * kSector);
        const auto& c = contents_[b.digest];
        const bool filled = cache.value()->write_no_overwrite(
            b, first, std::span(c).subspan(first * kSector, end - first * kSector)).has_value();
        if (filled && started[1] >= 0) {
          (void)!::write(started[1], "x", 1);
          ::close(started[1]);
          started[1] = -1;
        }
      }
    }
    ::close(started[1]);
    pollfd first_fill{started[0], POLLIN, 0};
    const int ready = ::poll(&first_fill, 1, 30000);
    ::close(started[0]);
    if (ready != 1) {
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, 0);
      FAIL() << "round " << round << ": the child stored nothing in 30 s";
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 20000));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited " << WEXITSTATUS(status);

    auto cache = open_cache(600 * kSector);
    ASSERT_NE(cache, nullptr);
    for (const BlobExtent& b : blobs) {
      std::vector<std::byte> out(b.size);
      SectorMarker marker(0, b.sector_count(kSector));
      ASSERT_TRUE(cache->read(b, out, marker));
      for (const auto& run : marker.runs(true)) {
        const uint64_t from = run.first * kSector;
        const uint64_t to = std::min<uint64_t>(b.size, (run.first + run.count) * kSector);
        ASSERT_TRUE(std::equal(out.begin() + static_cast<ptrdiff_t>(from), out.begin() + static_cast<ptrdiff_t>(to),
                               contents_[b.digest].begin() + static_cast<ptrdiff_t>(from)))
            << "round " << round << " served wrong bytes in sectors " << run.first << "+" << run.count;
        served += run.count;
      }
    }
  }
  EXPECT_GT(served, 0u) << "the child must have stored something";
}

}  // namespace
}  // namespace pagerfs
