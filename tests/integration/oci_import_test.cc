// `pagerfsctl import` of container images built by real tools: umoci writes
// an OCI layout of three layers (a whiteout, an opaque directory, a hard
// link, a setuid file, a symlink, an xattr, a nanosecond mtime) from a
// busybox rootfs; skopeo turns it into a docker archive. The mounted image
// must equal what `umoci unpack` makes of the same layout, and a hostile
// layer must leave the store as it was.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "support/mount_fixture.h"
#include "support/subprocess.h"
#include "support/test_data.h"

namespace pagerfs {
namespace {

using testing::run;

// Builds img:t in `dir` (and the reference rootfs dir/ref/rootfs).
constexpr const char* kBuildImage = R"(set -e
cd "$1"
umoci init --layout img
umoci new --image img:t
umoci unpack --image img:t b >/dev/null
r=b/rootfs
mkdir -p $r/bin $r/etc $r/opq/old $r/gone
cp /bin/busybox $r/bin/busybox; ln -s busybox $r/bin/sh
echo hello > $r/etc/hello; ln $r/etc/hello $r/etc/hello-link
echo suid > $r/bin/suid; chmod 4755 $r/bin/suid
echo old > $r/opq/old/f; echo keep > $r/opq/keep; echo bye > $r/gone/file
setfattr -n user.note -v yes $r/etc/hello
touch -d '2020-01-02 03:04:05.123456789' $r/etc/hello
umoci repack --refresh-bundle --image img:t b
rm -rf $r/gone; echo new > $r/etc/new
umoci repack --image img:t b
mkdir -p l3/opq; touch l3/opq/.wh..wh..opq; echo fresh > l3/opq/fresh
tar -C l3 -cf l3.tar opq
umoci raw add-layer --image img:t l3.tar
umoci unpack --image img:t ref >/dev/null
)";

// What a tree holds, as text: every entry's type, mode, owner, size, mtime
// (ns), symlink target and link count (directories: no size or nlink, which
// the file system decides), and every xattr but pagerfs' own.
constexpr const char* kDescribe = R"(set -e
cd "$1"
find . ! -type d -printf '%P %y %m %U %G %s %T@ %l %n\n' | sort
find . -mindepth 1 -type d -printf '%P %m %U %G %T@\n' | sort
getfattr -R -d -m - . 2>/dev/null | awk '/^# file:/ {f = $3; next} /^user[.]pagerfs[.]/ {next} NF {print f, $0}' | sort
)";

class OciImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::fuse_available()) {
      if (std::getenv("PAGERFS_REQUIRE_FUSE")) FAIL() << "/dev/fuse is required (PAGERFS_REQUIRE_FUSE)";
      GTEST_SKIP() << "no /dev/fuse";
    }
    const auto built = run({"bash", "-c", kBuildImage, "build", dir_.path()});
    ASSERT_EQ(built.exit_code, 0) << built.err;
  }

  testing::ProcessResult import(const std::string& name, const std::string& source) {
    return run({pagerfsctl_, "import", "--store", store(), "--image", name, source});
  }
  std::string describe(const std::string& root) {
    const auto out = run({"bash", "-c", kDescribe, "describe", root});
    EXPECT_EQ(out.exit_code, 0) << out.err;
    return out.out;
  }
  // Every path of the store with the hash of every file's bytes.
  std::string store_state() {
    const auto out = run({"bash", "-c", "cd \"$1\" && find . | sort && find . -type f | sort | xargs -r md5sum",
                          "state", store()});
    EXPECT_EQ(out.exit_code, 0) << out.err;
    return out.out;
  }
  std::string store() const { return dir_ / "store"; }
  std::string path(const std::string& rel) const { return dir_ / rel; }

  testing::TempDir dir_;
  const std::string pagerfsctl_ = testing::binary_from_env("PAGERFSCTL");
};

TEST_F(OciImportTest, TheMountedImageEqualsUmociUnpack) {
  const auto imported = import("t", "oci:" + path("img") + ":t");
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_NE(imported.out.find("3 layers"), std::string::npos) << imported.out;
  testing::MountedStore m(store(), path("mnt"));
  const std::string root = m.path() + "/images/t";
  const auto diff = run({"diff", "-r", "--no-dereference", path("ref/rootfs"), root});
  EXPECT_EQ(diff.exit_code, 0) << diff.out << diff.err;
  const std::string expected = describe(path("ref/rootfs"));
  EXPECT_NE(expected.find("bin/suid f 4755"), std::string::npos) << expected;
  EXPECT_NE(expected.find("etc/hello user.note=\"yes\""), std::string::npos) << expected;
  EXPECT_EQ(expected.find("gone"), std::string::npos) << "whited out";
  EXPECT_EQ(expected.find("opq/keep"), std::string::npos) << "under an opaque directory";
  EXPECT_EQ(describe(root), expected);
  // The config is kept beside the image.
  const std::string config = testing::read_file(store() + "/configs/t");
  EXPECT_NE(config.find("\"rootfs\""), std::string::npos) << config;
}

TEST_F(OciImportTest, ADockerArchiveOfTheSameImageGivesTheSameManifest) {
  const auto copied = run({"skopeo", "copy", "oci:" + path("img") + ":t", "docker-archive:" + path("t.tar") + ":t:1"});
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  ASSERT_EQ(import("oci", "oci:" + path("img") + ":t").exit_code, 0);
  // skopeo records "docker.io/library/t:1": the short name finds it.
  const auto imported = import("archive", "docker-archive:" + path("t.tar") + ":t:1");
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_EQ(testing::read_file(store() + "/images/archive"), testing::read_file(store() + "/images/oci"));
  const auto unknown = import("x", "docker-archive:" + path("t.tar") + ":other");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("has no image tagged 'other'"), std::string::npos) << unknown.err;
}

// Each hostile layer on top of the good image: a one-line error naming the
// layer and the entry, and not a byte of the store changed.
TEST_F(OciImportTest, AHostileLayerIsRefusedAndTheStoreIsUnchanged) {
  ASSERT_EQ(import("t", "oci:" + path("img") + ":t").exit_code, 0);
  const std::string before = store_state();
  struct Case {
    std::string make;  // python: writes layer.tar in the current directory
    std::string entry;
    std::string why;
  };
  const std::string open_tar = "import tarfile, io\nt = tarfile.open('layer.tar', 'w')\n";
  const std::string add_file = "def add(name, data=b'x'):\n  i = tarfile.TarInfo(name); i.size = len(data)\n"
                               "  t.addfile(i, io.BytesIO(data))\n";
  const Case cases[] = {
      {"add('../escape')", "../escape", "'..' component"},
      {"add('/etc/passwd')", "/etc/passwd", ""},
      {"add('etc/.wh...')", "etc/.wh...", ""},
      {"i = tarfile.TarInfo('etc/link'); i.type = tarfile.LNKTYPE; i.linkname = 'etc/none'; t.addfile(i)",
       "etc/link", ""},
      {"i = tarfile.TarInfo('bin/sh/x'); i.size = 0; t.addfile(i)", "bin/sh/x", ""},
  };
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.entry);
    const std::string layout = "bad" + std::to_string(n++);
    const auto made = run({"bash", "-c",
                           "set -e; cd \"$1\"; cp -r img \"$2\"; python3 -c \"$3\"; "
                           "umoci raw add-layer --image \"$2:t\" layer.tar",
                           "make", dir_.path(), layout, open_tar + add_file + c.make + "\nt.close()\n"});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    const auto refused = import("bad", "oci:" + path(layout) + ":t");
    EXPECT_EQ(refused.exit_code, 1) << refused.err;
    EXPECT_NE(refused.err.find("layer 4 (sha256:"), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find(c.entry), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find(c.why), std::string::npos) << refused.err;
    EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
    EXPECT_EQ(store_state(), before);
  }
}

// A layer whose bytes are not what its descriptor says (a truncated gzip
// stream put in place of the blob): refused, the store unchanged.
TEST_F(OciImportTest, ALayerThatIsNotItsDigestIsRefused) {
  ASSERT_EQ(import("t", "oci:" + path("img") + ":t").exit_code, 0);
  const std::string before = store_state();
  const auto damaged = run({"bash", "-c",
                            "set -e; cd \"$1\"; cp -r img cut; "
                            "for b in cut/blobs/sha256/*; do "
                            "  if gzip -t \"$b\" 2>/dev/null && [ $(stat -c %s \"$b\") -gt 100000 ]; then "
                            "    chmod u+w \"$b\"; truncate -s 50000 \"$b\"; echo \"$b\"; fi; done",
                            "cut", dir_.path()});
  ASSERT_EQ(damaged.exit_code, 0) << damaged.err;
  ASSERT_FALSE(damaged.out.empty()) << "the big layer was found";
  const auto refused = import("cut", "oci:" + path("cut") + ":t");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("layer 1 (sha256:"), std::string::npos) << refused.err;
  EXPECT_EQ(store_state(), before);
}

}  // namespace
}  // namespace pagerfs
