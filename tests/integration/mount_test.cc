// Real mounts through the real daemon: byte-exact read() and mmap, zero
// padding, read-only, corruption, concurrency, signals, stats, caches.
#include "integration/mount_store_fixture.h"

namespace pagerfs {
namespace {

using testing::MountedStore;
using testing::TempDir;

TEST_F(MountTest, EveryBlobReadsBackWithReadAndMmap) {
  auto m = mount();
  for (const PackedBlob& b : blobs_) {
    EXPECT_TRUE(read_all(m->blob(b.hex)) == b.content) << b.hex;
    EXPECT_TRUE(mmap_all(m->blob(b.hex)) == b.content) << b.hex;
    struct stat st {};
    ASSERT_EQ(::stat(m->blob(b.hex).c_str(), &st), 0);
    EXPECT_EQ(static_cast<size_t>(st.st_size), b.content.size());
    EXPECT_EQ(st.st_mode, S_IFREG | 0400u);  // owner-only: see pagerfs(8), TRUST
  }
  // The same bytes as the reference reader, through the real binary.
  const auto cat = testing::run({testing::binary_from_env("PAGERFSCTL"), "cat", store_blob(blobs_[1].hex)});
  EXPECT_TRUE(cat.out == testing::read_file(m->blob(blobs_[1].hex)));
  // The listing shows exactly the store's blobs.
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(m->path() + "/blobs/sha256")) {
    names.insert(e.path().filename());
  }
  std::set<std::string> expected;
  for (const PackedBlob& b : blobs_) expected.insert(b.hex);
  EXPECT_EQ(names, expected);
}

TEST_F(MountTest, RandomOffsetsWithPread) {
  auto m = mount();
  const PackedBlob& b = blobs_[0];
  const int fd = ::open(m->blob(b.hex).c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 500; ++i) {
    const uint64_t off = rng() % (b.content.size() + 100);
    std::vector<std::byte> buf(1 + rng() % 200000);
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
    const uint64_t expect = off >= b.content.size() ? 0 : std::min<uint64_t>(buf.size(), b.content.size() - off);
    ASSERT_EQ(n, static_cast<ssize_t>(expect)) << off;
    ASSERT_TRUE(std::equal(buf.begin(), buf.begin() + n, b.content.begin() + static_cast<ptrdiff_t>(std::min<uint64_t>(off, b.content.size()))));
  }
  ::close(fd);
}

TEST_F(MountTest, TheLastPageTailReadsZeroThroughMmap) {
  auto m = mount();
  for (const PackedBlob& b : {blobs_[0], blobs_[2], blobs_[3]}) {
    const int fd = ::open(m->blob(b.hex).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    const size_t mapped = (b.content.size() + 4095) / 4096 * 4096;
    auto* p = static_cast<const std::byte*>(::mmap(nullptr, mapped, PROT_READ, MAP_SHARED, fd, 0));
    ASSERT_NE(p, MAP_FAILED);
    EXPECT_TRUE(std::equal(b.content.begin(), b.content.end(), p));
    for (size_t i = b.content.size(); i < mapped; ++i) ASSERT_EQ(p[i], std::byte{0}) << "byte " << i;
    ::munmap(const_cast<std::byte*>(p), mapped);
    ::close(fd);
  }
}

TEST_F(MountTest, FourThreadsOfRandomMmapReads) {
  auto m = mount();
  const PackedBlob& b = blobs_[1];
  Mapping map(m->blob(b.hex), 0, MADV_RANDOM);
  ASSERT_NE(map.data(), nullptr);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < 2000; ++i) {
        const size_t page = rng() % (b.content.size() / 4096);
        if (std::memcmp(map.data() + page * 4096, b.content.data() + page * 4096, 4096) != 0) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong, 0);
}

TEST_F(MountTest, TheMountIsReadOnly) {
  auto m = mount();
  const std::string file = m->blob(blobs_[0].hex);
  errno = 0;
  EXPECT_LT(::open(file.c_str(), O_WRONLY), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_LT(::open((m->path() + "/blobs/sha256/new").c_str(), O_CREAT | O_WRONLY, 0644), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_NE(::mkdir((m->path() + "/x").c_str(), 0755), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_NE(::unlink(file.c_str()), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_NE(::chmod(file.c_str(), 0777), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_NE(::truncate(file.c_str(), 0), 0);
  EXPECT_EQ(errno, EROFS);
}

TEST_F(MountTest, ACorruptChunkIsEioAndSigbusWhileOthersStillRead) {
  damage(blobs_[0].hex);
  auto m = mount();
  const std::string bad = m->blob(blobs_[0].hex);
  const int fd = ::open(bad.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char buf[4096];
  errno = 0;
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), -1);
  EXPECT_EQ(errno, EIO);
  // Chunks after the damaged one are intact.
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 1 << 20), static_cast<ssize_t>(sizeof buf));
  EXPECT_EQ(std::memcmp(buf, blobs_[0].content.data() + (1 << 20), sizeof buf), 0);
  // An mmap reader of the damaged page dies of SIGBUS.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGBUS, SIG_DFL);  // not a sanitizer's handler: die of it
    auto* p = static_cast<volatile const char*>(::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0));
    if (p == MAP_FAILED) ::_exit(2);
    (void)p[0];
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) << "status " << status;
  ::close(fd);
  for (size_t i = 1; i < blobs_.size(); ++i) EXPECT_TRUE(read_all(m->blob(blobs_[i].hex)) == blobs_[i].content);
  // The daemon is still serving.
  EXPECT_TRUE(testing::is_pagerfs_mount(m->path()));
}

TEST_F(MountTest, EightConcurrentReadersMixingMmapAndRead) {
  const int seconds = std::getenv("PAGERFS_SOAK_SECONDS") ? std::atoi(std::getenv("PAGERFS_SOAK_SECONDS")) : 30;
  auto m = mount({"chunk_cache=1M"});  // small: keep the decoder busy
  // Warm: both files whole in the page cache. From here on, only dropping
  // it makes reads reach the daemon.
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(read_all(m->blob(blobs_[i].hex)) == blobs_[i].content);
  const auto warm = stats_of(m->path());
  std::atomic<int> errors{0};
  std::atomic<uint64_t> reads{0}, drops{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      while (std::chrono::steady_clock::now() < deadline) {
        const PackedBlob& b = blobs_[rng() % 2];
        const int fd = ::open(m->blob(b.hex).c_str(), O_RDONLY);
        if (fd < 0) {
          ++errors;
          continue;
        }
        const uint64_t off = rng() % b.content.size();
        const size_t len = std::min<size_t>(1 + rng() % 300000, b.content.size() - off);
        if (t % 2 == 0) {
          std::vector<std::byte> buf(len);
          if (::pread(fd, buf.data(), len, static_cast<off_t>(off)) != static_cast<ssize_t>(len) ||
              std::memcmp(buf.data(), b.content.data() + off, len) != 0) {
            ++errors;
          }
        } else {
          auto* p = static_cast<const std::byte*>(::mmap(nullptr, b.content.size(), PROT_READ, MAP_SHARED, fd, 0));
          if (p == MAP_FAILED || std::memcmp(p + off, b.content.data() + off, len) != 0) ++errors;
          if (p != MAP_FAILED) ::munmap(const_cast<std::byte*>(p), b.content.size());
        }
        // Now and then forget the page cache so the daemon keeps working
        // (pages mapped by another reader at that moment stay).
        if (rng() % 50 == 0) {
          if (::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0) ++drops;
          else ++errors;
        }
        ::close(fd);
        ++reads;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors, 0);
  EXPECT_GT(reads, 100u);
  EXPECT_GT(drops, 0u);
  // The drops worked: reads reached the daemon after the warm-up, and it decoded again.
  const auto after = stats_of(m->path());
  EXPECT_GT(after["fuse"]["read"]["calls"].get<uint64_t>(), warm["fuse"]["read"]["calls"].get<uint64_t>() + drops / 2);
  EXPECT_GT(after["pager"]["chunks_decoded"].get<uint64_t>(), warm["pager"]["chunks_decoded"].get<uint64_t>());
  EXPECT_EQ(after["fuse"]["read"]["errors"].get<uint64_t>(), 0u);
}

TEST_F(MountTest, SigtermDetachesButKeepsServingAnOpenMapping) {
  auto m = mount();
  const PackedBlob& b = blobs_[1];
  {
    Mapping map(m->blob(b.hex), 0, MADV_RANDOM);
    const std::byte* p = map.data();
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(std::memcmp(p, b.content.data(), 4096), 0);
    m->signal(SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (testing::is_pagerfs_mount(m->path()) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_FALSE(testing::is_pagerfs_mount(m->path())) << "lazily unmounted";
    // Pages never touched before still fault in correctly.
    EXPECT_EQ(std::memcmp(p + b.content.size() / 2, b.content.data() + b.content.size() / 2, 4096), 0);
    EXPECT_EQ(std::memcmp(p, b.content.data(), b.content.size()), 0);
    EXPECT_EQ(m->wait_exit(std::chrono::milliseconds(300)), -1) << "still serving the mapping";
    // The mount point is free again, control socket included: a new daemon
    // mounts there at once while the old one still serves the mapping.
    MountedStore again(store_path_, m->path());
    EXPECT_TRUE(read_all(again.blob(blobs_[2].hex)) == blobs_[2].content);
    EXPECT_EQ(std::memcmp(p, b.content.data(), b.content.size()), 0);
  }
  EXPECT_EQ(m->wait_exit(std::chrono::seconds(10)), 0) << m->log();
}

TEST_F(MountTest, Kill9ThenFusermountAndRemount) {
  auto m = mount();
  m->signal(SIGKILL);
  EXPECT_EQ(m->wait_exit(std::chrono::seconds(5)), -SIGKILL);
  struct stat st {};
  errno = 0;
  EXPECT_NE(::stat(m->blob(blobs_[0].hex).c_str(), &st), 0);
  EXPECT_EQ(errno, ENOTCONN);
  const auto u = testing::run({"fusermount3", "-u", m->path()});
  EXPECT_EQ(u.exit_code, 0) << u.err;
  m.reset();
  auto again = mount();
  EXPECT_TRUE(read_all(again->blob(blobs_[2].hex)) == blobs_[2].content);
}

// As a script does: unmount, and mount the same place again at once, while
// the daemon that was unmounted may still be stopping.
TEST_F(MountTest, RemountingAtOnceAfterAnUnmountWorks) {
  const std::string mnt = dir_ / "remount";
  std::filesystem::create_directory(mnt);
  struct Unmount {  // whatever happens, nothing stays mounted
    std::string path;
    ~Unmount() {
      if (testing::is_pagerfs_mount(path)) testing::run({"fusermount3", "-u", "-z", path});
    }
  } guard{mnt};
  for (int i = 0; i < 10; ++i) {
    // Daemonized: returns once mounted; exits by itself once unmounted.
    const auto r = testing::run({testing::binary_from_env("PAGERFS"), store_path_, mnt});
    ASSERT_EQ(r.exit_code, 0) << "round " << i << ": " << r.err;
    EXPECT_TRUE(read_all(mnt + "/blobs/sha256/" + blobs_[1].hex) == blobs_[1].content);
    const auto u = testing::run({"fusermount3", "-u", mnt});
    ASSERT_EQ(u.exit_code, 0) << u.err;
  }
}

TEST_F(MountTest, BadOptionsAndMissingStoresExitOneAndMountNothing) {
  const std::string pagerfs = testing::binary_from_env("PAGERFS");
  const std::string mnt = dir_ / "mnt";
  std::filesystem::create_directory(mnt);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{pagerfs, dir_ / "nostore", mnt}, "No such file or directory"},
      {{pagerfs, dir_.path(), mnt}, "not a pagerfs store"},
      {{pagerfs, store_path_, dir_ / "nomnt"}, "mount point"},
      {{pagerfs, store_path_}, "usage"},
      {{pagerfs, store_path_, mnt, "-o", "readahead=lots"}, "bad size 'lots'"},
      {{pagerfs, store_path_, mnt, "-o", "threads=0"}, "threads"},
      {{pagerfs, store_path_, mnt, "-o", "log_level=loud"}, "log_level"},
      {{pagerfs, store_path_, mnt, "-o", "verify=md5"}, "is not sha256 or xxh3"},
      {{pagerfs, store_path_, mnt, "-o", "cache_size=1M"}, "needs -o cache"},
      {{pagerfs, store_path_, mnt, "-o", "cache=/proc/self/nope"}, "cache directory"},
      {{pagerfs, store_path_, mnt, "-o", "frobnicate"}, "unknown option"},
      {{pagerfs, store_path_, mnt, "-o", "chunk_cache=1T"}, "more than half of this machine's memory"},
      {{pagerfs, store_path_, mnt, "-o", "memory_cache=1T"}, "more than half of this machine's memory"},
      {{pagerfs, store_path_, mnt, "extra"}, "unexpected argument"},
  };
  for (const auto& [argv, needle] : cases) {
    const auto r = testing::run(argv);
    EXPECT_EQ(r.exit_code, 1) << argv.back() << ": " << r.err;
    EXPECT_FALSE(r.signaled);
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_FALSE(testing::is_pagerfs_mount(mnt));
  }
  const auto help = testing::run({pagerfs, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("cache_size=SIZE"), std::string::npos);
}

TEST_F(MountTest, StatsCountersMoveAsReadsHappen) {
  auto m = mount();
  const auto before = stats_of(m->path());
  read_all(m->blob(blobs_[1].hex));
  const auto after = stats_of(m->path());
  EXPECT_GT(after["fuse"]["read"]["calls"].get<uint64_t>(), before["fuse"]["read"]["calls"].get<uint64_t>());
  EXPECT_GT(after["pager"]["chunks_decoded"].get<uint64_t>(), before["pager"]["chunks_decoded"].get<uint64_t>());
  EXPECT_GT(after["layers"][0]["bytes_read"].get<uint64_t>(), 0u);
  const auto text = testing::run({testing::binary_from_env("PAGERFSCTL"), "stats", m->path()});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("layer local"), std::string::npos) << text.out;
  const auto dump = testing::run({testing::binary_from_env("PAGERFSCTL"), "dump", m->path()});
  EXPECT_NE(dump.out.find("pager: running"), std::string::npos) << dump.out;
  // SIGUSR1 writes the same dump to the log.
  m->signal(SIGUSR1);
  for (int i = 0; i < 100 && m->log().find("pager: running") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(m->log().find("pager: running"), std::string::npos) << m->log();
}

TEST_F(MountTest, PrewarmDecodesAheadOfReads) {
  auto m = mount();
  const PackedBlob& b = blobs_[1];
  const auto r = testing::run({testing::binary_from_env("PAGERFSCTL"), "prewarm", m->path(), m->blob(b.hex)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto warm = stats_of(m->path());
  EXPECT_EQ(warm["pager"]["chunks_decoded"].get<uint64_t>(), (b.content.size() + 128 * 1024 - 1) / (128 * 1024));
  EXPECT_TRUE(read_all(m->blob(b.hex)) == b.content);
  EXPECT_EQ(stats_of(m->path())["pager"]["fetches"], warm["pager"]["fetches"]) << "all from the chunk cache";
  const auto bad = testing::run({testing::binary_from_env("PAGERFSCTL"), "prewarm", m->path(), "blobs/sha256/nope"});
  EXPECT_EQ(bad.exit_code, 1);
}

TEST_F(MountTest, ABlobPackedAfterMountingAppears) {
  auto m = mount();
  auto listed = [&](const std::string& hex) {
    for (const auto& e : std::filesystem::directory_iterator(m->path() + "/blobs/sha256")) {
      if (e.path().filename() == hex) return true;
    }
    return false;
  };
  EXPECT_TRUE(listed(blobs_[0].hex));
  const PackedBlob& late = add(testing::random_bytes(10000, 99), 4096);
  EXPECT_TRUE(listed(late.hex)) << "in the next listing, before any lookup of its name";
  EXPECT_TRUE(read_all(m->blob(late.hex)) == late.content);
  const PackedBlob& later = add(testing::random_bytes(20000, 98), 4096);
  EXPECT_TRUE(read_all(m->blob(later.hex)) == later.content) << "found by its name, before any listing";
  EXPECT_TRUE(listed(later.hex));
}

TEST_F(MountTest, TheCacheFillsPersistsAndOutlivesDamageInTheStore) {
  const std::string cache = dir_ / "cache";
  {
    auto m = mount({"cache=" + cache, "cache_size=64M"});
    EXPECT_TRUE(read_all(m->blob(blobs_[0].hex)) == blobs_[0].content);
    EXPECT_GT(stats_of(m->path())["layers"][0]["bytes_cached"].get<uint64_t>(), 3u << 20);
  }
  damage(blobs_[0].hex);
  auto m = mount({"cache=" + cache, "cache_size=64M"});
  EXPECT_TRUE(read_all(m->blob(blobs_[0].hex)) == blobs_[0].content);
  const auto s = stats_of(m->path());
  EXPECT_EQ(s["layers"][1]["bytes_read"].get<uint64_t>(), 0u) << "nothing came from the damaged store";
}

TEST_F(MountTest, ASmallCacheStaysWithinItsBudget) {
  const std::string cache = dir_ / "cache";
  auto m = mount({"cache=" + cache, "cache_size=1M"});
  read_all(m->blob(blobs_[0].hex));
  read_all(m->blob(blobs_[1].hex));
  const auto du = testing::run({"du", "-sk", cache});
  EXPECT_LE(std::stoul(du.out), 2048u) << "KiB in the cache directory";
}

}  // namespace
}  // namespace pagerfs
