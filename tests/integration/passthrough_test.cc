// FUSE passthrough (issue 18) through a real mount: the kernel reads and
// maps a backing file itself, without a READ; an open that meets another
// mode on its inode falls back to the pager; a successor server knows the
// connection has passthrough. Needs root and a kernel with passthrough
// (6.9+): skipped otherwise.
//
// The backing files come from the test hook -o passthrough_test_dir=DIR
// (DIR/<content digest hex>; backing_provider.h) until the cache of
// decompressed files provides them.
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

class PassthroughTest : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "passthrough needs root";
    backing_ = dir_ / "backing";
    std::filesystem::create_directories(backing_);
  }

  // The backing file of blob `k`: its content, or `content` (a marker that
  // shows who served a read).
  void provide(size_t k, const std::vector<std::byte>* content = nullptr) {
    testing::write_file(backing_ + "/" + blobs_[k].hex, testing::to_string(content ? *content : blobs_[k].content));
  }
  void withdraw(size_t k) { std::filesystem::remove(backing_ + "/" + blobs_[k].hex); }

  std::unique_ptr<testing::MountedStore> mount_passthrough(std::vector<std::string> options = {}) {
    options.push_back("passthrough_test_dir=" + backing_);
    auto mount = this->mount(options);
    // Passthrough is negotiated at INIT, before the mount is ready.
    const auto stats = stats_of(mount->path());
    if (!stats["passthrough"]["negotiated"].get<bool>()) {
      skip_ = "the kernel offers no passthrough (6.9+, CONFIG_FUSE_PASSTHROUGH)";
    }
    return mount;
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

  std::string backing_;
  std::string skip_;
};

#define SKIP_WITHOUT_PASSTHROUGH() \
  if (!skip_.empty()) GTEST_SKIP() << skip_

TEST_F(PassthroughTest, TheKernelReadsAndMapsTheBackingFileItself) {
  provide(0);
  auto mount = mount_passthrough();
  SKIP_WITHOUT_PASSTHROUGH();
  const std::string path = mount->blob(blobs_[0].hex);
  const uint64_t reads_before = reads(mount->path());
  EXPECT_EQ(read_all(path), blobs_[0].content);
  wait_releases(mount->path(), 1);
  EXPECT_EQ(mmap_all(path), blobs_[0].content);
  wait_releases(mount->path(), 2);
  EXPECT_EQ(reads(mount->path()), reads_before) << "a READ reached the daemon";
  EXPECT_EQ(counter(mount->path(), "passthrough_opens"), 2u);
  EXPECT_EQ(counter(mount->path(), "backing_registrations"), 2u);  // each open was alone on its inode
  EXPECT_EQ(counter(mount->path(), "live_backings"), 0u);

  // A file with no backing file is read through the pager, as ever.
  EXPECT_EQ(read_all(mount->blob(blobs_[1].hex)), blobs_[1].content);
  EXPECT_GT(reads(mount->path()), reads_before);
  EXPECT_EQ(counter(mount->path(), "cached_opens"), 1u);
}

TEST_F(PassthroughTest, ReadsComeFromTheBackingFileNotThePager) {
  // A backing file of the right size with other bytes: what a reader sees
  // tells who served it (a test hook may lie; the cache never does).
  std::vector<std::byte> marker(blobs_[2].content.size(), std::byte{0x5a});
  provide(2, &marker);
  auto mount = mount_passthrough();
  SKIP_WITHOUT_PASSTHROUGH();
  const std::string path = mount->blob(blobs_[2].hex);
  {
    const Mapping map(path);
    ASSERT_NE(map.data(), nullptr);
    EXPECT_EQ(std::memcmp(map.data(), marker.data(), marker.size()), 0);
    EXPECT_EQ(read_all(path), marker) << "a second open shares the backing file";
    EXPECT_EQ(counter(mount->path(), "live_backings"), 1u);
    // The open file shows the kernel's view of it.
    std::ifstream fdinfo("/proc/self/fdinfo/" + std::to_string(map.fd()));
    std::string info((std::istreambuf_iterator<char>(fdinfo)), std::istreambuf_iterator<char>());
    RecordProperty("fdinfo", info);
  }
  // The mapping is gone: the registration is dropped.
  wait_releases(mount->path(), 2);
  EXPECT_EQ(counter(mount->path(), "live_backings"), 0u);
  EXPECT_EQ(counter(mount->path(), "backing_registrations"), 1u);
}

TEST_F(PassthroughTest, AnOpenThatMeetsACachedOpenIsCachedAndRight) {
  auto mount = mount_passthrough();
  SKIP_WITHOUT_PASSTHROUGH();
  const std::string path = mount->blob(blobs_[0].hex);
  // No backing file yet: served through the pager, and kept open.
  const int cached = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(cached, 0);
  provide(0);
  // Now one is there, but the inode is in cached mode: the kernel would
  // fail a passthrough open (EIO), so it is not asked.
  EXPECT_EQ(read_all(path), blobs_[0].content);
  EXPECT_EQ(mmap_all(path), blobs_[0].content);
  EXPECT_EQ(counter(mount->path(), "refused_by_mode"), 2u);
  EXPECT_EQ(counter(mount->path(), "passthrough_opens"), 0u);
  ::close(cached);
  wait_releases(mount->path(), 3);
  // Alone again: passthrough; and while it is live, an open finds the
  // backing file gone and still shares it (the kernel would fail a cached one).
  const int passthrough = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(passthrough, 0);
  withdraw(0);
  EXPECT_EQ(mmap_all(path), blobs_[0].content);
  EXPECT_EQ(counter(mount->path(), "passthrough_opens"), 2u);
  ::close(passthrough);
  wait_releases(mount->path(), 5);
  // Gone and nothing open: the pager again.
  EXPECT_EQ(read_all(path), blobs_[0].content);
  EXPECT_EQ(counter(mount->path(), "passthrough_opens"), 2u);
  wait_releases(mount->path(), 6);
  EXPECT_EQ(counter(mount->path(), "live_backings"), 0u);
}

TEST_F(PassthroughTest, ASuccessorKnowsPassthroughIsOn) {
  provide(0);
  provide(1);
  auto mount = mount_passthrough({"supervise"});
  SKIP_WITHOUT_PASSTHROUGH();
  const std::string first = mount->blob(blobs_[0].hex);
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
  EXPECT_EQ(std::memcmp(held.data(), blobs_[0].content.data(), blobs_[0].content.size()), 0);
  // A new open of it must share the first server's backing file (the kernel
  // fails any other answer while the mapping lives): the journal says which.
  const uint64_t reads_before = reads(mount->path());
  EXPECT_EQ(read_all(first), blobs_[0].content);
  // A file the first server never handed out: passthrough, by the successor.
  EXPECT_EQ(read_all(mount->blob(blobs_[1].hex)), blobs_[1].content);
  EXPECT_EQ(reads(mount->path()), reads_before);
  EXPECT_EQ(counter(mount->path(), "passthrough_opens"), 2u);
  EXPECT_EQ(counter(mount->path(), "backing_registrations"), 1u);
}

}  // namespace
}  // namespace pagerfs
