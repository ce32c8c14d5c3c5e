// Images end to end through the real binaries: `pagerfsctl pack --image` of
// a real tree (a copy of this machine's Python installation plus every kind
// of entry), a real mount, and the tree compared with the source by diff(1)
// and find(1); the packed interpreter runs from the mount; shared content is
// shared blobs, never shared inodes; a broken image costs that image only.
#include <fcntl.h>
#include <xxhash.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "pagerfs/format/blob_writer.h"
#include "pagerfs/store/image_manifest.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/digest.h"
#include "util/byte_codec.h"
#include "pagerfs/util/file.h"
#include "support/mount_fixture.h"
#include "support/subprocess.h"
#include "support/test_data.h"

namespace pagerfs {
namespace {

using testing::MountedStore;
using testing::ProcessResult;
using testing::TempDir;

std::string source_root() {
  const char* root = std::getenv("PAGERFS_SOURCE_ROOT");
  return root != nullptr ? root : ".";
}

ProcessResult pagerfsctl(std::vector<std::string> args) {
  args.insert(args.begin(), testing::binary_from_env("PAGERFSCTL"));
  return testing::run(args);
}

struct stat lstat_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st;
}

void set_mtime(const std::string& path, time_t sec, long nsec) {
  const struct timespec times[2] = {{sec, nsec}, {sec, nsec}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
}

void write_with_mode(const std::string& path, const std::string& content, mode_t mode) {
  testing::write_file(path, content);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

// Builds the source tree once for the whole suite: the Python copy plus a
// directory of every entry kind; packs it as image "py" and, with one file
// changed, as "py2" into one store.
class ImageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<TempDir>();
    tree_ = *dir_ / "tree";
    store_ = *dir_ / "store";
    const ProcessResult made = testing::run({"bash", source_root() + "/scripts/make-python-tree", tree_});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    make_misc(tree_ + "/misc");
    const ProcessResult packed = pagerfsctl({"pack", "--store", store_, "--image", "py", tree_});
    ASSERT_EQ(packed.exit_code, 0) << packed.err;
    pack_output_ = packed.out;

    // py2: the same tree with one file changed and one added.
    tree2_ = *dir_ / "tree2";
    ASSERT_EQ(testing::run({"cp", "-a", tree_, tree2_}).exit_code, 0);
    testing::write_file(tree2_ + "/misc/hello.txt", "changed\n");
    testing::write_file(tree2_ + "/misc/new.txt", "new\n");
    const ProcessResult packed2 = pagerfsctl({"pack", "--store", store_, "--image", "py2", tree2_});
    ASSERT_EQ(packed2.exit_code, 0) << packed2.err;
    pack2_output_ = packed2.out;
  }
  static void TearDownTestSuite() { dir_.reset(); }

  static void make_misc(const std::string& misc) {
    namespace fs = std::filesystem;
    fs::create_directories(misc + "/deep/a/b/c/d/e");
    testing::write_file(misc + "/deep/a/b/c/d/e/file", "deep\n");
    write_with_mode(misc + "/hello.txt", "hello\n", 0640);
    set_mtime(misc + "/hello.txt", 1700000000, 123456789);
    // Same content and attributes: one inode in the mount. Same content,
    // another mode: another inode.
    for (const char* name : {"same-a.txt", "same-b.txt"}) {
      write_with_mode(misc + "/" + name, "same content\n", 0644);
      set_mtime(misc + "/" + name, 1600000000, 5);
    }
    write_with_mode(misc + "/same-other-mode.txt", "same content\n", 0600);
    set_mtime(misc + "/same-other-mode.txt", 1600000000, 5);
    testing::write_file(misc + "/link1", "linked\n");
    ASSERT_EQ(::link((misc + "/link1").c_str(), (misc + "/link2").c_str()), 0);
    ASSERT_EQ(::symlink("hello.txt", (misc + "/rel-symlink").c_str()), 0);
    ASSERT_EQ(::symlink("/etc/hostname", (misc + "/abs-symlink").c_str()), 0);
    ASSERT_EQ(::symlink("nowhere/at/all", (misc + "/dangling").c_str()), 0);
    testing::write_file(misc + "/empty", "");
    fs::create_directory(misc + "/emptydir");
    ASSERT_EQ(::chmod((misc + "/emptydir").c_str(), 0700), 0);
    testing::write_file(misc + "/big.bin", testing::to_string(testing::random_bytes(3 * 1024 * 1024 + 17, 9)));
    testing::write_file(misc + "/xattr.txt", "has xattrs\n");
    has_xattrs_ = ::setxattr((misc + "/xattr.txt").c_str(), "user.pagerfs-test", "value", 5, 0) == 0;
    // Special files go under special/, which diff(1) cannot compare.
    fs::create_directory(misc + "/special");
    ASSERT_EQ(::mkfifo((misc + "/special/fifo").c_str(), 0620), 0);
    ASSERT_EQ(::chmod((misc + "/special/fifo").c_str(), 0620), 0);  // past the umask
    if (::geteuid() == 0) {
      ASSERT_EQ(::mknod((misc + "/special/null").c_str(), S_IFCHR | 0666, ::makedev(1, 3)), 0);
    }
    set_mtime(misc + "/special", 1500000000, 0);
  }

  std::unique_ptr<MountedStore> mount() {
    return std::make_unique<MountedStore>(store_, mnt_dir_.path() + "/mnt");
  }

  static std::string image(const MountedStore& m, const std::string& name) { return m.path() + "/images/" + name; }

  void SetUp() override {
    if (!testing::fuse_available()) {
      if (std::getenv("PAGERFS_REQUIRE_FUSE")) FAIL() << "/dev/fuse is required (PAGERFS_REQUIRE_FUSE)";
      GTEST_SKIP() << "no /dev/fuse";
    }
  }

  static inline std::unique_ptr<TempDir> dir_;
  static inline std::string tree_, tree2_, store_, pack_output_, pack2_output_;
  static inline bool has_xattrs_ = false;
  TempDir mnt_dir_;
};

// find(1)'s view of a tree: path, type, mode, size, mtime (ns), link target,
// owner, link count; sorted by path.
std::string find_listing(const std::string& root) {
  const ProcessResult r = testing::run(
      {"bash", "-c", "cd \"$1\" && find . -printf '%p %y %m %s %T@ %l %U %G %n\\n' | LC_ALL=C sort", "_", root});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

TEST_F(ImageTest, TheMountedTreeEqualsTheSource) {
  auto m = mount();
  const std::string root = image(*m, "py");
  const ProcessResult diff = testing::run({"diff", "-r", "--no-dereference", "-x", "special", tree_, root});
  EXPECT_EQ(diff.exit_code, 0) << diff.out << diff.err;
  const std::string expected = find_listing(tree_);
  const std::string actual = find_listing(root);
  EXPECT_GT(std::count(expected.begin(), expected.end(), '\n'), 1500);
  EXPECT_EQ(std::count(actual.begin(), actual.end(), '\n'), std::count(expected.begin(), expected.end(), '\n'));
  // The first line that differs, not two listings of 1500 lines.
  std::istringstream want(expected), got(actual);
  std::string w, g;
  while (std::getline(want, w) && std::getline(got, g)) {
    if (w != g) {
      ADD_FAILURE() << "source: " << w << "\nmount:  " << g;
      break;
    }
  }
}

TEST_F(ImageTest, MetadataSymlinksAndSpecialFiles) {
  auto m = mount();
  const std::string misc = image(*m, "py") + "/misc";
  const struct stat hello = lstat_of(misc + "/hello.txt");
  EXPECT_EQ(hello.st_mode, S_IFREG | 0640);
  EXPECT_EQ(hello.st_mtim.tv_sec, 1700000000);
  EXPECT_EQ(hello.st_mtim.tv_nsec, 123456789);
  EXPECT_EQ(hello.st_size, 6);
  char target[256] = {};
  ASSERT_GT(::readlink((misc + "/abs-symlink").c_str(), target, sizeof target - 1), 0);
  EXPECT_STREQ(target, "/etc/hostname");
  EXPECT_EQ(testing::read_file(misc + "/rel-symlink"), "hello\n");  // followed inside the image
  EXPECT_TRUE(S_ISFIFO(lstat_of(misc + "/special/fifo").st_mode));
  EXPECT_EQ(lstat_of(misc + "/special/fifo").st_mode & 07777, 0620u);
  if (::geteuid() == 0) {
    const struct stat null = lstat_of(misc + "/special/null");
    EXPECT_TRUE(S_ISCHR(null.st_mode));
    EXPECT_EQ(null.st_rdev, ::makedev(1, 3));
  }
  EXPECT_EQ(lstat_of(misc + "/emptydir").st_mode, S_IFDIR | 0700);
  EXPECT_EQ(lstat_of(misc + "/deep").st_nlink, 3u);  // ., .., a
  if (has_xattrs_) {
    char value[16] = {};
    EXPECT_EQ(::getxattr((misc + "/xattr.txt").c_str(), "user.pagerfs-test", value, sizeof value), 5);
    EXPECT_STREQ(value, "value");
  }
  // Image files name their blob too.
  char digest[80] = {};
  ASSERT_GT(::getxattr((misc + "/hello.txt").c_str(), "user.pagerfs.digest", digest, sizeof digest - 1), 0);
  EXPECT_EQ(std::string(digest), Sha256::of(bytes_of(std::string("hello\n"))).str());
}

TEST_F(ImageTest, OnlyHardLinksShareAnInode) {
  auto m = mount();
  const std::string misc = image(*m, "py") + "/misc";
  const struct stat link1 = lstat_of(misc + "/link1");
  const struct stat link2 = lstat_of(misc + "/link2");
  EXPECT_EQ(link1.st_ino, link2.st_ino);
  EXPECT_EQ(link1.st_nlink, 2u);
  // Equal content and attributes: still two files (one blob underneath).
  EXPECT_NE(lstat_of(misc + "/same-a.txt").st_ino, lstat_of(misc + "/same-b.txt").st_ino);
  EXPECT_NE(lstat_of(misc + "/same-a.txt").st_ino, lstat_of(misc + "/same-other-mode.txt").st_ino);
  EXPECT_EQ(lstat_of(misc + "/same-a.txt").st_nlink, 1u);
  EXPECT_EQ(testing::read_file(misc + "/same-other-mode.txt"), "same content\n");
  const ProcessResult same = testing::run({"find", misc, "-samefile", misc + "/same-a.txt"});
  EXPECT_EQ(same.out, misc + "/same-a.txt\n");
}

TEST_F(ImageTest, TwoImagesShareTheBlobsOfTheirCommonFiles) {
  auto m = mount();
  const std::string a = image(*m, "py"), b = image(*m, "py2");
  for (const char* file : {"/usr/bin/python3.11", "/usr/lib/python3.11/os.py", "/misc/big.bin"}) {
    // One blob, two files.
    char da[80] = {}, db[80] = {};
    ASSERT_GT(::getxattr((a + file).c_str(), "user.pagerfs.digest", da, sizeof da - 1), 0);
    ASSERT_GT(::getxattr((b + file).c_str(), "user.pagerfs.digest", db, sizeof db - 1), 0);
    EXPECT_STREQ(da, db) << file;
    EXPECT_NE(lstat_of(a + file).st_ino, lstat_of(b + file).st_ino) << file;
  }
  EXPECT_EQ(testing::read_file(b + "/misc/hello.txt"), "changed\n");
  EXPECT_EQ(testing::read_file(a + "/misc/hello.txt"), "hello\n");
  // py2 was deduplicated against the store and its packs: its two new
  // (small) contents went into one new pack, and nothing else was written.
  EXPECT_NE(pack2_output_.find(" 1 new blob(s)"), std::string::npos) << pack2_output_;
}

// The pairs of paths that are hard links, as `tar -tv` of a tree shows them.
std::string tar_hard_links(const std::string& dir) {
  const ProcessResult r = testing::run(
      {"bash", "-c", "set -o pipefail; cd \"$1\" && tar -cf - . | tar -tvf - | { grep '^h' || true; } | "
                     "sed 's/.* \\(\\.\\/.*\\) link to \\(.*\\)$/\\1 -> \\2/' | LC_ALL=C sort",
       "_", dir});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

// The link structure of a tree: for each group of hard links (nlink > 1),
// its paths, sorted.
std::string link_groups(const std::string& dir) {
  const ProcessResult r = testing::run(
      {"bash", "-c", "cd \"$1\" && find . -type f -links +1 -printf '%i %p\\n' | LC_ALL=C sort -k2 | "
                     "awk '{g[$1] = g[$1] \" \" $2} END {for (i in g) print g[i]}' | LC_ALL=C sort",
       "_", dir});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

TEST_F(ImageTest, TarCpAndRsyncSeeTheSourcesHardLinks) {
  auto m = mount();
  const std::string root = image(*m, "py");
  const std::string want = tar_hard_links(tree_);
  EXPECT_NE(want.find("./misc/link2 -> ./misc/link1"), std::string::npos) << want;
  EXPECT_EQ(tar_hard_links(root), want);
  // Copies of the mounted image have the source's link structure.
  TempDir copies;
  ASSERT_EQ(testing::run({"cp", "-a", root, copies / "cp"}).exit_code, 0);
  EXPECT_EQ(link_groups(copies / "cp"), link_groups(tree_));
  const ProcessResult rsync = testing::run({"rsync", "-aH", root + "/", copies / "rsync"});
  ASSERT_EQ(rsync.exit_code, 0) << rsync.err;
  EXPECT_EQ(link_groups(copies / "rsync"), link_groups(tree_));
  EXPECT_NE(link_groups(tree_).find(" ./misc/link1 ./misc/link2"), std::string::npos) << link_groups(tree_);
}

TEST_F(ImageTest, ThePackedInterpreterRunsFromTheMount) {
  auto m = mount();
  const std::string root = image(*m, "py");
  const std::string code =
      "import hashlib, json, zlib\n"
      "libc = [l.split()[-1] for l in open('/proc/self/maps') if 'libc.so' in l][0]\n"
      "print(hashlib.sha256(b'pagerfs').hexdigest(), sum(i * i for i in range(1000)),\n"
      "      len(zlib.compress(json.dumps(list(range(100))).encode())) > 0, libc)\n";
  const std::string expected_hash = Sha256::of(bytes_of(std::string("pagerfs"))).hex();
  // The dynamic loader, the libraries and the interpreter all come from the
  // mount: ld.so mmaps them, so their pages fault in through the pager.
  const ProcessResult r = testing::run({"env", "PYTHONDONTWRITEBYTECODE=1", root + "/lib64/ld-linux-x86-64.so.2",
                                        "--library-path", root + "/lib/x86_64-linux-gnu",
                                        root + "/usr/bin/python3.11", "-c", code});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, expected_hash + " 332833500 True " + root + "/lib/x86_64-linux-gnu/libc.so.6\n");
  if (::geteuid() == 0) {
    // As a container would: the image is the root file system (its /proc
    // and /sys empty: nothing is mounted there).
    const std::string in_chroot =
        "import hashlib, os\n"
        "print(hashlib.sha256(b'pagerfs').hexdigest(), sum(i * i for i in range(1000)), os.listdir('/'))\n";
    const ProcessResult c = testing::run({"chroot", root, "/usr/bin/python3.11", "-c", in_chroot});
    ASSERT_EQ(c.exit_code, 0) << c.err;
    EXPECT_EQ(c.out, expected_hash + " 332833500 ['dev', 'lib', 'lib64', 'misc', 'proc', 'sys', 'tmp', 'usr']\n");
  }
}

TEST_F(ImageTest, ListingAndVerifyingImages) {
  const ProcessResult list = pagerfsctl({"images", store_});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("py "), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("py2 "), std::string::npos) << list.out;
  const ProcessResult entries = pagerfsctl({"images", store_, "py"});
  ASSERT_EQ(entries.exit_code, 0) << entries.err;
  EXPECT_NE(entries.out.find("misc/rel-symlink  -> hello.txt"), std::string::npos);
  EXPECT_NE(entries.out.find("misc/link2  => misc/link1"), std::string::npos);
  const ProcessResult verify = pagerfsctl({"verify", store_, "-j", "2"});
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
  EXPECT_NE(verify.out.find("ok       image py2\n"), std::string::npos) << verify.out;
}

// A store of its own, to break.
class BrokenImageTest : public ImageTest {
 protected:
  void SetUp() override {
    ImageTest::SetUp();
    if (IsSkipped()) return;
    own_store_ = own_.path() + "/store";
    const std::string src = own_.path() + "/src";
    std::filesystem::create_directories(src + "/dir");
    testing::write_file(src + "/dir/file", "content\n");
    ASSERT_EQ(pagerfsctl({"pack", "--store", own_store_, "--image", "small", src}).exit_code, 0);
    const std::string good = own_.path() + "/good";
    std::filesystem::create_directories(good);
    testing::write_file(good + "/file", "good\n");
    ASSERT_EQ(pagerfsctl({"pack", "--store", own_store_, "--image", "good", good}).exit_code, 0);
  }

  static std::vector<std::string> image_names(const MountedStore& m) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(m.path() + "/images")) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }

  TempDir own_;
  std::string own_store_;
};

TEST_F(BrokenImageTest, AMissingBlobIsAnErrorWhenItsFileIsOpened) {
  // Loading an image reads its manifest only: the tree is there, and the
  // file whose blob is missing fails on open (EIO, logged).
  const std::string blob = own_store_ + "/blobs/sha256/" + Sha256::of(bytes_of(std::string("content\n"))).hex();
  ASSERT_EQ(::unlink(blob.c_str()), 0);
  MountedStore m(own_store_, own_.path() + "/mnt");
  EXPECT_EQ(image_names(m), (std::vector<std::string>{"good", "small"}));
  EXPECT_EQ(testing::read_file(m.path() + "/images/good/file"), "good\n");
  struct stat st {};
  ASSERT_EQ(::stat((m.path() + "/images/small/dir/file").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 8);
  errno = 0;
  EXPECT_LT(::open((m.path() + "/images/small/dir/file").c_str(), O_RDONLY), 0);
  EXPECT_EQ(errno, EIO);
  const std::string log = m.log();
  EXPECT_NE(log.find("image 'small': 'dir/file': blob sha256:"), std::string::npos) << log;
  EXPECT_NE(log.find("is missing from the store"), std::string::npos) << log;
  const ProcessResult v = pagerfsctl({"verify", own_store_});
  EXPECT_EQ(v.exit_code, 1);
  EXPECT_NE(v.out.find("CORRUPT  image small"), std::string::npos) << v.out;
}

TEST_F(BrokenImageTest, ACorruptManifestIsLeftOutOnceAndTheOthersServed) {
  const std::string manifest = own_store_ + "/images/small";
  ::chmod(manifest.c_str(), 0644);
  std::fstream f(manifest, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(100);
  f.put('\x7f');
  f.close();
  MountedStore m(own_store_, own_.path() + "/mnt");
  EXPECT_EQ(testing::read_file(m.path() + "/images/good/file"), "good\n");
  struct stat st {};
  for (int i = 0; i < 20; ++i) {
    errno = 0;
    EXPECT_NE(::stat((m.path() + "/images/small").c_str(), &st), 0);
    EXPECT_EQ(errno, EIO);
    EXPECT_EQ(image_names(m), std::vector<std::string>{"good"});
  }
  // Parsed once at mount, not at every lookup and listing; logged once.
  const ProcessResult stats = pagerfsctl({"stats", m.path(), "--json"});
  EXPECT_NE(stats.out.find("\"image_load_failures\": 1"), std::string::npos) << stats.out;
  const std::string log = m.log();
  EXPECT_NE(log.find("image 'small'"), std::string::npos) << log;
  EXPECT_EQ(log.find("image 'small'"), log.rfind("image 'small'")) << log;
  const ProcessResult v = pagerfsctl({"verify", own_store_});
  EXPECT_EQ(v.exit_code, 1);
  EXPECT_NE(v.out.find("CORRUPT  image small"), std::string::npos) << v.out;
}

TEST_F(BrokenImageTest, MissingNamesInAnImageAreCachedAsMissing) {
  MountedStore m(own_store_, own_.path() + "/mnt");
  struct stat st {};
  for (int i = 0; i < 50; ++i) EXPECT_NE(::stat((m.path() + "/images/good/nope").c_str(), &st), 0);
  const ProcessResult stats = pagerfsctl({"stats", m.path(), "--json"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  // A few LOOKUPs (images/, good, nope) reached the daemon for the 50 stats:
  // the kernel kept the negative entry.
  const size_t at = stats.out.find("\"lookup\"");
  ASSERT_NE(at, std::string::npos) << stats.out;
  const size_t calls = stats.out.find("\"calls\": ", at);
  ASSERT_NE(calls, std::string::npos) << stats.out;
  EXPECT_LT(std::stoi(stats.out.substr(calls + 9)), 10) << stats.out;
}

TEST_F(BrokenImageTest, AnImagePackedAfterMountingAppears) {
  MountedStore m(own_store_, own_.path() + "/mnt");
  const std::string src = own_.path() + "/later";
  std::filesystem::create_directories(src);
  testing::write_file(src + "/x", "later\n");
  EXPECT_EQ(image_names(m), (std::vector<std::string>{"good", "small"}));
  ASSERT_EQ(pagerfsctl({"pack", "--store", own_store_, "--image", "later", src}).exit_code, 0);
  // Listed, before anything looks it up by name.
  EXPECT_EQ(image_names(m), (std::vector<std::string>{"good", "later", "small"}));
  EXPECT_EQ(testing::read_file(m.path() + "/images/later/x"), "later\n");
}

TEST_F(BrokenImageTest, BadPackInvocationsSayWhy) {
  const ProcessResult bad_name = pagerfsctl({"pack", "--store", own_store_, "--image", "../x", own_.path()});
  EXPECT_EQ(bad_name.exit_code, 2);
  EXPECT_NE(bad_name.err.find("--image"), std::string::npos) << bad_name.err;
  const ProcessResult not_dir =
      pagerfsctl({"pack", "--store", own_store_, "--image", "x", own_store_ + "/images/small"});
  EXPECT_EQ(not_dir.exit_code, 1);
  EXPECT_NE(not_dir.err.find("Not a directory"), std::string::npos) << not_dir.err;
  const ProcessResult missing = pagerfsctl({"pack", "--store", own_store_, "--image", "x", own_.path() + "/nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("No such file or directory"), std::string::npos) << missing.err;
  for (const ProcessResult& r : {bad_name, not_dir, missing}) {
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(own_store_ + "/images/x"));
}


// Files packed into one blob (a pack): each reads as itself, mmap shows
// zeros (not its neighbour) past its end, and its content digest resolves
// under blobs/sha256 through the image's content table.
TEST(PackedImageTest, PackedFilesReadAsThemselves) {
  TempDir dir;
  const std::string store_path = dir / "store";
  auto created = Store::create(store_path);
  ASSERT_TRUE(created) << created.error().message();
  const Store& store = created.value();

  // b is longer than the kernel's first read and shorter than the pager's
  // read-ahead window (512K): what the daemon pushes to the page cache after
  // the first read reaches b's end and, in the pack, c.
  std::string a(6000, 'a'), b, c = "tail\n";
  for (int i = 0; i < 300'000; ++i) b += static_cast<char>('A' + i % 26);
  const std::string concatenated = a + b + c;
  const Digest pack = Sha256::of(bytes_of(concatenated));
  {
    auto input = memory_input_stream(bytes_of(concatenated));
    const std::string path = store.blob_path(pack);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    ASSERT_GE(fd, 0) << path;
    auto output = fd_writable_file(fd, path);
    BlobWriterOptions options;
    options.chunk_size = 4096;  // several chunks: the files cross chunk boundaries
    auto header = write_blob(*input, *output, options);
    ASSERT_TRUE(header) << header.error().message();
  }
  auto packed_file = [&](const std::string& name, const std::string& content, uint64_t offset) {
    image::EntrySpec e;
    e.path = name;
    e.type = image::EntryType::file;
    e.mode = S_IFREG | 0644;
    e.size = content.size();
    e.digest = Sha256::of(bytes_of(content));
    e.packed = image::PackedRef{pack, offset};
    return e;
  };
  image::EntrySpec root;
  root.type = image::EntryType::directory;
  root.mode = S_IFDIR | 0755;
  auto manifest = image::encode({root, packed_file("a", a, 0), packed_file("b", b, a.size()),
                                 packed_file("c", c, a.size() + b.size())},
                                {{pack, {}, concatenated.size()}});
  ASSERT_TRUE(manifest) << manifest.error().message();
  ASSERT_TRUE(store.write_image("packed", manifest.value()));

  MountedStore m(store_path, dir / "mnt");
  const std::string root_path = m.path() + "/images/packed/";
  {
    // One small read first: the rest of the window is pushed after the reply.
    const int fd = ::open((root_path + "b").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    char first[4096];
    ASSERT_EQ(::pread(fd, first, sizeof first, 0), static_cast<ssize_t>(sizeof first));
    EXPECT_EQ(std::string(first, sizeof first), b.substr(0, sizeof first));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the supplier's thread
    struct stat now {};
    ASSERT_EQ(::fstat(fd, &now), 0);
    EXPECT_EQ(now.st_size, static_cast<off_t>(b.size())) << "the push grew the file";
    const size_t map_size = (b.size() + 4095) / 4096 * 4096;
    void* p = ::mmap(nullptr, map_size, PROT_READ, MAP_SHARED, fd, 0);
    ASSERT_NE(p, MAP_FAILED);
    const char* bytes = static_cast<const char*>(p);
    EXPECT_TRUE(std::string(bytes, b.size()) == b);
    EXPECT_EQ(std::string(bytes + b.size(), map_size - b.size()), std::string(map_size - b.size(), '\0'));
    ::munmap(p, map_size);
    ::close(fd);
  }
  EXPECT_TRUE(testing::read_file(root_path + "a") == a);
  EXPECT_TRUE(testing::read_file(root_path + "b") == b);
  EXPECT_EQ(testing::read_file(root_path + "c"), c);
  struct stat st {};
  ASSERT_EQ(::stat((root_path + "b").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(b.size()));

  // The content digest of a packed file resolves under blobs/sha256.
  EXPECT_TRUE(testing::read_file(m.blob(Sha256::of(bytes_of(b)).hex())) == b);
  EXPECT_EQ(testing::read_file(m.blob(Sha256::of(bytes_of(c)).hex())), c);
  EXPECT_TRUE(testing::read_file(m.blob(pack.hex())) == concatenated);
  // And verify accepts the store.
  const ProcessResult v = pagerfsctl({"verify", store_path});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}


// A store written by the version 1 code (tests/data/v1-store: pagerfsctl
// pack of a small tree before manifest version 2): it mounts with its tree
// intact.
TEST(V1StoreTest, AVersion1ManifestMountsWithItsTreeIntact) {
  const char* data = std::getenv("PAGERFS_TEST_DATA");
  ASSERT_NE(data, nullptr);
  TempDir dir;
  const std::string store_path = dir / "store";
  std::filesystem::copy(std::string(data) + "/v1-store", store_path, std::filesystem::copy_options::recursive);
  ASSERT_EQ(load_le32(bytes_of(testing::read_file(store_path + "/images/v1")).data() + 8), 1u);  // version 1
  MountedStore m(store_path, dir / "mnt");
  const std::string root = m.path() + "/images/v1/";
  EXPECT_EQ(testing::read_file(root + "etc/motd"), "hello v1\n");
  EXPECT_EQ(testing::read_file(root + "etc/motd.link"), "hello v1\n");
  EXPECT_EQ(testing::read_file(root + "usr/lib/libx.so.1"), "lib bytes\n");
  EXPECT_EQ(testing::read_file(root + "usr/lib/empty-file"), "");
  char target[64] = {};
  ASSERT_EQ(::readlink((root + "usr/lib/libx.so").c_str(), target, sizeof target), 9);
  EXPECT_STREQ(target, "libx.so.1");
  struct stat st {}, link {};
  ASSERT_EQ(::stat((root + "etc/motd").c_str(), &st), 0);
  ASSERT_EQ(::stat((root + "etc/motd.link").c_str(), &link), 0);
  EXPECT_EQ(st.st_ino, link.st_ino);
  EXPECT_EQ(st.st_nlink, 2u);
  ASSERT_EQ(::stat((root + "usr/lib/libx.so.1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat(root.c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 5u);  // empty, etc, usr
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(root + "usr/lib")) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"empty-file", "libx.so", "libx.so.1"}));
  const ProcessResult v = pagerfsctl({"verify", store_path});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}


// A forged manifest (checksums recomputed over a malformed entry): the image
// mounts, the entry is EIO for each operation that meets it, its neighbours
// are served, the first error is logged once and every one is counted.
TEST(MalformedEntryTest, IsEioLoggedOnceAndCounted) {
  TempDir dir;
  const std::string store_path = dir / "store";
  auto created = Store::create(store_path);
  ASSERT_TRUE(created) << created.error().message();
  auto spec = [](std::string path, image::EntryType type, uint32_t mode) {
    image::EntrySpec e;
    e.path = std::move(path);
    e.type = type;
    e.mode = mode;
    return e;
  };
  image::EntrySpec bad = spec("d/bad", image::EntryType::special, S_IFIFO | 0644);
  auto manifest = image::encode({spec("", image::EntryType::directory, S_IFDIR | 0755),
                                 spec("d", image::EntryType::directory, S_IFDIR | 0755), bad,
                                 spec("d/good", image::EntryType::special, S_IFIFO | 0644)},
                                {});
  ASSERT_TRUE(manifest) << manifest.error().message();
  std::vector<std::byte>& b = manifest.value();
  // Entries: 0 root, 1 d, 2 d/bad, 3 d/good. Give d/bad a socket's type bits.
  const uint64_t pages = load_le64(b.data() + 56);
  const uint64_t body = image::kHeaderSize + pages * 8;
  b[body + 2 * image::kEntrySize + 13] ^= std::byte{0x80};  // S_IFIFO 0010000 -> 0110000: no such type
  for (uint64_t p = 0; p < pages; ++p) {
    const uint64_t start = body + p * image::kPageSize;
    store_le64(b.data() + image::kHeaderSize + p * 8,
               XXH3_64bits(b.data() + start, std::min<uint64_t>(image::kPageSize, b.size() - start)));
  }
  store_le64(b.data() + 64, XXH3_64bits(b.data() + image::kHeaderSize, pages * 8));
  store_le64(b.data() + 120, XXH3_64bits(b.data(), 120));
  ASSERT_TRUE(created.value().write_image("forged", b));

  MountedStore m(store_path, dir / "mnt");
  const std::string d = m.path() + "/images/forged/d/";
  struct stat st {};
  EXPECT_EQ(::lstat((d + "good").c_str(), &st), 0) << std::strerror(errno);
  for (int i = 0; i < 3; ++i) {
    errno = 0;
    EXPECT_NE(::lstat((d + "bad").c_str(), &st), 0);
    EXPECT_EQ(errno, EIO);
  }
  std::error_code ec;
  std::filesystem::directory_iterator it(d, ec);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
  }
  EXPECT_TRUE(ec) << "listing a directory with a malformed entry must fail";
  const std::string log = m.log();
  const size_t first = log.find("image 'forged'");
  EXPECT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("image 'forged'", first + 1), std::string::npos) << "logged once: " << log;
  const ProcessResult stats = pagerfsctl({"stats", m.path(), "--json"});
  EXPECT_EQ(stats.out.find("\"image_entry_errors\": 0"), std::string::npos) << stats.out;
  EXPECT_NE(stats.out.find("\"image_entry_errors\""), std::string::npos) << stats.out;
  const ProcessResult v = pagerfsctl({"verify", store_path});
  EXPECT_EQ(v.exit_code, 1) << v.out << v.err;
}

}  // namespace
}  // namespace pagerfs
