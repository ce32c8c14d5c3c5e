// pack_image() against a tree that changes under it: swapped files are
// refused, changed files never leave a manifest naming a blob the store lacks,
// and special files are recorded without being opened.
#include "pagerfs/store/image_packer.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "pagerfs/util/digest.h"
#include "pagerfs/store/store.h"
#include "pagerfs/store/verify.h"
#include "support/subprocess.h"

namespace pagerfs {
namespace {

using testing::TempDir;
using testing::write_file;

Digest digest_of(const std::string& content) { return Sha256::of(bytes_of(content)); }

class ImagePackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(tree());
    auto created = Store::create(dir_ / "store");
    ASSERT_TRUE(created) << created.error().message();
    store_.emplace(std::move(created).value());
    options_.blob.chunk_size = 4096;
    options_.blob.threads = 1;
  }

  std::string tree() const { return dir_ / "tree"; }
  const Store& store() const { return *store_; }

  Result<ImagePackResult> pack() { return pack_image(store(), "img", tree(), options_); }

  // The image is there, every blob it names is whole, and `path` names
  // `content`.
  void expect_file(const image::Manifest& m, const std::string& path, const std::string& content) {
    const auto index = m.find(path);
    ASSERT_TRUE(index && index.value()) << path;
    const image::Entry e = m.entry(m.resolve(*index.value()).value()).value();
    ASSERT_EQ(e.type, image::EntryType::file) << path;
    EXPECT_EQ(m.content(e).value().digest, digest_of(content)) << path;
    EXPECT_EQ(e.size, content.size()) << path;
  }

  // Every blob the image names is in the store and intact.
  void expect_blobs_stored(const image::Manifest& m) {
    ASSERT_TRUE(m.verify());
    for (uint32_t k = 0; k < m.blob_count(); ++k) {
      const Digest d = m.blob_at(k).value().digest;
      EXPECT_TRUE(store().has_blob(d)) << d.str();
      auto verified = verify_blob(store().blob_path(d), d, 1);
      EXPECT_TRUE(verified) << d.str() << ": " << (verified ? "" : verified.error().message());
    }
  }

  // A failed pack: the message names `path` as changed, and no image was written.
  void expect_refused(const Result<ImagePackResult>& packed, const std::string& path) {
    ASSERT_FALSE(packed);
    EXPECT_NE(packed.error().message().find("'" + path + "' changed during pack"), std::string::npos)
        << packed.error().message();
    EXPECT_FALSE(std::filesystem::exists(store().image_path("img")));
  }

  TempDir dir_;
  std::optional<Store> store_;
  ImagePackOptions options_;
};

TEST_F(ImagePackerTest, PacksATreeWithLinksXattrsAndSpecialFiles) {
  std::filesystem::create_directories(tree() + "/d/e");
  write_file(tree() + "/d/e/f", "content\n");
  write_file(tree() + "/g", "content\n");
  ASSERT_EQ(::link((tree() + "/d/e/f").c_str(), (tree() + "/d/h").c_str()), 0);
  ASSERT_EQ(::symlink("e/f", (tree() + "/d/s").c_str()), 0);
  ASSERT_EQ(::mkfifo((tree() + "/fifo").c_str(), 0600), 0);
  // A socket: a FIFO or socket opened to read would block the pack.
  const int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = tree() + "/sock";
  ASSERT_LT(sock_path.size(), sizeof addr.sun_path);
  std::strcpy(addr.sun_path, sock_path.c_str());
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(sock);
  const bool have_xattrs = ::setxattr((tree() + "/g").c_str(), "user.test", "v1", 2, 0) == 0;

  auto packed = pack();
  ASSERT_TRUE(packed) << packed.error().message();
  EXPECT_EQ(packed.value().files, 2u);
  EXPECT_EQ(packed.value().distinct_blobs, 1u);
  auto m = store().load_image("img");
  ASSERT_TRUE(m) << m.error().message();
  expect_file(m.value(), "d/e/f", "content\n");
  expect_file(m.value(), "g", "content\n");
  EXPECT_EQ(m.value().entry(*m.value().find("d/h").value()).value().type, image::EntryType::hardlink);
  EXPECT_EQ(m.value().symlink_target(m.value().entry(*m.value().find("d/s").value()).value()), "e/f");
  for (const auto& [name, type] : {std::pair{"fifo", S_IFIFO}, std::pair{"sock", S_IFSOCK}}) {
    const auto index = m.value().find(name).value();
    ASSERT_TRUE(index) << name;
    EXPECT_EQ(m.value().entry(*index).value().type, image::EntryType::special) << name;
    EXPECT_EQ(m.value().entry(*index).value().mode & S_IFMT, static_cast<uint32_t>(type)) << name;
  }
  if (have_xattrs) {
    const auto value = m.value().xattr(m.value().entry(*m.value().find("g").value()).value(), "user.test");
    ASSERT_TRUE(value);
    EXPECT_EQ(*value, "v1");
  }
  expect_blobs_stored(m.value());
}

TEST_F(ImagePackerTest, AFileSwappedForASymlinkAfterTheScanIsRefused) {
  write_file(tree() + "/a", "inside\n");
  const std::string secret = dir_ / "secret";
  write_file(secret, "outside secret\n");
  options_.test_hooks.scanned = [&] {
    ASSERT_EQ(::unlink((tree() + "/a").c_str()), 0);
    ASSERT_EQ(::symlink(secret.c_str(), (tree() + "/a").c_str()), 0);
  };
  expect_refused(pack(), tree() + "/a");
  EXPECT_FALSE(store().has_blob(digest_of("outside secret\n")));
}

TEST_F(ImagePackerTest, ADirectorySwappedForASymlinkAfterTheScanIsRefused) {
  std::filesystem::create_directories(tree() + "/d");
  write_file(tree() + "/d/f", "inside\n");
  const std::string outside = dir_ / "outside";
  std::filesystem::create_directories(outside);
  write_file(outside + "/f", "outside secret\n");
  options_.test_hooks.scanned = [&] {
    std::filesystem::rename(tree() + "/d", dir_ / "moved");
    ASSERT_EQ(::symlink(outside.c_str(), (tree() + "/d").c_str()), 0);
  };
  expect_refused(pack(), tree() + "/d/f");
  EXPECT_FALSE(store().has_blob(digest_of("outside secret\n")));
}

TEST_F(ImagePackerTest, AFileReplacedByAnotherOrByAFifoIsRefused) {
  write_file(tree() + "/a", "first\n");
  options_.test_hooks.scanned = [&] {
    write_file(dir_ / "other", "other\n");
    std::filesystem::rename(dir_ / "other", tree() + "/a");  // same name, another inode
  };
  expect_refused(pack(), tree() + "/a");
  EXPECT_FALSE(store().has_blob(digest_of("other\n")));

  options_.test_hooks.scanned = [&] {
    ASSERT_EQ(::unlink((tree() + "/a").c_str()), 0);
    ASSERT_EQ(::mkfifo((tree() + "/a").c_str(), 0600), 0);  // would block an open to read
  };
  ASSERT_EQ(::unlink((tree() + "/a").c_str()), 0);
  write_file(tree() + "/a", "first\n");
  const auto packed = pack();
  expect_refused(packed, tree() + "/a");
  EXPECT_NE(packed.error().message().find("a FIFO"), std::string::npos) << packed.error().message();
}

TEST_F(ImagePackerTest, AFileChangedAfterItsHashLeavesNoManifestNamingAMissingBlob) {
  // a and b have the same content: a is hashed first (one thread, name
  // order) and claims the digest, b defers to it; then a changes before it
  // is compressed, so a's blob is of its new content and the digest b
  // named was not stored by anyone.
  write_file(tree() + "/a", "same content\n");
  write_file(tree() + "/b", "same content\n");
  int calls = 0;
  options_.test_hooks.hashed = [&](const std::string& path) {
    if (calls++ == 0) write_file(path, "changed after the hash\n");
  };
  auto packed = pack();
  ASSERT_TRUE(packed) << packed.error().message();
  EXPECT_EQ(calls, 2);
  auto m = store().load_image("img");
  ASSERT_TRUE(m) << m.error().message();
  expect_file(m.value(), "a", "changed after the hash\n");
  expect_file(m.value(), "b", "same content\n");
  expect_blobs_stored(m.value());
  EXPECT_EQ(packed.value().new_blobs, 2u);
}

}  // namespace
}  // namespace pagerfs
