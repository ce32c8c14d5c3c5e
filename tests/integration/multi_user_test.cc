// Multi-user mounts and overlayfs, through real mounts (pagerfs(8), TRUST
// MODEL and OVERLAYFS): with allow_other other uids read an image by its own
// modes and owners and never the blob view; without it they read nothing;
// root of a user namespace is another user; setuid bits and device nodes
// take effect only with trust_suid/trust_dev, also through an fstab line;
// an overlay with the image as its lower directory reads, writes, copies up
// and deletes, and the daemon answers what overlayfs asks of a lower layer.
//
// Other users are acted as with setpriv (--reuid/--regid/--clear-groups):
// `nobody` and uid 1234, which need not exist in /etc/passwd.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "pagerfs/util/digest.h"
#include "pagerfs/util/file.h"
#include "support/mount_fixture.h"
#include "support/scoped_unmount.h"
#include "support/subprocess.h"

namespace pagerfs {
namespace {

using testing::MountedStore;
using testing::ProcessResult;
using testing::ScopedUnmount;
using testing::TempDir;

constexpr uid_t kNobody = 65534;
constexpr uid_t kOwner = 1234;  // owns a private file of the image, and the store on disk

// Runs argv as uid:gid (gid = uid) with no supplementary groups.
ProcessResult run_as(uid_t uid, std::vector<std::string> argv) {
  const std::string id = std::to_string(uid);
  std::vector<std::string> full = {"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups", "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  return testing::run(full);
}

// `cat PATH` as `uid`: its output, or "EACCES" when refused for permission.
std::string read_as(uid_t uid, const std::string& path) {
  const ProcessResult r = run_as(uid, {"cat", path});
  if (r.exit_code == 0) return r.out;
  if (r.err.find("Permission denied") != std::string::npos) return "EACCES";
  return "error: " + r.err;
}

// The super-block options of the mount at `path` (after " - TYPE SOURCE"
// in /proc/self/mountinfo), with commas around, or "" if none.
std::string super_options(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, found;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mnt;
    fields >> id >> parent >> dev >> root >> mnt;
    const size_t dash = line.find(" - ");
    if (mnt != path || dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string type, source, options;
    tail >> type >> source >> options;
    found = "," + options + ",";
  }
  return found;
}

std::string realpath_of(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) throw std::runtime_error("realpath " + path);
  return buf;
}

std::string xattr_of(const std::string& path, const char* name) {
  char value[256];
  const ssize_t n = ::getxattr(path.c_str(), name, value, sizeof value);
  return n < 0 ? std::string("errno ") + std::strerror(errno) : std::string(value, static_cast<size_t>(n));
}

// One image for the suite: public and private files of root and of uid
// 1234, a setuid-root program that prints its effective uid, a device
// node, a symlink, a directory carrying overlayfs's own attributes, and
// files for the overlay tests. The store on disk belongs to uid 1234.
class MultiUserTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0 || !testing::fuse_available()) return;
    dir_ = std::make_unique<TempDir>();
    ::chmod(dir_->path().c_str(), 0755);  // other users walk to the mount points
    const std::string tree = *dir_ / "tree";
    std::filesystem::create_directories(tree + "/bin");
    std::filesystem::create_directories(tree + "/etc");
    std::filesystem::create_directories(tree + "/opaque");
    const auto file = [&](const std::string& name, const std::string& content, mode_t mode) {
      testing::write_file(tree + "/" + name, content);
      ASSERT_EQ(::chmod((tree + "/" + name).c_str(), mode), 0);
    };
    file("public", "public\n", 0644);
    file("private", "private\n", 0600);
    file("owned", "owned by 1234\n", 0600);
    ASSERT_EQ(::chown((tree + "/owned").c_str(), kOwner, kOwner), 0);
    file("etc/config", "old\n", 0640);
    ASSERT_EQ(::setxattr((tree + "/etc/config").c_str(), "user.origin", "image", 5, 0), 0);
    file("etc/remove-me", "doomed\n", 0644);
    file("opaque/inside", "inside\n", 0644);
    // Attributes overlayfs would take as instructions: never shown.
    ASSERT_EQ(::setxattr((tree + "/opaque").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
    ASSERT_EQ(::setxattr((tree + "/opaque").c_str(), "user.overlay.opaque", "y", 1, 0), 0);
    ASSERT_EQ(::setxattr((tree + "/opaque").c_str(), "user.kept", "yes", 3, 0), 0);
    std::filesystem::copy_file(testing::binary_from_env("PRINT_EUID"), tree + "/bin/euid");
    ASSERT_EQ(::chmod((tree + "/bin/euid").c_str(), 04755), 0);
    ASSERT_EQ(::mknod((tree + "/null").c_str(), S_IFCHR | 0666, ::makedev(1, 3)), 0);
    ASSERT_EQ(::symlink("public", (tree + "/link").c_str()), 0);
    store_ = *dir_ / "store";
    const ProcessResult packed = testing::run(
        {testing::binary_from_env("PAGERFSCTL"), "pack", "--store", store_, "--image", "img", tree});
    ASSERT_EQ(packed.exit_code, 0) << packed.err;
    // A store copied from elsewhere may belong to any uid: that uid is not
    // the mount's owner and must not read the blob view.
    ASSERT_EQ(testing::run({"chown", "-R", std::to_string(kOwner) + ":" + std::to_string(kOwner), store_}).exit_code,
              0);
  }
  static void TearDownTestSuite() { dir_.reset(); }

  void SetUp() override {
    if (!testing::fuse_available()) {
      if (std::getenv("PAGERFS_REQUIRE_FUSE")) FAIL() << "/dev/fuse is required (PAGERFS_REQUIRE_FUSE)";
      GTEST_SKIP() << "no /dev/fuse";
    }
    if (::geteuid() != 0) {
      if (std::getenv("PAGERFS_REQUIRE_FUSE")) FAIL() << "needs root (other uids, setuid files, overlayfs)";
      GTEST_SKIP() << "needs root (other uids, setuid files, overlayfs)";
    }
    ASSERT_FALSE(store_.empty());
    ::chmod(work_.path().c_str(), 0755);
  }

  std::string directory(const std::string& name) {
    const std::string path = work_ / name;
    std::filesystem::create_directories(path);
    return path;
  }

  static std::string blob_of(const std::string& mnt, const std::string& content) {
    return mnt + "/blobs/sha256/" + Sha256::of(bytes_of(content)).hex();
  }

  // Whether opening the image's device node is refused (nodev) or works.
  static int open_errno(const std::string& path) {
    errno = 0;
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return errno;
    ::close(fd);
    return 0;
  }

  static inline std::unique_ptr<TempDir> dir_;
  static inline std::string store_;
  TempDir work_;
};

TEST_F(MultiUserTest, AllowOtherLetsOtherUsersReadByTheImagesModesAndOwners) {
  MountedStore m(store_, directory("mnt"), {"allow_other"});
  const std::string options = super_options(m.path());
  EXPECT_NE(options.find(",default_permissions,"), std::string::npos) << options;
  EXPECT_NE(options.find(",allow_other,"), std::string::npos) << options;
  const std::string img = m.path() + "/images/img";
  EXPECT_EQ(read_as(kNobody, img + "/public"), "public\n");
  EXPECT_EQ(read_as(kNobody, img + "/link"), "public\n");
  EXPECT_EQ(read_as(kNobody, img + "/private"), "EACCES");
  EXPECT_EQ(read_as(kNobody, img + "/owned"), "EACCES");
  EXPECT_EQ(read_as(kOwner, img + "/owned"), "owned by 1234\n");
  EXPECT_EQ(read_as(kOwner, img + "/private"), "EACCES");
  EXPECT_EQ(read_as(kOwner, img + "/etc/config"), "EACCES");  // 0640 root:root
  // images/ is open to all, so that every image root is reachable.
  const ProcessResult images = run_as(kNobody, {"ls", m.path() + "/images"});
  EXPECT_EQ(images.exit_code, 0) << images.err;
  EXPECT_EQ(images.out, "img\n");
  struct stat st {};
  ASSERT_EQ(::stat((m.path() + "/images").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0555u);
}

TEST_F(MultiUserTest, TheBlobViewBelongsToTheMountsOwnerOnly) {
  MountedStore m(store_, directory("mnt"), {"allow_other"});
  // Even the blob of a public file: the view is the whole store.
  const std::string blob = blob_of(m.path(), "public\n");
  EXPECT_EQ(testing::read_file(blob), "public\n") << "the mount's owner (root) reads it";
  for (const std::string& path : {m.path() + "/blobs", m.path() + "/blobs/sha256", blob}) {
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_uid, ::geteuid()) << path << ": owned by the mount's owner, not the store's (uid " << kOwner << ")";
    EXPECT_EQ(st.st_gid, ::getegid()) << path;
    EXPECT_EQ(st.st_mode & 07777, S_ISDIR(st.st_mode) ? 0500u : 0400u) << path;
  }
  // Neither another user nor the owner of the store on disk reads it.
  for (const uid_t uid : {kNobody, kOwner}) {
    EXPECT_EQ(read_as(uid, blob), "EACCES") << "uid " << uid;
    const ProcessResult ls = run_as(uid, {"ls", m.path() + "/blobs"});
    EXPECT_NE(ls.exit_code, 0) << "uid " << uid;
    EXPECT_NE(ls.err.find("Permission denied"), std::string::npos) << ls.err;
  }
}

TEST_F(MultiUserTest, WithoutAllowOtherNoOtherUserReadsAnything) {
  MountedStore m(store_, directory("mnt"));
  const std::string img = m.path() + "/images/img";
  EXPECT_EQ(read_as(kNobody, img + "/public"), "EACCES");
  EXPECT_EQ(read_as(kOwner, img + "/owned"), "EACCES");
  for (const std::string& path : {m.path(), m.path() + "/images", img, m.path() + "/blobs"}) {
    const ProcessResult r = run_as(kNobody, {"stat", path});
    EXPECT_NE(r.exit_code, 0) << path;
    EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << path << ": " << r.err;
  }
  EXPECT_EQ(testing::read_file(img + "/private"), "private\n") << "the mount's owner (root) reads it";
}

TEST_F(MultiUserTest, RootOfAUserNamespaceIsAnotherUser) {
  MountedStore m(store_, directory("mnt"), {"allow_other"});
  const std::string img = m.path() + "/images/img";
  // uid 0 inside, mapped to nobody outside: the kernel checks nobody.
  const auto in_namespace = [&](const std::string& path) {
    return run_as(kNobody, {"unshare", "--user", "--map-root-user", "sh", "-c", "id -u && cat " + path});
  };
  const ProcessResult pub = in_namespace(img + "/public");
  ASSERT_EQ(pub.exit_code, 0) << pub.err;
  EXPECT_EQ(pub.out, "0\npublic\n");
  for (const std::string& path : {img + "/private", blob_of(m.path(), "public\n")}) {
    const ProcessResult r = in_namespace(path);
    EXPECT_EQ(r.out, "0\n") << path;
    EXPECT_NE(r.exit_code, 0) << path;
    EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << path << ": " << r.err;
  }
}

// Through a real fstab line: mount(8) passes "rw" for "defaults" and
// mount.fuse3 then adds "dev,suid" (it does so unless nosuid/nodev are
// given), so the daemon cannot tell an asked-for suid from the helper's:
// only trust_suid/trust_dev open the door.
TEST_F(MultiUserTest, SetuidAndDevicesThroughFstabTakeEffectOnlyWhenTrusted) {
  const std::string program = realpath_of(testing::binary_from_env("PAGERFS"));
  for (const bool trusted : {false, true}) {
    SCOPED_TRACE(trusted ? "trusted" : "defaults");
    const std::string mnt = directory(trusted ? "trusted" : "defaults");
    ScopedUnmount unmount(mnt);
    const std::string fstab = work_ / "fstab";
    testing::write_file(fstab, program + "#" + store_ + " " + mnt + " fuse defaults,allow_other" +
                                   (trusted ? ",trust_suid,trust_dev" : "") + " 0 0\n");
    const ProcessResult r = testing::run({"mount", "-T", fstab, mnt});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(testing::is_pagerfs_mount(mnt));
    const std::string img = mnt + "/images/img";
    const ProcessResult euid = run_as(kNobody, {img + "/bin/euid"});
    EXPECT_EQ(euid.exit_code, 0) << euid.err;
    EXPECT_EQ(euid.out, trusted ? "0\n" : std::to_string(kNobody) + "\n");
    EXPECT_EQ(open_errno(img + "/null"), trusted ? 0 : EACCES);
  }
}

TEST_F(MultiUserTest, TheDaemonAnswersTheFileAttributeIoctlsAndRefusesOthers) {
  MountedStore m(store_, directory("mnt"));
  for (const std::string& path : {m.path() + "/images/img/public", m.path() + "/images/img/etc"}) {
    SCOPED_TRACE(path);
    const int fd = ::open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    int flags = -1;
    EXPECT_EQ(::ioctl(fd, FS_IOC_GETFLAGS, &flags), 0) << std::strerror(errno);  // lsattr's question
    EXPECT_EQ(flags, 0) << "no inode flags, in particular not immutable";
    fsxattr fsx{};
    fsx.fsx_xflags = ~0u;
    EXPECT_EQ(::ioctl(fd, FS_IOC_FSGETXATTR, &fsx), 0) << std::strerror(errno);
    EXPECT_EQ(fsx.fsx_xflags, 0u);
    // Any other ioctl: "not for this file".
    unsigned version = 0;
    errno = 0;
    EXPECT_EQ(::ioctl(fd, FS_IOC_GETVERSION, &version), -1);
    EXPECT_EQ(errno, ENOTTY);
    errno = 0;
    EXPECT_EQ(::ioctl(fd, _IOR('p', 0x42, int), &flags), -1);
    EXPECT_EQ(errno, ENOTTY);
    ::close(fd);
  }
  const ProcessResult lsattr = testing::run({"lsattr", "-d", m.path() + "/images/img/public"});
  EXPECT_EQ(lsattr.exit_code, 0) << lsattr.err;
}

TEST_F(MultiUserTest, OverlayfsAttributesOfAnImageAreNeverShown) {
  MountedStore m(store_, directory("mnt"));
  const std::string opaque = m.path() + "/images/img/opaque";
  EXPECT_EQ(xattr_of(opaque, "trusted.overlay.opaque"), std::string("errno ") + std::strerror(ENODATA));
  EXPECT_EQ(xattr_of(opaque, "user.overlay.opaque"), std::string("errno ") + std::strerror(ENODATA));
  EXPECT_EQ(xattr_of(opaque, "user.kept"), "yes");
  char names[1024];
  const ssize_t n = ::listxattr(opaque.c_str(), names, sizeof names);
  ASSERT_GE(n, 0) << std::strerror(errno);
  EXPECT_EQ(std::string(names, static_cast<size_t>(n)), std::string("user.kept") + '\0');
}

// An overlay over the image (tmpfs upper and work dirs), as a runtime
// makes a writable container: every mount is undone whatever happens.
//
// Thread safety: one owner.
class Overlay {
 public:
  Overlay(const std::string& lower, const std::string& base, const std::string& extra_options = "")
      : base_(base), tmpfs_guard_(base + "/tmpfs"), merged_guard_(base + "/merged") {
    std::filesystem::create_directories(base + "/tmpfs");
    std::filesystem::create_directories(base + "/merged");
    const ProcessResult t = testing::run({"mount", "-t", "tmpfs", "tmpfs", base + "/tmpfs"});
    if (t.exit_code != 0) throw std::runtime_error("mount tmpfs: " + t.err);
    std::filesystem::create_directories(upper());
    std::filesystem::create_directories(base + "/tmpfs/work");
    const std::string options = "lowerdir=" + lower + ",upperdir=" + upper() + ",workdir=" + base + "/tmpfs/work" +
                                (extra_options.empty() ? "" : "," + extra_options);
    const ProcessResult o = testing::run({"mount", "-t", "overlay", "overlay", "-o", options, merged()});
    if (o.exit_code != 0) throw std::runtime_error("mount overlay: " + o.err);
  }
  std::string merged() const { return base_ + "/merged"; }
  std::string upper() const { return base_ + "/tmpfs/upper"; }

 private:
  std::string base_;
  ScopedUnmount tmpfs_guard_;   // destroyed last
  ScopedUnmount merged_guard_;  // destroyed first: the overlay, then its tmpfs
};

std::map<std::string, unsigned char> dirent_types(const std::string& dir) {
  std::map<std::string, unsigned char> types;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return types;
  while (const dirent* e = ::readdir(d)) types[e->d_name] = e->d_type;
  ::closedir(d);
  return types;
}

TEST_F(MultiUserTest, AnOverlayOverAnImageReadsWritesCopiesUpAndDeletes) {
  MountedStore m(store_, directory("mnt"));
  const std::string img = m.path() + "/images/img";
  Overlay overlay(img, directory("overlay"));
  const std::string merged = overlay.merged();
  EXPECT_EQ(testing::read_file(merged + "/public"), "public\n");
  EXPECT_EQ(testing::read_file(merged + "/opaque/inside"), "inside\n");
  // d_type of a directory only the lower has.
  const auto types = dirent_types(merged);
  EXPECT_EQ(types.at("public"), DT_REG);
  EXPECT_EQ(types.at("etc"), DT_DIR);
  EXPECT_EQ(types.at("link"), DT_LNK);
  EXPECT_EQ(types.at("null"), DT_CHR);
  // A new file.
  testing::write_file(merged + "/etc/new", "new\n");
  EXPECT_EQ(testing::read_file(merged + "/etc/new"), "new\n");
  EXPECT_EQ(testing::read_file(overlay.upper() + "/etc/new"), "new\n");
  // An existing file modified: copied up with its mode, owner and xattrs.
  {
    std::ofstream out(merged + "/etc/config", std::ios::app);
    out << "new\n";
  }
  EXPECT_EQ(testing::read_file(merged + "/etc/config"), "old\nnew\n");
  const std::string copied = overlay.upper() + "/etc/config";
  EXPECT_EQ(testing::read_file(copied), "old\nnew\n");
  EXPECT_EQ(xattr_of(copied, "user.origin"), "image");
  struct stat st {};
  ASSERT_EQ(::lstat(copied.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  // A deletion: a whiteout (a 0/0 character device) in the upper dir.
  ASSERT_EQ(::unlink((merged + "/etc/remove-me").c_str()), 0) << std::strerror(errno);
  EXPECT_NE(::access((merged + "/etc/remove-me").c_str(), F_OK), 0);
  ASSERT_EQ(::lstat((overlay.upper() + "/etc/remove-me").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, ::makedev(0, 0));
  // Copy-up asked the daemon for the file's inode flags, and got them.
  const ProcessResult stats = testing::run({testing::binary_from_env("PAGERFSCTL"), "stats", "--json", m.path()});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  const auto ioctls = nlohmann::json::parse(stats.out)["fuse"]["ioctl"];
  EXPECT_GE(ioctls["calls"].get<uint64_t>(), 1u) << stats.out;
  EXPECT_EQ(ioctls["errors"].get<uint64_t>(), 0u) << stats.out;
  // The image is unchanged.
  EXPECT_EQ(testing::read_file(img + "/etc/config"), "old\n");
  EXPECT_EQ(testing::read_file(img + "/etc/remove-me"), "doomed\n");
  EXPECT_NE(::access((img + "/etc/new").c_str(), F_OK), 0);
  EXPECT_EQ(xattr_of(img + "/etc/config", "user.origin"), "image");
}

// The image's opaque/ carries trusted.overlay.opaque=y: shown, it would
// make an overlay hide the same directory of every layer below the image.
TEST_F(MultiUserTest, AnImagesOwnOverlayAttributesDoNotSteerAnOverlay) {
  MountedStore m(store_, directory("mnt"));
  const std::string below = directory("below");
  std::filesystem::create_directories(below + "/opaque");
  testing::write_file(below + "/opaque/below", "from the layer below\n");
  Overlay overlay(m.path() + "/images/img:" + below, directory("overlay"));
  EXPECT_EQ(testing::read_file(overlay.merged() + "/opaque/inside"), "inside\n");
  EXPECT_EQ(testing::read_file(overlay.merged() + "/opaque/below"), "from the layer below\n");
}

TEST_F(MultiUserTest, TwoOverlaysShareOneImage) {
  MountedStore m(store_, directory("mnt"));
  const std::string img = m.path() + "/images/img";
  Overlay a(img, directory("a"));
  Overlay b(img, directory("b"));
  testing::write_file(a.merged() + "/etc/config", "written by a\n");
  testing::write_file(b.merged() + "/etc/config", "written by b\n");
  ASSERT_EQ(::unlink((a.merged() + "/public").c_str()), 0);
  EXPECT_EQ(testing::read_file(a.merged() + "/etc/config"), "written by a\n");
  EXPECT_EQ(testing::read_file(b.merged() + "/etc/config"), "written by b\n");
  EXPECT_NE(::access((a.merged() + "/public").c_str(), F_OK), 0);
  EXPECT_EQ(testing::read_file(b.merged() + "/public"), "public\n");
  EXPECT_EQ(testing::read_file(img + "/etc/config"), "old\n");
  EXPECT_EQ(testing::read_file(img + "/public"), "public\n");
}

// What pagerfs(8) warns about: an overlay is a mount of its own, and the
// kernel checks the overlay's nosuid/nodev, not its lower layer's. So an
// overlay over an image (mounted nosuid,nodev) needs nosuid,nodev itself,
// or the image's setuid-root programs and device nodes are live again.
TEST_F(MultiUserTest, AnOverlayKeepsSetuidAndDevicesInertOnlyWhenMountedNosuidNodev) {
  MountedStore m(store_, directory("mnt"), {"allow_other"});
  const std::string img = m.path() + "/images/img";
  Overlay safe(img, directory("safe"), "nosuid,nodev");
  EXPECT_EQ(run_as(kNobody, {safe.merged() + "/bin/euid"}).out, std::to_string(kNobody) + "\n");
  EXPECT_EQ(open_errno(safe.merged() + "/null"), EACCES);
  // Documented, not wanted: if this ever fails, the kernel has started to
  // honour the lower layer's flags and pagerfs(8) can drop its warning.
  Overlay bare(img, directory("bare"));
  EXPECT_EQ(run_as(kNobody, {bare.merged() + "/bin/euid"}).out, "0\n");
}

}  // namespace
}  // namespace pagerfs
