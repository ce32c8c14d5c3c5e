// The mount view's namespace and inode rules, without a mount.
#include "fuse/mount_view.h"

#include "support/manifest_specs.h"

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

// The view's lookups, failing the test on an error (none of these images
// is malformed).
std::optional<fuse_ino_t> lookup_ok(const MountView& view, fuse_ino_t parent, std::string_view name) {
  auto r = view.lookup(parent, name);
  EXPECT_TRUE(r) << r.error().message();
  return r ? r.value() : std::nullopt;
}
std::optional<fuse_ino_t> resolve_ok(const MountView& view, std::string_view path) {
  auto r = view.resolve(path);
  EXPECT_TRUE(r) << r.error().message();
  return r ? r.value() : std::nullopt;
}
std::optional<MountView::Node> node_ok(const MountView& view, fuse_ino_t ino) {
  auto r = view.node(ino);
  if (!r) return std::nullopt;
  return r.value();
}
std::vector<MountView::Entry> list_ok(const MountView& view, fuse_ino_t dir, size_t offset, size_t max) {
  auto r = view.list(dir, offset, max);
  EXPECT_TRUE(r) << r.error().message();
  return r ? r.value() : std::vector<MountView::Entry>{};
}
struct stat stat_zero() {
  struct stat st {};
  return st;
}

struct stat attrs_ok(const MountView& view, const MountView::Image& image, uint32_t entry, fuse_ino_t ino) {
  auto r = view.image_attributes(image, entry, ino);
  EXPECT_TRUE(r) << r.error().message();
  return r ? r.value() : stat_zero();
}

image::Manifest manifest(std::vector<image::EntrySpec> entries) {
  auto bytes = image::specs::encode(std::move(entries));
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
  EXPECT_EQ(lookup_ok(view, MountView::kRoot, "blobs"), MountView::kBlobsDir);
  EXPECT_EQ(lookup_ok(view, MountView::kRoot, "images"), MountView::kImagesDir);
  EXPECT_EQ(lookup_ok(view, MountView::kBlobsDir, "sha256"), MountView::kShaDir);
  EXPECT_EQ(lookup_ok(view, MountView::kRoot, "nope"), std::nullopt);
  // A blob is known only while held.
  EXPECT_EQ(lookup_ok(view, MountView::kShaDir, a.hex()), std::nullopt);
  const fuse_ino_t ino = view.hold_blob(a);
  EXPECT_EQ(ino, MountView::derived_blob_ino(a));
  EXPECT_NE(ino & MountView::kBlobBit, 0u);
  EXPECT_EQ(lookup_ok(view, MountView::kShaDir, a.hex()), ino);
  EXPECT_EQ(node_ok(view, ino)->kind, MountView::Node::Kind::blob);
  EXPECT_EQ(node_ok(view, ino)->digest, a);
  EXPECT_EQ(view.hold_blob(a), ino);  // stable
  EXPECT_EQ(view.blob_ino(b), MountView::derived_blob_ino(b));
  EXPECT_EQ(resolve_ok(view, "blobs/sha256/" + a.hex()), ino);
  // The store's directory is listed by Filesystem: the view has "." and "..".
  EXPECT_EQ(list_ok(view, MountView::kShaDir, 0, 100).size(), 2u);
}

TEST(MountViewTest, BlobInodesLiveWhileTheKernelHoldsThem) {
  const Digest a = digest_of("a");
  MountView view;
  const fuse_ino_t ino = view.hold_blob(a);
  view.hold_blob(a);
  view.hold_blob(a);
  EXPECT_EQ(view.blob_inode_count(), 1u);
  view.forget(ino, 2);
  EXPECT_TRUE(node_ok(view, ino));
  view.forget(ino, 1);
  EXPECT_FALSE(node_ok(view, ino));
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
  EXPECT_EQ(node_ok(view, ia)->digest, a);
  EXPECT_EQ(node_ok(view, ib)->digest, b);
  EXPECT_EQ(node_ok(view, ic)->digest, c);
  view.forget(ia, 1);
  EXPECT_EQ(node_ok(view, ib)->digest, b);  // held numbers never move
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
  EXPECT_EQ(lookup_ok(view, MountView::kImagesDir, "base"), root);
  EXPECT_TRUE(view.is_dir(root));
  const auto bin = lookup_ok(view, root, "bin");
  ASSERT_TRUE(bin);
  EXPECT_TRUE(view.is_dir(*bin));
  const auto sh = lookup_ok(view, *bin, "sh");
  const auto sh2 = lookup_ok(view, *bin, "sh2");
  ASSERT_TRUE(sh && sh2);
  EXPECT_EQ(*sh, *sh2);  // a hard link is the same inode
  const auto node = node_ok(view, *sh);
  ASSERT_TRUE(node);
  EXPECT_EQ(node->kind, MountView::Node::Kind::image_file);
  EXPECT_EQ(node->digest, digest_of("shell"));
  const struct stat st = attrs_ok(view, *node->image, node->entry, *sh);
  EXPECT_EQ(st.st_mode, S_IFREG | 0755);
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(st.st_size, 5);

  const auto lib = lookup_ok(view, root, "lib");
  ASSERT_TRUE(lib);
  EXPECT_FALSE(view.is_dir(*lib));
  EXPECT_EQ(node_ok(view, *lib)->kind, MountView::Node::Kind::image_entry);
  // Names are components: no path resolves through a symlink or out of the image.
  EXPECT_EQ(lookup_ok(view, *lib, "a"), std::nullopt);
  EXPECT_EQ(lookup_ok(view, root, ".."), std::nullopt);
  EXPECT_EQ(lookup_ok(view, root, "usr/lib"), std::nullopt);
  EXPECT_EQ(resolve_ok(view, "images/base/usr/lib/a"), lookup_ok(view, *resolve_ok(view, "images/base/usr/lib"), "a"));

  const auto listing = list_ok(view, root, 0, 100);
  std::vector<std::string> names;
  for (const auto& e : listing) names.push_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{".", "..", "bin", "lib", "usr"}));
  EXPECT_EQ(listing[1].ino, MountView::kImagesDir);
  EXPECT_EQ(listing[3].type, static_cast<mode_t>(S_IFLNK));
  const auto usr = lookup_ok(view, root, "usr");
  EXPECT_EQ(list_ok(view, *usr, 0, 100)[1].ino, root);  // ".."
}

TEST(MountViewTest, EveryFileThatIsNotAHardLinkHasAnInodeOfItsOwn) {
  MountView view;
  view.hold_blob(digest_of("A"));
  const fuse_ino_t one = view.add_image("one", manifest(sample_tree()));
  const fuse_ino_t two = view.add_image("two", manifest(sample_tree()));
  EXPECT_NE(one, two);
  const auto a1 = resolve_ok(view, "images/one/usr/lib/a");
  const auto copy1 = resolve_ok(view, "images/one/usr/lib/a-copy");
  const auto other_mode = resolve_ok(view, "images/one/usr/lib/a-0600");
  const auto a2 = resolve_ok(view, "images/two/usr/lib/a");
  ASSERT_TRUE(a1 && copy1 && other_mode && a2);
  // Equal content and attributes, in one image or in two: distinct files,
  // as tar, cp -a and rsync -H must see them.
  EXPECT_NE(*a1, *copy1);
  EXPECT_NE(*a1, *a2);
  EXPECT_NE(*a1, *other_mode);
  // ... with the same content underneath.
  EXPECT_EQ(node_ok(view, *a1)->digest, node_ok(view, *copy1)->digest);
  EXPECT_EQ(node_ok(view, *a1)->digest, node_ok(view, *a2)->digest);
  EXPECT_EQ(attrs_ok(view, *node_ok(view, *copy1)->image, node_ok(view, *copy1)->entry, *copy1).st_nlink, 1u);
  EXPECT_NE(*a1, *resolve_ok(view, "blobs/sha256/" + digest_of("A").hex()));
  // A hard link group is one inode in its image only.
  EXPECT_EQ(*resolve_ok(view, "images/one/bin/sh"), *resolve_ok(view, "images/one/bin/sh2"));
  EXPECT_NE(*resolve_ok(view, "images/one/bin/sh"), *resolve_ok(view, "images/two/bin/sh"));
  EXPECT_NE(*resolve_ok(view, "images/one/usr"), *resolve_ok(view, "images/two/usr"));
  // Adding an image under a known name keeps the first.
  EXPECT_EQ(view.add_image("one", manifest({dir("")})), one);
  EXPECT_TRUE(resolve_ok(view, "images/one/usr/lib/a"));
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
        seen[t].emplace_back(k, resolve_ok(view, "images/" + image + "/f" + std::to_string(k)).value_or(0));
        blobs_seen[t].emplace_back(k, view.hold_blob(digest_of("blob " + std::to_string(k))));
        (void)list_ok(view, MountView::kShaDir, 0, 1000);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(view.blob_inode_count(), 200u);
  for (int t = 0; t < 4; ++t) {
    for (const auto& [k, ino] : seen[t]) {
      const std::string image = (t % 2 == 0) ? "one" : "two";
      EXPECT_EQ(ino, resolve_ok(view, "images/" + image + "/f" + std::to_string(k)).value_or(1)) << "f" << k;
    }
    for (const auto& [k, ino] : blobs_seen[t]) {
      EXPECT_EQ(ino, resolve_ok(view, "blobs/sha256/" + digest_of("blob " + std::to_string(k)).hex()).value_or(1));
    }
  }
}

}  // namespace
}  // namespace pagerfs
