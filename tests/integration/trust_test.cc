// The trust model of pagerfs(8), attacked through real mounts: setuid bits
// and device nodes of an image are inert unless trusted, on every way of
// mounting (the daemon itself, mount -t, an fstab line); another user reads
// an image only as its modes allow and never reads the blob view; a remount
// read-write still refuses every change; a second stop signal aborts only
// the daemon's own connection.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "pagerfs/util/digest.h"
#include "pagerfs/util/file.h"
#include "support/mount_fixture.h"
#include "support/subprocess.h"

namespace pagerfs {
namespace {

using testing::MountedStore;
using testing::ProcessResult;
using testing::TempDir;

ProcessResult pagerfsctl(std::vector<std::string> args) {
  args.insert(args.begin(), testing::binary_from_env("PAGERFSCTL"));
  return testing::run(args);
}

// The mount options of the mount at `path` (/proc/self/mountinfo, field 6),
// empty if nothing is mounted there.
std::string mount_options(const std::string& path) {
  const auto info = testing::mount_info(path);
  return info ? "," + info->options + "," : "";
}

uid_t test_uid() { return testing::test_user().uid; }

// Unmounts `path` whatever happens; the daemon mount(8) started exits by
// itself once unmounted.
struct UnmountGuard {
  std::string path;
  ~UnmountGuard() {
    for (int i = 0; i < 5 && testing::is_pagerfs_mount(path); ++i) testing::run({"umount", "-l", path});
    if (testing::is_pagerfs_mount(path)) testing::run({"fusermount3", "-u", "-z", path});
  }
};

std::string realpath_of(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) throw std::runtime_error("realpath " + path);
  return buf;
}

// One store for the suite: an image of a root-owned tree with a setuid-root
// copy of id(1), a device node, a private file and a public one.
class TrustTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0 || !testing::fuse_available()) return;
    dir_ = std::make_unique<TempDir>();
    ::chmod(dir_->path().c_str(), 0755);  // the test user walks to the mount points
    const std::string tree = *dir_ / "tree";
    std::filesystem::create_directories(tree + "/bin");
    std::filesystem::copy_file("/usr/bin/id", tree + "/bin/id");
    ::chmod((tree + "/bin/id").c_str(), 04755);
    ASSERT_EQ(::mknod((tree + "/null").c_str(), S_IFCHR | 0666, ::makedev(1, 3)), 0);
    testing::write_file(tree + "/shadow", kSecret);
    ::chmod((tree + "/shadow").c_str(), 0600);
    testing::write_file(tree + "/motd", "public\n");
    ::chmod((tree + "/motd").c_str(), 0644);
    store_ = *dir_ / "store";
    const ProcessResult packed = pagerfsctl({"pack", "--store", store_, "--image", "root", tree});
    ASSERT_EQ(packed.exit_code, 0) << packed.err;
  }
  static void TearDownTestSuite() { dir_.reset(); }

  void SetUp() override {
    if (!testing::fuse_available()) {
      if (std::getenv("PAGERFS_REQUIRE_FUSE")) FAIL() << "/dev/fuse is required (PAGERFS_REQUIRE_FUSE)";
      GTEST_SKIP() << "no /dev/fuse";
    }
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (setuid files, device nodes, a second user)";
    ASSERT_FALSE(store_.empty());
  }

  std::string mountpoint(const std::string& name) {
    const std::string path = mnt_dir_.path() + "/" + name;
    std::filesystem::create_directories(path);
    ::chmod(mnt_dir_.path().c_str(), 0755);
    return path;
  }

  // What the setuid copy of id(1) says, run by the test user.
  static std::string effective_uid_through(const std::string& mnt) {
    const ProcessResult r = testing::run_as_test_user({mnt + "/images/root/bin/id", "-u"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  // Checks a mount's flags and that its setuid file and device node are inert.
  static void expect_inert(const std::string& mnt) {
    const std::string options = mount_options(mnt);
    EXPECT_NE(options.find(",nosuid,"), std::string::npos) << options;
    EXPECT_NE(options.find(",nodev,"), std::string::npos) << options;
    EXPECT_NE(options.find(",ro,"), std::string::npos) << options;
    // The bit is shown as packed, and has no effect.
    struct stat st {};
    ASSERT_EQ(::stat((mnt + "/images/root/bin/id").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 04755u);
    EXPECT_EQ(effective_uid_through(mnt), std::to_string(test_uid()) + "\n");
    errno = 0;
    EXPECT_LT(::open((mnt + "/images/root/null").c_str(), O_RDONLY), 0);
    EXPECT_EQ(errno, EACCES);
  }

  static constexpr const char* kSecret = "root:$6$secret-hash:19000:0:99999:7:::\n";
  static inline std::unique_ptr<TempDir> dir_;
  static inline std::string store_;
  TempDir mnt_dir_;
};

TEST_F(TrustTest, SetuidAndDevicesAreInertThroughADefaultMount) {
  MountedStore m(store_, mountpoint("direct"), {"allow_other"});
  expect_inert(m.path());
  // Asking for suid,dev the generic way changes nothing.
  MountedStore asked(store_, mountpoint("asked"), {"allow_other,suid,dev"});
  expect_inert(asked.path());
}

TEST_F(TrustTest, TrustSuidAndTrustDevAreTheOnlyWayIn) {
  MountedStore m(store_, mountpoint("trusted"), {"allow_other,trust_suid,trust_dev"});
  const std::string options = mount_options(m.path());
  EXPECT_EQ(options.find(",nosuid,"), std::string::npos) << options;
  EXPECT_EQ(options.find(",nodev,"), std::string::npos) << options;
  // The same binary that was inert above runs as root: the test can fail.
  EXPECT_EQ(effective_uid_through(m.path()), "0\n");
  const int fd = ::open((m.path() + "/images/root/null").c_str(), O_RDONLY);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  if (fd >= 0) ::close(fd);
  // In the other order too (each flag is stored on its own).
  MountedStore reversed(store_, mountpoint("reversed"), {"allow_other,trust_dev,trust_suid"});
  const std::string reversed_options = mount_options(reversed.path());
  EXPECT_EQ(reversed_options.find(",nosuid,"), std::string::npos) << reversed_options;
  EXPECT_EQ(reversed_options.find(",nodev,"), std::string::npos) << reversed_options;
}

TEST_F(TrustTest, SetuidAndDevicesAreInertThroughMountDashT) {
  const std::string mnt = mountpoint("dash-t");
  UnmountGuard guard{mnt};
  // mount.fuse3 adds suid,dev for root unless told otherwise.
  const std::string program = realpath_of(testing::binary_from_env("PAGERFS"));
  const ProcessResult r = testing::run({"mount", "-t", "fuse", program + "#" + store_, mnt, "-o", "allow_other"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_inert(mnt);
}

TEST_F(TrustTest, SetuidAndDevicesAreInertThroughAnFstabLine) {
  const std::string mnt = mountpoint("fstab");
  UnmountGuard guard{mnt};
  const std::string program = realpath_of(testing::binary_from_env("PAGERFS"));
  const std::string fstab = mnt_dir_ / "fstab.txt";
  // "defaults" means suid,dev to mount(8).
  testing::write_file(fstab, program + "#" + store_ + " " + mnt + " fuse defaults,allow_other 0 0\n");
  const ProcessResult r = testing::run({"mount", "--fstab", fstab, mnt});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_inert(mnt);
}

TEST_F(TrustTest, TrustOptionsNeedRoot) {
  const std::string mnt = mountpoint("user");
  ::chown(mnt.c_str(), test_uid(), 0);
  const ProcessResult r =
      testing::run_as_test_user({testing::binary_from_env("PAGERFS"), store_, mnt, "-o", "trust_suid"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("trust_suid needs root"), std::string::npos) << r.err;
  EXPECT_FALSE(testing::is_pagerfs_mount(mnt));
}

TEST_F(TrustTest, AnotherUserReadsImagesByTheirModesAndNeverTheBlobView) {
  MountedStore m(store_, mountpoint("shared"), {"allow_other"});
  const std::string root = m.path() + "/images/root";
  const std::string secret_blob = m.path() + "/blobs/sha256/" + Sha256::of(bytes_of(std::string(kSecret))).hex();
  EXPECT_EQ(testing::read_file(secret_blob), kSecret) << "the owner (root) reads the blob view";
  const ProcessResult motd = testing::run_as_test_user({"cat", root + "/motd"});
  EXPECT_EQ(motd.exit_code, 0) << motd.err;
  EXPECT_EQ(motd.out, "public\n");
  for (const std::string& path : {root + "/shadow", secret_blob}) {
    const ProcessResult r = testing::run_as_test_user({"cat", path});
    EXPECT_NE(r.exit_code, 0) << path;
    EXPECT_EQ(r.out, "") << path;
    EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << path << ": " << r.err;
  }
  const ProcessResult ls = testing::run_as_test_user({"ls", m.path() + "/blobs/sha256"});
  EXPECT_NE(ls.exit_code, 0);
  EXPECT_EQ(ls.out, "");
  // Nor through pagerfsctl, which reads the store as the user it runs as.
  const ProcessResult cat = testing::run_as_test_user({testing::binary_from_env("PAGERFSCTL"), "cat", store_,
                                         Sha256::of(bytes_of(std::string(kSecret))).hex()});
  EXPECT_NE(cat.exit_code, 0);
  EXPECT_EQ(cat.out.find("secret-hash"), std::string::npos);
}

TEST_F(TrustTest, ARemountReadWriteStillRefusesEveryChange) {
  MountedStore m(store_, mountpoint("rw"));
  // -i: the system call itself, not mount.fuse3 again.
  const ProcessResult remount = testing::run({"mount", "-i", "-o", "remount,rw", m.path()});
  if (remount.exit_code != 0) GTEST_SKIP() << "this kernel refuses to remount FUSE read-write: " << remount.err;
  ASSERT_EQ(mount_options(m.path()).find(",ro,"), std::string::npos) << mount_options(m.path());
  const std::string root = m.path() + "/images/root";
  errno = 0;
  EXPECT_LT(::open((root + "/motd").c_str(), O_WRONLY), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_LT(::open((root + "/new").c_str(), O_CREAT | O_WRONLY, 0644), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_NE(::mkdir((root + "/dir").c_str(), 0755), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_NE(::unlink((root + "/motd").c_str()), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_NE(::chmod((root + "/motd").c_str(), 0777), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_NE(::setxattr((root + "/motd").c_str(), "user.x", "y", 1, 0), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_NE(::rename((root + "/motd").c_str(), (root + "/motd2").c_str()), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(testing::read_file(root + "/motd"), "public\n");
  // Each refusal came from the daemon itself, not from the kernel: six
  // write operations (the open for writing is refused by open itself).
  const ProcessResult stats = pagerfsctl({"stats", "--json", m.path()});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  const auto s = nlohmann::json::parse(stats.out);
  EXPECT_EQ(s["fuse"]["denied"]["calls"].get<uint64_t>(), 6u) << stats.out;
}

TEST_F(TrustTest, ASecondStopSignalNeverAbortsANewerMount) {
  const std::string mnt = mountpoint("again");
  auto a = std::make_unique<MountedStore>(store_, mnt);
  {
    const int fd = ::open((mnt + "/images/root/motd").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    a->signal(SIGTERM);  // detached; the open file is still served
    for (int i = 0; i < 500 && testing::is_pagerfs_mount(mnt); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::close(fd);  // A's last file: its connection ends
  }
  MountedStore b(store_, mnt);
  a->signal(SIGTERM);  // A, if still stopping, must not abort B's connection
  a->wait_exit(std::chrono::seconds(10));
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(testing::read_file(mnt + "/images/root/motd"), "public\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(testing::is_pagerfs_mount(mnt));
}

}  // namespace
}  // namespace pagerfs
