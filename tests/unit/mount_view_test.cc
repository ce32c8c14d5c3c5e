// The mount view's namespace and inode rules, without a mount.
#include "fuse/mount_view.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "pagerfs/util/file.h"

namespace pagerfs {
namespace {

Digest digest_of(const std::string& content) { return Sha256::of(bytes_of(content)); }

image::EntrySpec dir(std::string path, uint32_t mode = 0755) {
  image::EntrySpec e;
  e.path = std::move(path);
  e.type = image::EntryType::directory;
  e.mode = S_IFDIR | mode;
  return e;
}

image::EntrySpec file(std::string path, const std::string& content, uint32_t mode = 0644, int64_t mtime = 1) {
  image::EntrySpec e;
  e.path = std::move(path);
  e.type = image::EntryType::file;
  e.mode = S_IFREG | mode;
  e.size = content.size();
  e.digest = digest_of(content);
  e.mtime_sec = mtime;
  return e;
}

image::Manifest manifest(std::vector<image::EntrySpec> entries) {
  auto bytes = image::encode(std::move(entries));
  EXPECT_TRUE(bytes) << bytes.error().message();
  auto m = image::Manifest::parse(std::move(bytes).value());
  EXPECT_TRUE(m) << m.error().message();
  return std::move(m).value();
}

std::vector<image::EntrySpec> sample_tree() {
  image::EntrySpec link;
  link.path = "bin/sh2";
  link.type = image::EntryType::hardlink;
  link.hardlink_target = "bin/sh";
  image::EntrySpec symlink;
  symlink.path = "lib";
  symlink.type = image::EntryType::symlink;
  symlink.mode = S_IFLNK | 0777;
  symlink.symlink_target = "usr/lib";
  return {dir(""),         dir("bin"),        file("bin/sh", "shell", 0755),
          link,            symlink,           dir("usr"),
          dir("usr/lib"),  file("usr/lib/a", "A"), file("usr/lib/a-copy", "A"),
          file("usr/lib/a-0600", "A", 0600)};
}

TEST(MountViewTest, FixedDirectoriesAndBlobs) {
  const Digest a = digest_of("a"), b = digest_of("b");
  MountView view;
  EXPECT_EQ(view.lookup(MountView::kRoot, "blobs"), MountView::kBlobsDir);
  EXPECT_EQ(view.lookup(MountView::kRoot, "images"), MountView::kImagesDir);
  EXPECT_EQ(view.lookup(MountView::kBlobsDir, "sha256"), MountView::kShaDir);
  EXPECT_EQ(view.lookup(MountView::kRoot, "nope"), std::nullopt);
  // A blob is known only while held.
  EXPECT_EQ(view.lookup(MountView::kShaDir, a.hex()), std::nullopt);
  const fuse_ino_t ino = view.hold_blob(a);
  EXPECT_EQ(ino, MountView::derived_blob_ino(a));
  EXPECT_NE(ino & MountView::kBlobBit, 0u);
  EXPECT_EQ(view.lookup(MountView::kShaDir, a.hex()), ino);
  EXPECT_EQ(view.node(ino)->kind, MountView::Node::Kind::blob);
  EXPECT_EQ(view.node(ino)->digest, a);
  EXPECT_EQ(view.hold_blob(a), ino);  // stable
  EXPECT_EQ(view.blob_ino(b), MountView::derived_blob_ino(b));
  EXPECT_EQ(view.resolve("blobs/sha256/" + a.hex()), ino);
  // The store's directory is listed by Filesystem: the view has "." and "..".
  EXPECT_EQ(view.list(MountView::kShaDir, 0, 100).size(), 2u);
}

TEST(MountViewTest, BlobInodesLiveWhileTheKernelHoldsThem) {
  const Digest a = digest_of("a");
  MountView view;
  const fuse_ino_t ino = view.hold_blob(a);
  view.hold_blob(a);
  view.hold_blob(a);
  EXPECT_EQ(view.blob_inode_count(), 1u);
  view.forget(ino, 2);
  EXPECT_TRUE(view.node(ino));
  view.forget(ino, 1);
  EXPECT_FALSE(view.node(ino));
  EXPECT_FALSE(view.has_blob(a));
  EXPECT_EQ(view.blob_inode_count(), 0u);
  view.forget(ino, 1);  // a stale forget: nothing to do
  view.forget(MountView::kShaDir, 1);
  // Looked up again: the same number.
  EXPECT_EQ(view.hold_blob(a), ino);
}

TEST(MountViewTest, DigestsWhoseFirst63BitsCollideGetDistinctInodes) {
  std::array<uint8_t, Digest::kSize> bytes{};
  bytes[0] = 0x12;
  bytes[7] = 0x34;  // the lowest of the first 64 bits: dropped by the derivation
  const Digest a(bytes);
  bytes[7] = 0x35;
  const Digest b(bytes);
  bytes[7] = 0x36;
  const Digest c(bytes);  // derived: a's number + 1
  ASSERT_EQ(MountView::derived_blob_ino(a), MountView::derived_blob_ino(b));
  MountView view;
  const fuse_ino_t ia = view.hold_blob(a);
  EXPECT_EQ(view.blob_ino(b), ia + 1);
  const fuse_ino_t ib = view.hold_blob(b);
  EXPECT_EQ(ib, ia + 1);
  const fuse_ino_t ic = view.hold_blob(c);  // its own number is b's: the next
  EXPECT_EQ(ic, ia + 2);
  EXPECT_EQ(view.node(ia)->digest, a);
  EXPECT_EQ(view.node(ib)->digest, b);
  EXPECT_EQ(view.node(ic)->digest, c);
  view.forget(ia, 1);
  EXPECT_EQ(view.node(ib)->digest, b);  // held numbers never move
  // The largest number wraps within the blob range.
  bytes.fill(0xff);
  const Digest top(bytes);
  bytes[31] = 0;
  const Digest top2(bytes);
  const fuse_ino_t it = view.hold_blob(top);
  EXPECT_EQ(it, ~fuse_ino_t{0});
  EXPECT_EQ(view.hold_blob(top2), MountView::kBlobBit);
}

TEST(MountViewTest, ImageTreeLookupsListingsAndAttributes) {
  MountView view;
  const fuse_ino_t root = view.add_image("base", manifest(sample_tree()));
  EXPECT_EQ(view.lookup(MountView::kImagesDir, "base"), root);
  EXPECT_TRUE(view.is_dir(root));
  const auto bin = view.lookup(root, "bin");
  ASSERT_TRUE(bin);
  EXPECT_TRUE(view.is_dir(*bin));
  const auto sh = view.lookup(*bin, "sh");
  const auto sh2 = view.lookup(*bin, "sh2");
  ASSERT_TRUE(sh && sh2);
  EXPECT_EQ(*sh, *sh2);  // a hard link is the same inode
  const auto node = view.node(*sh);
  ASSERT_TRUE(node);
  EXPECT_EQ(node->kind, MountView::Node::Kind::image_file);
  EXPECT_EQ(node->digest, digest_of("shell"));
  const struct stat st = MountView::image_attributes(*node->image, node->entry, *sh);
  EXPECT_EQ(st.st_mode, S_IFREG | 0755);
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(st.st_size, 5);

  const auto lib = view.lookup(root, "lib");
  ASSERT_TRUE(lib);
  EXPECT_FALSE(view.is_dir(*lib));
  EXPECT_EQ(view.node(*lib)->kind, MountView::Node::Kind::image_entry);
  // Names are components: no path resolves through a symlink or out of the image.
  EXPECT_EQ(view.lookup(*lib, "a"), std::nullopt);
  EXPECT_EQ(view.lookup(root, ".."), std::nullopt);
  EXPECT_EQ(view.lookup(root, "usr/lib"), std::nullopt);
  EXPECT_EQ(view.resolve("images/base/usr/lib/a"), view.lookup(*view.resolve("images/base/usr/lib"), "a"));

  const auto listing = view.list(root, 0, 100);
  std::vector<std::string> names;
  for (const auto& e : listing) names.push_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{".", "..", "bin", "lib", "usr"}));
  EXPECT_EQ(listing[1].ino, MountView::kImagesDir);
  EXPECT_EQ(listing[3].type, static_cast<mode_t>(S_IFLNK));
  const auto usr = view.lookup(root, "usr");
  EXPECT_EQ(view.list(*usr, 0, 100)[1].ino, root);  // ".."
}

TEST(MountViewTest, EveryFileThatIsNotAHardLinkHasAnInodeOfItsOwn) {
  MountView view;
  view.hold_blob(digest_of("A"));
  const fuse_ino_t one = view.add_image("one", manifest(sample_tree()));
  const fuse_ino_t two = view.add_image("two", manifest(sample_tree()));
  EXPECT_NE(one, two);
  const auto a1 = view.resolve("images/one/usr/lib/a");
  const auto copy1 = view.resolve("images/one/usr/lib/a-copy");
  const auto other_mode = view.resolve("images/one/usr/lib/a-0600");
  const auto a2 = view.resolve("images/two/usr/lib/a");
  ASSERT_TRUE(a1 && copy1 && other_mode && a2);
  // Equal content and attributes, in one image or in two: distinct files,
  // as tar, cp -a and rsync -H must see them.
  EXPECT_NE(*a1, *copy1);
  EXPECT_NE(*a1, *a2);
  EXPECT_NE(*a1, *other_mode);
  // ... with the same content underneath.
  EXPECT_EQ(view.node(*a1)->digest, view.node(*copy1)->digest);
  EXPECT_EQ(view.node(*a1)->digest, view.node(*a2)->digest);
  EXPECT_EQ(MountView::image_attributes(*view.node(*copy1)->image, view.node(*copy1)->entry, *copy1).st_nlink, 1u);
  EXPECT_NE(*a1, *view.resolve("blobs/sha256/" + digest_of("A").hex()));
  // A hard link group is one inode in its image only.
  EXPECT_EQ(*view.resolve("images/one/bin/sh"), *view.resolve("images/one/bin/sh2"));
  EXPECT_NE(*view.resolve("images/one/bin/sh"), *view.resolve("images/two/bin/sh"));
  EXPECT_NE(*view.resolve("images/one/usr"), *view.resolve("images/two/usr"));
  // Adding an image under a known name keeps the first.
  EXPECT_EQ(view.add_image("one", manifest({dir("")})), one);
  EXPECT_TRUE(view.resolve("images/one/usr/lib/a"));
}

TEST(MountViewTest, ConcurrentLookupsAndBlobAdditionsAgree) {
  std::vector<image::EntrySpec> entries{dir("")};
  for (int i = 0; i < 200; ++i) entries.push_back(file("f" + std::to_string(i), "content " + std::to_string(i % 50)));
  MountView view;
  view.add_image("one", manifest(entries));
  view.add_image("two", manifest(entries));
  // What each thread saw for f<k> and for blob k, racing with each other
  // and with blobs being added (as late lookups and listings do).
  std::vector<std::vector<std::pair<int, fuse_ino_t>>> seen(4), blobs_seen(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const int k = (i * 7 + t * 13) % 200;
        const std::string image = (t % 2 == 0) ? "one" : "two";
        seen[t].emplace_back(k, view.resolve("images/" + image + "/f" + std::to_string(k)).value_or(0));
        blobs_seen[t].emplace_back(k, view.hold_blob(digest_of("blob " + std::to_string(k))));
        (void)view.list(MountView::kShaDir, 0, 1000);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(view.blob_inode_count(), 200u);
  for (int t = 0; t < 4; ++t) {
    for (const auto& [k, ino] : seen[t]) {
      const std::string image = (t % 2 == 0) ? "one" : "two";
      EXPECT_EQ(ino, view.resolve("images/" + image + "/f" + std::to_string(k)).value_or(1)) << "f" << k;
    }
    for (const auto& [k, ino] : blobs_seen[t]) {
      EXPECT_EQ(ino, view.resolve("blobs/sha256/" + digest_of("blob " + std::to_string(k)).hex()).value_or(1));
    }
  }
}

}  // namespace
}  // namespace pagerfs
