// Real mounts through the real daemon: byte-exact read() and mmap, zero
// padding, read-only, corruption, concurrency, signals, caches, control.
#include <fcntl.h>
#include <climits>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/store/store.h"
#include "support/mount_fixture.h"
#include "support/subprocess.h"
#include "support/test_data.h"

namespace pagerfs {
namespace {

using testing::MountedStore;
using testing::TempDir;

struct PackedBlob {
  std::string hex;
  std::vector<std::byte> content;
};

class MountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::fuse_available()) {
      if (std::getenv("PAGERFS_REQUIRE_FUSE")) FAIL() << "/dev/fuse is required (PAGERFS_REQUIRE_FUSE)";
      GTEST_SKIP() << "no /dev/fuse";
    }
    store_path_ = dir_ / "store";
    auto store = Store::create(store_path_);
    ASSERT_TRUE(store);
    // Sizes that are deliberately not page- or chunk-aligned.
    add(testing::random_bytes(3 * 1024 * 1024 + 4096 - 42, 1), 64 * 1024);
    add(testing::compressible_bytes(5 * 1024 * 1024 + 17, 2), 128 * 1024);
    add(testing::random_bytes(4096 - 42, 3), 4096);
    add(testing::random_bytes(1, 4), 4096);
    add({}, 4096);
  }

  const PackedBlob& add(std::vector<std::byte> content, uint32_t chunk_size) {
    auto input = memory_input_stream(content);
    BlobWriterOptions options;
    options.chunk_size = chunk_size;
    auto packed = Store::open(store_path_).value().pack(*input, options);
    EXPECT_TRUE(packed) << packed.error().message();
    blobs_.push_back({packed.value().header.digest.hex(), std::move(content)});
    return blobs_.back();
  }

  std::unique_ptr<MountedStore> mount(const std::vector<std::string>& options = {}) {
    return std::make_unique<MountedStore>(store_path_, dir_ / "mnt", options);
  }

  std::string store_blob(const std::string& hex) const { return store_path_ + "/blobs/sha256/" + hex; }

  // Flips one byte in the middle of a blob file's first frame (after the header).
  void damage(const std::string& hex, uint64_t at = 128 + 100) {
    const std::string path = store_blob(hex);
    ::chmod(path.c_str(), 0644);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(at));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(static_cast<std::streamoff>(at));
    f.write(&c, 1);
  }

  TempDir dir_;
  std::string store_path_;
  std::vector<PackedBlob> blobs_;
};

std::vector<std::byte> read_all(const std::string& path) {
  const std::string s = testing::read_file(path);
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

// A read-only shared mapping of a whole file, unmapped and closed on scope exit.
class Mapping {
 public:
  explicit Mapping(const std::string& path, size_t length = 0, int advice = MADV_NORMAL) {
    fd_ = ::open(path.c_str(), O_RDONLY);
    EXPECT_GE(fd_, 0) << path;
    struct stat st {};
    ::fstat(fd_, &st);
    size_ = length != 0 ? length : static_cast<size_t>(st.st_size);
    void* map = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
    EXPECT_NE(map, MAP_FAILED) << std::strerror(errno);
    data_ = map == MAP_FAILED ? nullptr : static_cast<const std::byte*>(map);
    if (data_ != nullptr) ::madvise(const_cast<std::byte*>(data_), size_, advice);
  }
  ~Mapping() {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  const std::byte* data() const { return data_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  size_t size_ = 0;
  const std::byte* data_ = nullptr;
};

// Maps the file and copies it out page by page through faults.
std::vector<std::byte> mmap_all(const std::string& path, int advice = MADV_NORMAL) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0) << path;
  struct stat st {};
  ::fstat(fd, &st);
  std::vector<std::byte> out(static_cast<size_t>(st.st_size));
  if (st.st_size > 0) {
    void* map = ::mmap(nullptr, out.size(), PROT_READ, MAP_SHARED, fd, 0);
    EXPECT_NE(map, MAP_FAILED) << std::strerror(errno);
    ::madvise(map, out.size(), advice);
    std::memcpy(out.data(), map, out.size());
    ::munmap(map, out.size());
  }
  ::close(fd);
  return out;
}

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

nlohmann::json stats_of(const std::string& mnt);

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

nlohmann::json stats_of(const std::string& mnt) {
  const auto r = testing::run({testing::binary_from_env("PAGERFSCTL"), "stats", "--json", mnt});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out);
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

// Runs a command on mount `m` that must finish at once. A process waiting
// for a FUSE reply cannot be killed (the kernel waits for the answer even
// after SIGKILL), so a request the daemon never answers is ended by killing
// the daemon after 5 s: the test fails instead of hanging the suite.
testing::ProcessResult run_quick(MountedStore& m, const std::vector<std::string>& argv) {
  auto result = std::async(std::launch::async, [&] { return testing::run(argv); });
  if (result.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    ADD_FAILURE() << argv.front() << " " << argv.back() << " did not finish within 5 s: killing the daemon";
    m.signal(SIGKILL);
  }
  return result.get();
}

// FIFOs and symlinks named like blobs, before and after mounting: each lookup
// fails at once (a FUSE worker never blocks in open()), the rest of the mount
// keeps serving, and SIGTERM still unmounts.
TEST_F(MountTest, FifosAndSymlinksNamedLikeBlobsFailQuicklyAndTheDaemonStillStops) {
  const std::string fifo_hex = Sha256::of(bytes_of(std::string("never packed"))).hex();
  ASSERT_EQ(::mkfifo(store_blob(fifo_hex).c_str(), 0644), 0);
  // A link, named as it should be, to a good blob file outside the store.
  const PackedBlob& linked = add(testing::random_bytes(20000, 77), 4096);
  const std::string elsewhere = dir_ / "elsewhere";
  ASSERT_EQ(::rename(store_blob(linked.hex).c_str(), elsewhere.c_str()), 0);
  ASSERT_EQ(::symlink(elsewhere.c_str(), store_blob(linked.hex).c_str()), 0);

  auto m = mount();
  for (const std::string& hex : {fifo_hex, linked.hex}) {
    const auto st = run_quick(*m, {"stat", m->blob(hex)});
    EXPECT_EQ(st.exit_code, 1) << hex << ": " << st.err;  // not 124: it did not hang
    EXPECT_NE(st.err.find("Input/output error"), std::string::npos) << st.err;
    const auto cat = run_quick(*m, {"cat", m->blob(hex)});
    EXPECT_EQ(cat.exit_code, 1) << cat.err;
    EXPECT_TRUE(cat.out.empty());
  }
  // Named like a blob after mounting: not found, at once.
  const std::string late_hex = Sha256::of(bytes_of(std::string("late fifo"))).hex();
  ASSERT_EQ(::mkfifo(store_blob(late_hex).c_str(), 0644), 0);
  const auto late = run_quick(*m, {"stat", m->blob(late_hex)});
  EXPECT_EQ(late.exit_code, 1) << late.err;
  EXPECT_NE(late.err.find("No such file or directory"), std::string::npos) << late.err;
  const auto listing = run_quick(*m, {"ls", "-l", m->path() + "/blobs/sha256"});
  EXPECT_TRUE(listing.exit_code == 0 || listing.exit_code == 1) << "finished: " << listing.exit_code;
  EXPECT_TRUE(read_all(m->blob(blobs_[1].hex)) == blobs_[1].content) << "the rest is served";
  EXPECT_NE(m->log().find("is not a regular file (a FIFO)"), std::string::npos) << m->log();
  m->signal(SIGTERM);
  EXPECT_EQ(m->wait_exit(std::chrono::seconds(10)), 0) << m->log();
  EXPECT_FALSE(testing::is_pagerfs_mount(m->path()));
}

// A FIFO as an image manifest, before mounting: the daemon never hangs on it.
// It refuses the mount with one clear line, or (once bad images are skipped)
// mounts without it; either way SIGTERM stops it.
TEST_F(MountTest, AFifoAsAnImageNeverHangsTheDaemon) {
  const std::string images = store_path_ + "/images";
  ASSERT_EQ(::mkdir(images.c_str(), 0700), 0);
  ASSERT_EQ(::mkfifo((images + "/piped").c_str(), 0644), 0);
  std::unique_ptr<MountedStore> m;
  const auto start = std::chrono::steady_clock::now();
  try {
    m = mount();
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find("did not mount within"), std::string::npos) << what;
    EXPECT_NE(what.find("image 'piped': '" + images + "/piped' is not a regular file (a FIFO)"), std::string::npos)
        << what;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  if (m) {
    const auto st = run_quick(*m, {"stat", m->path() + "/images/piped"});
    EXPECT_EQ(st.exit_code, 1) << st.err;
    m->signal(SIGTERM);
    EXPECT_EQ(m->wait_exit(std::chrono::seconds(10)), 0) << m->log();
  }
  EXPECT_FALSE(testing::is_pagerfs_mount(dir_ / "mnt"));
}

// The same after mounting: a lookup of the late "image" fails at once, the
// listing of images/ finishes, and SIGTERM still unmounts.
TEST_F(MountTest, AFifoAsALateImageFailsQuicklyAndTheDaemonStillStops) {
  auto m = mount();
  const std::string images = store_path_ + "/images";
  ASSERT_EQ(::mkdir(images.c_str(), 0700), 0);
  ASSERT_EQ(::mkfifo((images + "/late").c_str(), 0644), 0);
  const auto st = run_quick(*m, {"stat", m->path() + "/images/late"});
  EXPECT_EQ(st.exit_code, 1) << st.err;
  EXPECT_NE(st.err.find("Input/output error"), std::string::npos) << st.err;
  const auto listing = run_quick(*m, {"ls", m->path() + "/images"});
  EXPECT_EQ(listing.exit_code, 0) << listing.err;
  EXPECT_EQ(listing.out, "");
  EXPECT_NE(m->log().find("is not a regular file (a FIFO)"), std::string::npos) << m->log();
  m->signal(SIGTERM);
  EXPECT_EQ(m->wait_exit(std::chrono::seconds(10)), 0) << m->log();
}

TEST_F(MountTest, WorksThroughMountDashT) {
  if (::geteuid() != 0) GTEST_SKIP() << "mount(8) needs root";
  const std::string mnt = dir_ / "mnt2";
  std::filesystem::create_directory(mnt);
  // mount(8) runs helpers with a fixed PATH, so name the binary explicitly
  // (the "PROGRAM#SOURCE" form of mount.fuse3); installed, `-t fuse.pagerfs` works.
  char bin[PATH_MAX];
  ASSERT_NE(::realpath(testing::binary_from_env("PAGERFS").c_str(), bin), nullptr);
  const auto r = testing::run({"mount", "-t", "fuse", std::string(bin) + "#" + store_path_, mnt, "-o", "readahead=256K"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(testing::is_pagerfs_mount(mnt));
  EXPECT_TRUE(read_all(mnt + "/blobs/sha256/" + blobs_[2].hex) == blobs_[2].content);
  EXPECT_EQ(testing::run({"umount", mnt}).exit_code, 0);
  // The daemonized server exits by itself once unmounted.
  EXPECT_FALSE(testing::is_pagerfs_mount(mnt));
}

// --- Failures stay local (issue 12) ---

// Sets an environment variable for the daemons started in its scope.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
    ::setenv(name_.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_.c_str()); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
};

// pread()s [offset, offset + length) whole, retrying reads that fail with
// ENOMEM or EIO (counted in *failures); any other error, or no progress in
// 200 tries, fails the test.
std::vector<std::byte> pread_retrying(int fd, uint64_t offset, size_t length, int* failures) {
  std::vector<std::byte> out(length);
  size_t got = 0;
  for (int tries = 0; got < length && tries < 200;) {
    const ssize_t n = ::pread(fd, out.data() + got, length - got, static_cast<off_t>(offset + got));
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (n == 0) {
      break;
    } else {
      EXPECT_TRUE(errno == ENOMEM || errno == EIO) << std::strerror(errno);
      ++*failures;
      ++tries;
    }
  }
  out.resize(got);
  return out;
}

uint64_t failures_of(const nlohmann::json& stats, int err) {
  const auto& f = stats["pager"]["failures"];
  return f.contains(std::strerror(err)) ? f[std::strerror(err)].get<uint64_t>() : 0;
}

TEST_F(MountTest, AnAllocationFailureInADecodeTaskFailsOneReadAndTheDaemonServesOn) {
  {
    // Every decode throws: reads that need a chunk fail with ENOMEM, and
    // the rest of the mount (and the daemon) goes on.
    auto m = [&] {
      ScopedEnv faults("PAGERFS_INJECT_FAULTS", "decode:1");
      return mount();
    }();
    const int fd = ::open(m->blob(blobs_[1].hex).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    std::vector<std::byte> buf(200000);
    for (int i = 0; i < 3; ++i) {
      errno = 0;
      EXPECT_EQ(::pread(fd, buf.data(), buf.size(), 0), -1);
      EXPECT_EQ(errno, ENOMEM) << std::strerror(errno);
    }
    ::close(fd);
    EXPECT_TRUE(read_all(m->blob(blobs_[4].hex)).empty()) << "an empty file needs no decode";
    struct stat st {};
    EXPECT_EQ(::stat(m->blob(blobs_[0].hex).c_str(), &st), 0);
    EXPECT_EQ(static_cast<size_t>(st.st_size), blobs_[0].content.size());
    EXPECT_GE(failures_of(stats_of(m->path()), ENOMEM), 3u);
    ASSERT_TRUE(testing::is_pagerfs_mount(m->path()));
  }
  // Every third decode throws: every read that succeeds is right, and each
  // failed one succeeds when retried.
  auto m = [&] {
    ScopedEnv faults("PAGERFS_INJECT_FAULTS", "decode:3");  // every third decode throws std::bad_alloc
    return mount();
  }();
  EXPECT_NE(m->log().find("PAGERFS_INJECT_FAULTS=decode:3"), std::string::npos) << m->log();
  int failed_reads = 0;
  for (const PackedBlob& b : blobs_) {
    const int fd = ::open(m->blob(b.hex).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    // Streaming reads (windows of several chunks: decoded on the pool) and
    // small random ones (one chunk: decoded inline), every byte compared.
    for (uint64_t off = 0; off < b.content.size(); off += 300000) {
      const size_t len = std::min<size_t>(300000, b.content.size() - off);
      ASSERT_TRUE(pread_retrying(fd, off, len, &failed_reads) ==
                  std::vector<std::byte>(b.content.begin() + static_cast<ptrdiff_t>(off),
                                         b.content.begin() + static_cast<ptrdiff_t>(off + len)))
          << b.hex << " at " << off;
    }
    ::close(fd);
  }
  std::mt19937_64 rng(12);
  const PackedBlob& big = blobs_[1];
  const int fd = ::open(m->blob(big.hex).c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  for (int i = 0; i < 100; ++i) {
    const uint64_t off = rng() % (big.content.size() - 4096);
    ASSERT_TRUE(pread_retrying(fd, off, 4096, &failed_reads) ==
                std::vector<std::byte>(big.content.begin() + static_cast<ptrdiff_t>(off),
                                       big.content.begin() + static_cast<ptrdiff_t>(off + 4096)));
  }
  ::close(fd);
  ASSERT_TRUE(testing::is_pagerfs_mount(m->path())) << "the daemon survived: " << m->log();
  const auto stats = stats_of(m->path());
  EXPECT_GT(failures_of(stats, ENOMEM), 0u) << "decode tasks threw, and only their requests failed";
  EXPECT_EQ(stats["pager"]["open_blobs"].get<uint64_t>(), 0u);
  const auto dump = testing::run({testing::binary_from_env("PAGERFSCTL"), "dump", m->path()});
  EXPECT_NE(dump.out.find(" 0 chunk(s) in flight"), std::string::npos) << dump.out;
  RecordProperty("failed_reads_retried", failed_reads);
}

TEST_F(MountTest, AnAllocationFailureAfterTheReplyLosesOnlyReadAhead) {
  auto m = [&] {
    ScopedEnv faults("PAGERFS_INJECT_FAULTS", "supply:1");  // every read-ahead copy fails
    return mount();
  }();
  for (const PackedBlob& b : blobs_) EXPECT_TRUE(read_all(m->blob(b.hex)) == b.content) << b.hex;
  EXPECT_TRUE(mmap_all(m->blob(blobs_[1].hex), MADV_RANDOM) == blobs_[1].content);
  ASSERT_TRUE(testing::is_pagerfs_mount(m->path())) << m->log();
  const auto stats = stats_of(m->path());
  const auto& supply = stats["fuse"]["notify_store"];
  EXPECT_GT(supply["out_of_memory"].get<uint64_t>(), 0u) << stats.dump();
  EXPECT_EQ(supply["calls"].get<uint64_t>(), 0u) << "nothing was pushed";
  // Each READ was answered once, with its data: none counted as failed.
  EXPECT_GT(stats["fuse"]["read"]["calls"].get<uint64_t>(), 0u);
  EXPECT_EQ(stats["fuse"]["read"]["errors"].get<uint64_t>(), 0u);
  EXPECT_TRUE(stats["pager"]["failures"].empty()) << stats["pager"].dump();
}

TEST_F(MountTest, ABadFaultInjectionSpecIsRefusedBeforeMounting) {
  ScopedEnv faults("PAGERFS_INJECT_FAULTS", "decode:0");
  const std::string mnt = dir_ / "mnt";
  std::filesystem::create_directory(mnt);
  const auto r = testing::run({testing::binary_from_env("PAGERFS"), store_path_, mnt, "-f"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("PAGERFS_INJECT_FAULTS: bad item 'decode:0'"), std::string::npos) << r.err;
  EXPECT_FALSE(testing::is_pagerfs_mount(mnt));
}

TEST_F(MountTest, AChunkDamagedInTheStoreReadsCorrectlyOnceTheStoreIsRepaired) {
  const PackedBlob& b = blobs_[0];
  const std::string path = store_blob(b.hex);
  const std::string good = testing::read_file(path);
  const std::string cache = dir_ / "cache";
  damage(b.hex);  // the first chunk's frame
  {
    auto m = mount({"cache=" + cache});
    const int fd = ::open(m->blob(b.hex).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    std::vector<std::byte> buf(4096);
    errno = 0;
    EXPECT_EQ(::pread(fd, buf.data(), buf.size(), 0), -1);
    EXPECT_EQ(errno, EIO);
    const auto damaged = stats_of(m->path());
    EXPECT_GE(damaged["pager"]["integrity_retries"].get<uint64_t>(), 1u);
    EXPECT_GT(damaged["layers"][0]["sectors_invalidated"].get<uint64_t>(), 0u) << "the bad fill was dropped";
    // Repaired as an operator would: a good copy renamed into place.
    testing::write_file(path + ".tmp", good);
    ASSERT_EQ(::rename((path + ".tmp").c_str(), path.c_str()), 0);
    // No drop-caches: the next read is right.
    ASSERT_EQ(::pread(fd, buf.data(), buf.size(), 0), static_cast<ssize_t>(buf.size()));
    EXPECT_EQ(std::memcmp(buf.data(), b.content.data(), buf.size()), 0);
    ::close(fd);
    EXPECT_TRUE(read_all(m->blob(b.hex)) == b.content);
  }
  // The cache disk holds the good bytes: with the store damaged again, a
  // new mount still reads them right, from the cache.
  damage(b.hex);
  auto m = mount({"cache=" + cache});
  const int fd = ::open(m->blob(b.hex).c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::vector<std::byte> buf(4096);
  ASSERT_EQ(::pread(fd, buf.data(), buf.size(), 0), static_cast<ssize_t>(buf.size())) << std::strerror(errno);
  EXPECT_EQ(std::memcmp(buf.data(), b.content.data(), buf.size()), 0);
  ::close(fd);
  EXPECT_EQ(stats_of(m->path())["pager"]["integrity_retries"].get<uint64_t>(), 0u);
}

}  // namespace
}  // namespace pagerfs
