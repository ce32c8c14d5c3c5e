// FUSE passthrough (issue 18) through a real mount with -o passthrough:
// files are materialized (small ones at their first open, big ones after a
// whole read) and the kernel then reads and maps them itself, without a
// READ; an open that meets another mode on its inode falls back to the
// pager; a materialized file damaged while no daemon ran is made again,
// never served; an evicted file held open stays right; a successor server
// knows the connection has passthrough. Needs root and a kernel with
// passthrough (6.9+): skipped otherwise.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "integration/mount_store_fixture.h"

namespace pagerfs {
namespace {

// The fixture's blobs (mount_store_fixture.h): 0 is 3 MiB, 1 is 5 MiB, 2 is
// 4054 bytes, 3 is 1 byte, 4 is empty.
constexpr size_t kBig = 0, kSmall = 2, kTiny = 3;

class PassthroughTest : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "passthrough needs root";
  }

  std::unique_ptr<testing::MountedStore> mount_passthrough(std::vector<std::string> options = {},
                                                           const std::string& budget = "64M") {
    options.push_back("cache=" + (dir_ / "cache"));
    options.push_back("passthrough=" + budget);
    auto mount = this->mount(options);
    // Passthrough is negotiated at INIT, before the mount is ready.
    const auto stats = stats_of(mount->path());
    if (!stats["passthrough"]["negotiated"].get<bool>()) {
      skip_ = "the kernel offers no passthrough (6.9+, CONFIG_FUSE_PASSTHROUGH)";
    }
    return mount;
  }
  std::string materialized(size_t k) const { return dir_ / ("cache/materialized/" + blobs_[k].hex); }

  // Waits until the background materializer is idle.
  static void wait_materialized(const std::string& mnt) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      const auto s = stats_of(mnt)["passthrough"];
      if (s["queued"].get<uint64_t>() == 0 && s["making"].get<uint64_t>() == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "still materializing after 20 s";
  }

  static uint64_t counter(const std::string& mnt, const char* name) {
    return stats_of(mnt)["passthrough"][name].get<uint64_t>();
  }
  static uint64_t reads(const std::string& mnt) { return stats_of(mnt)["fuse"]["read"]["calls"].get<uint64_t>(); }
  // The kernel sends RELEASE in the background, after close() returned:
  // waits until the daemon has answered `n` of them.
  static void wait_releases(const std::string& mnt, uint64_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (stats_of(mnt)["fuse"]["release"]["calls"].get<uint64_t>() < n &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  std::string skip_;
};

#define SKIP_WITHOUT_PASSTHROUGH() \
  if (!skip_.empty()) GTEST_SKIP() << skip_

TEST_F(PassthroughTest, ASmallFileIsReadAndMappedByTheKernelFromItsFirstOpen) {
  auto mount = mount_passthrough();
  SKIP_WITHOUT_PASSTHROUGH();
  const std::string path = mount->blob(blobs_[kSmall].hex);
  const uint64_t reads_before = reads(mount->path());
  EXPECT_EQ(read_all(path), blobs_[kSmall].content);
  wait_releases(mount->path(), 1);
  EXPECT_EQ(mmap_all(path), blobs_[kSmall].content);
  wait_releases(mount->path(), 2);
  EXPECT_EQ(reads(mount->path()), reads_before) << "a READ reached the daemon";
  EXPECT_EQ(counter(mount->path(), "passthrough_opens"), 2u);
  EXPECT_EQ(counter(mount->path(), "made_at_open"), 1u);
  EXPECT_EQ(counter(mount->path(), "live_backings"), 0u);
  EXPECT_TRUE(std::filesystem::is_regular_file(materialized(kSmall)));
  // An empty file has nothing to read: the pager's way, as ever.
  EXPECT_TRUE(read_all(mount->blob(blobs_[4].hex)).empty());
}

TEST_F(PassthroughTest, ABigFileGoesThroughThePagerUntilItWasReadWhole) {
  auto mount = mount_passthrough();
  SKIP_WITHOUT_PASSTHROUGH();
  const std::string path = mount->blob(blobs_[kBig].hex);
  const uint64_t reads_before = reads(mount->path());
  EXPECT_EQ(read_all(path), blobs_[kBig].content);
  EXPECT_GT(reads(mount->path()), reads_before);
  EXPECT_EQ(counter(mount->path(), "cached_opens"), 1u);
  wait_releases(mount->path(), 1);
  wait_materialized(mount->path());
  EXPECT_EQ(counter(mount->path(), "made_after_whole_read"), 1u);
  const uint64_t reads_after = reads(mount->path());
  EXPECT_EQ(read_all(path), blobs_[kBig].content);
  EXPECT_EQ(mmap_all(path), blobs_[kBig].content);
  EXPECT_EQ(reads(mount->path()), reads_after) << "a READ reached the daemon";
  EXPECT_EQ(counter(mount->path(), "passthrough_opens"), 2u);
}

TEST_F(PassthroughTest, AFileDamagedWhileNoDaemonRanIsMadeAgainNeverServed) {
  {
    auto mount = mount_passthrough();
    SKIP_WITHOUT_PASSTHROUGH();
    EXPECT_EQ(read_all(mount->blob(blobs_[kSmall].hex)), blobs_[kSmall].content);
  }
  // The same size, one byte changed: only its hash tells.
  {
    std::fstream f(materialized(kSmall), std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f);
    f.seekp(100);
    f.put(static_cast<char>(static_cast<unsigned char>(blobs_[kSmall].content[100]) ^ 0xff));
  }
  auto mount = mount_passthrough();
  const std::string path = mount->blob(blobs_[kSmall].hex);
  EXPECT_EQ(read_all(path), blobs_[kSmall].content);
  EXPECT_EQ(mmap_all(path), blobs_[kSmall].content);
  EXPECT_EQ(counter(mount->path(), "damaged_found"), 1u);
  EXPECT_EQ(counter(mount->path(), "made_at_open"), 1u);
  EXPECT_EQ(counter(mount->path(), "passthrough_opens"), 2u);
}

TEST_F(PassthroughTest, AKillDuringMaterializationLeavesNothingHalfMadeThatIsUsed) {
  std::unique_ptr<testing::MountedStore> mount = mount_passthrough();
  SKIP_WITHOUT_PASSTHROUGH();
  // The 5 MiB file read whole, and the daemon killed while the background
  // thread writes it (or just before, or just after).
  EXPECT_EQ(read_all(mount->blob(blobs_[1].hex)), blobs_[1].content);
  mount->signal(SIGKILL);
  mount->wait_exit(std::chrono::seconds(5));
  mount.reset();
  // Whatever is on disk now: a complete file under its name, or nothing
  // under it (a temporary at most, removed by the next daemon).
  const std::string dir = dir_ / "cache/materialized";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename();
    if (name == blobs_[1].hex) {
      EXPECT_EQ(testing::read_file(entry.path()), testing::to_string(blobs_[1].content));
    }
  }
  mount = mount_passthrough();
  // The next daemon serves it right, whichever way, and left no temporary.
  EXPECT_EQ(read_all(mount->blob(blobs_[1].hex)), blobs_[1].content);
  wait_materialized(mount->path());
  EXPECT_EQ(read_all(mount->blob(blobs_[1].hex)), blobs_[1].content);
  EXPECT_EQ(mmap_all(mount->blob(blobs_[1].hex)), blobs_[1].content);
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    EXPECT_FALSE(entry.path().filename().string().starts_with(".tmp")) << entry.path();
  }
  EXPECT_EQ(counter(mount->path(), "damaged_found"), 0u);
}

TEST_F(PassthroughTest, AnEvictedFileHeldOpenStaysRight) {
  // Room for one 4 KiB file: the second evicts the first.
  auto mount = mount_passthrough({}, "4K");
  SKIP_WITHOUT_PASSTHROUGH();
  const Mapping held(mount->blob(blobs_[kSmall].hex));
  ASSERT_NE(held.data(), nullptr);
  EXPECT_EQ(read_all(mount->blob(blobs_[kTiny].hex)), blobs_[kTiny].content);
  EXPECT_EQ(counter(mount->path(), "evictions"), 1u);
  EXPECT_FALSE(std::filesystem::exists(materialized(kSmall)));
  ::posix_fadvise(held.fd(), 0, 0, POSIX_FADV_DONTNEED);
  EXPECT_EQ(std::memcmp(held.data(), blobs_[kSmall].content.data(), blobs_[kSmall].content.size()), 0);
  std::vector<std::byte> buf(blobs_[kSmall].content.size());
  EXPECT_EQ(::pread(held.fd(), buf.data(), buf.size(), 0), static_cast<ssize_t>(buf.size()));
  EXPECT_EQ(buf, blobs_[kSmall].content);
}

TEST_F(PassthroughTest, AnOpenThatMeetsACachedOpenIsCachedAndRight) {
  auto mount = mount_passthrough();
  SKIP_WITHOUT_PASSTHROUGH();
  const std::string path = mount->blob(blobs_[kBig].hex);
  // Not materialized yet: served through the pager, and kept open.
  const int cached = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(cached, 0);
  EXPECT_EQ(read_all(path), blobs_[kBig].content);  // read whole: materialized after
  wait_materialized(mount->path());
  ASSERT_EQ(counter(mount->path(), "made_after_whole_read"), 1u);
  // Now there is a backing file, but the inode is in cached mode: the
  // kernel would fail a passthrough open (EIO), so it is not asked.
  EXPECT_EQ(read_all(path), blobs_[kBig].content);
  EXPECT_EQ(mmap_all(path), blobs_[kBig].content);
  EXPECT_EQ(counter(mount->path(), "passthrough_opens"), 0u);
  EXPECT_GE(counter(mount->path(), "refused_by_mode"), 1u);
  ::close(cached);
  wait_releases(mount->path(), 4);
  // Alone again: passthrough; and while it is live, an open finds the
  // backing file gone and still shares it (the kernel would fail a cached one).
  const int passthrough = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(passthrough, 0);
  std::filesystem::remove(materialized(kBig));
  EXPECT_EQ(mmap_all(path), blobs_[kBig].content);
  EXPECT_EQ(counter(mount->path(), "passthrough_opens"), 2u);
  ::close(passthrough);
  wait_releases(mount->path(), 6);
  // Gone and nothing open: the pager again.
  EXPECT_EQ(read_all(path), blobs_[kBig].content);
  EXPECT_EQ(counter(mount->path(), "passthrough_opens"), 2u);
  wait_releases(mount->path(), 7);
  EXPECT_EQ(counter(mount->path(), "live_backings"), 0u);
}

TEST_F(PassthroughTest, ASuccessorKnowsPassthroughIsOn) {
  auto mount = mount_passthrough({"supervise"});
  SKIP_WITHOUT_PASSTHROUGH();
  const std::string first = mount->blob(blobs_[kSmall].hex);
  const Mapping held(first);  // a passthrough open that outlives its server
  ASSERT_NE(held.data(), nullptr);
  const pid_t server = stats_of(mount->path())["takeover"]["pid"].get<pid_t>();
  ASSERT_EQ(::kill(server, SIGKILL), 0);
  // The successor serves (it never saw INIT).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  nlohmann::json stats;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto r = testing::run({testing::binary_from_env("PAGERFSCTL"), "stats", "--json", mount->path()});
    stats = r.exit_code == 0 ? nlohmann::json::parse(r.out, nullptr, false) : nlohmann::json();
  } while ((stats.is_discarded() || stats.is_null() || stats["takeover"]["pid"].get<pid_t>() == server) &&
           std::chrono::steady_clock::now() < deadline);
  ASSERT_FALSE(stats.is_null() || stats.is_discarded()) << mount->log();
  EXPECT_EQ(stats["takeover"]["generation"].get<uint32_t>(), 1u);
  EXPECT_TRUE(stats["passthrough"]["negotiated"].get<bool>()) << mount->log();
  // The kernel still reads the held file, with nobody asked.
  EXPECT_EQ(std::memcmp(held.data(), blobs_[kSmall].content.data(), blobs_[kSmall].content.size()), 0);
  // A new open of it must share the first server's backing file (the kernel
  // fails any other answer while the mapping lives): the journal says which.
  const uint64_t reads_before = reads(mount->path());
  EXPECT_EQ(read_all(first), blobs_[kSmall].content);
  // A file the first server never handed out: passthrough, by the successor.
  EXPECT_EQ(read_all(mount->blob(blobs_[kTiny].hex)), blobs_[kTiny].content);
  EXPECT_EQ(reads(mount->path()), reads_before);
  EXPECT_EQ(counter(mount->path(), "passthrough_opens"), 2u);
  EXPECT_EQ(counter(mount->path(), "backing_registrations"), 1u);
}

}  // namespace
}  // namespace pagerfs
