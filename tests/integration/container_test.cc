// Containers started by real runtimes straight from a pagerfs mount: an OCI
// image built here with umoci (busybox, a user of its own, an entrypoint, an
// environment, a working directory) is imported, mounted with allow_other,
// and run by runc and crun from the bundle `pagerfsctl bundle` writes, by
// bubblewrap over the image directory, and by runc over an overlayfs whose
// lower directory is the image and whose upper is a tmpfs (a writable
// container that leaves the image as it was).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "support/mount_fixture.h"
#include "support/scoped_unmount.h"
#include "support/subprocess.h"

namespace pagerfs {
namespace {

using testing::run;

// Builds the OCI layout img:t in "$1".
constexpr const char* kBuildImage = R"(set -e
cd "$1"
umoci init --layout img
umoci new --image img:t
umoci unpack --image img:t b >/dev/null
r=b/rootfs
mkdir -p $r/bin $r/etc $r/proc $r/dev $r/sys $r/tmp $r/work
cp /bin/busybox $r/bin/busybox
for c in sh id cat pwd echo rm ls hostname; do ln -s busybox $r/bin/$c; done
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1234:1235:app:/work:/bin/sh\n' > $r/etc/passwd
printf 'root:x:0:\napp:x:1235:\nextra:x:777:app\n' > $r/etc/group
echo hello > $r/etc/hello
umoci repack --image img:t b
umoci config --image img:t --config.entrypoint=/bin/sh --config.cmd=-c \
  --config.cmd='id; pwd; echo "greeting=$GREETING"; cat /etc/hello' \
  --config.env=GREETING=hi --config.workingdir=/work --config.user=app
)";

// What the image's own command prints.
constexpr const char* kImageOutput =
    "uid=1234(app) gid=1235(app) groups=777(extra)\n/work\ngreeting=hi\nhello\n";

class ContainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::fuse_available()) {
      if (std::getenv("PAGERFS_REQUIRE_FUSE"))
        FAIL() << "/dev/fuse is required (PAGERFS_REQUIRE_FUSE)";
      GTEST_SKIP() << "no /dev/fuse";
    }
    if (::geteuid() != 0) GTEST_SKIP() << "container runtimes need root here";
    const auto built = run({"bash", "-c", kBuildImage, "build", dir_.path()});
    ASSERT_EQ(built.exit_code, 0) << built.err;
    const auto imported = run({pagerfsctl_, "import", "--store", dir_ / "store", "--image", "t",
                               "oci:" + (dir_ / "img") + ":t"});
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
  }

  // Skips (or, in CI, fails) when `tool` is not installed: scripts/setup installs every one.
  bool have(const std::string& tool) {
    if (run({"sh", "-c", "command -v \"$1\"", "have", tool}).exit_code == 0) return true;
    if (std::getenv("CI")) ADD_FAILURE() << tool << " is not installed (scripts/setup installs it)";
    return false;
  }

  void mount(const std::vector<std::string>& options = {"allow_other"}) {
    mount_ = std::make_unique<testing::MountedStore>(dir_ / "store", dir_ / "mnt", options);
  }

  testing::ProcessResult bundle(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {pagerfsctl_,    "bundle",  "--store",
                                     dir_ / "store", "--image", "t"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run(argv);
  }

  // Runs the container of `bundle_dir` to its end with `runtime`, its state
  // kept in the test's directory; bounded in time.
  testing::ProcessResult run_container(const std::string& runtime, const std::string& bundle_dir) {
    const std::string state = dir_ / ("state-" + runtime);
    std::vector<std::string> argv = {"timeout",
                                     "-k",
                                     "5",
                                     "120",
                                     runtime,
                                     "--root",
                                     state,
                                     "run",
                                     "--bundle",
                                     bundle_dir,
                                     "pagerfs-test-" + std::to_string(::getpid())};
    if (runtime == "crun" && hybrid_cgroups_with_v2_controllers()) {
      // crun 1.8 refuses a hybrid cgroup hierarchy whose v2 part has
      // controllers; without that mount it sees plain cgroup v1.
      std::cout << "note: this machine's cgroup v2 hierarchy (hybrid mode) has controllers, which "
                   "crun 1.8 "
                   "refuses: crun runs in a mount namespace without /sys/fs/cgroup/unified\n";
      argv.insert(argv.begin(), {"unshare", "--mount", "sh", "-c",
                                 "umount /sys/fs/cgroup/unified && exec \"$@\"", "sh"});
    }
    return run(argv);
  }

  static bool hybrid_cgroups_with_v2_controllers() {
    const std::string controllers = "/sys/fs/cgroup/unified/cgroup.controllers";
    return std::filesystem::exists(controllers) && !testing::read_file(controllers).empty();
  }

  std::string image_root() const { return mount_->path() + "/images/t"; }

  testing::TempDir dir_;
  const std::string pagerfsctl_ = testing::binary_from_env("PAGERFSCTL");
  std::unique_ptr<testing::MountedStore> mount_;
};

TEST_F(ContainerTest, RuncRunsTheImageFromTheMount) {
  if (!have("runc")) GTEST_SKIP() << "runc is not installed";
  mount();
  const auto made = bundle({"--mount", mount_->path(), dir_ / "bundle"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_NE(made.out.find("user 1234:1235, cwd /work"), std::string::npos) << made.out;
  const auto ran = run_container("runc", dir_ / "bundle");
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, kImageOutput) << ran.err;
}

TEST_F(ContainerTest, CrunRunsTheImageFromTheMount) {
  if (!have("crun")) GTEST_SKIP() << "crun is not installed";
  mount();
  const auto made =
      bundle({"--mount", mount_->path(), "--hostname", "pagerfs-box", dir_ / "bundle", "--", "-c",
              "hostname; cat /etc/hello; echo x > /etc/new || echo read-only"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto ran = run_container("crun", dir_ / "bundle");
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "pagerfs-box\nhello\nread-only\n") << ran.err;
}

TEST_F(ContainerTest, BubblewrapRunsTheImageReadOnly) {
  if (!have("bwrap")) GTEST_SKIP() << "bubblewrap is not installed";
  mount();
  const auto ran = run({"timeout",
                        "-k",
                        "5",
                        "120",
                        "bwrap",
                        "--ro-bind",
                        image_root(),
                        "/",
                        "--proc",
                        "/proc",
                        "--dev",
                        "/dev",
                        "--unshare-all",
                        "--die-with-parent",
                        "--uid",
                        "1234",
                        "--gid",
                        "1235",
                        "--chdir",
                        "/work",
                        "/bin/sh",
                        "-c",
                        "id -u; pwd; cat /etc/hello; touch /x 2>&1 || true"});
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "1234\n/work\nhello\ntouch: /x: Read-only file system\n") << ran.err;
}

// What runtimes do for a writable container: overlayfs, the image as the
// lower directory, a tmpfs upper; nosuid,nodev as pagerfs(8) says.
TEST_F(ContainerTest, AWritableContainerOverOverlayfsLeavesTheImageUnchanged) {
  if (!have("runc")) GTEST_SKIP() << "runc is not installed";
  mount();
  const std::string scratch = dir_ / "scratch";
  std::filesystem::create_directories(scratch);
  ASSERT_EQ(run({"mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", scratch}).exit_code, 0);
  testing::ScopedUnmount unmount_scratch(scratch);
  for (const char* d : {"upper", "work", "merged"})
    std::filesystem::create_directories(scratch + "/" + d);
  const auto overlay = run({"mount", "-t", "overlay", "overlay", "-o",
                            "lowerdir=" + image_root() + ",upperdir=" + scratch +
                                "/upper,workdir=" + scratch + "/work,nosuid,nodev",
                            scratch + "/merged"});
  ASSERT_EQ(overlay.exit_code, 0) << overlay.err;
  testing::ScopedUnmount unmount_overlay(scratch + "/merged");

  // The image's user may not write to root's directories: run as root.
  const auto as_root =
      bundle({"--rootfs", scratch + "/merged", "--writable", "--user", "0", dir_ / "bundle", "--",
              "-c", "echo written > /work/out && rm /etc/hello && cat /work/out && ls /etc"});
  ASSERT_EQ(as_root.exit_code, 0) << as_root.err;
  const auto ran = run_container("runc", dir_ / "bundle");
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "written\ngroup\npasswd\n") << ran.err;
  // The change is in the upper directory (a whiteout for the removed file) ...
  EXPECT_EQ(testing::read_file(scratch + "/upper/work/out"), "written\n");
  struct stat st {};
  ASSERT_EQ(::lstat((scratch + "/upper/etc/hello").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) << "a whiteout";
  // ... and the image is as it was.
  EXPECT_EQ(testing::read_file(image_root() + "/etc/hello"), "hello\n");
  EXPECT_FALSE(std::filesystem::exists(image_root() + "/work/out"));
}

// A container user other than the mount's owner reads nothing without
// allow_other: bundle says so before the runtime fails.
TEST_F(ContainerTest, BundleWarnsWhenTheContainerUserCannotReadTheMount) {
  mount({});
  const auto made = bundle({"--mount", mount_->path(), dir_ / "bundle"});
  EXPECT_EQ(made.exit_code, 0) << made.err;
  EXPECT_NE(made.err.find("warning: the container runs as uid 1234, but " + mount_->path() +
                          " was mounted without -o allow_other"),
            std::string::npos)
      << made.err;
  const auto root = bundle({"--mount", mount_->path(), "--user", "root", dir_ / "bundle"});
  EXPECT_EQ(root.exit_code, 0);
  EXPECT_EQ(root.err, "");
  const auto missing = run({pagerfsctl_, "bundle", "--store", dir_ / "store", "--image", "nope",
                            "--mount", mount_->path(), dir_ / "bundle"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("has no image 'nope'"), std::string::npos) << missing.err;
  const auto both = bundle({"--mount", mount_->path(), "--rootfs", "/", dir_ / "bundle"});
  EXPECT_EQ(both.exit_code, 2);
}

}  // namespace
}  // namespace pagerfs
