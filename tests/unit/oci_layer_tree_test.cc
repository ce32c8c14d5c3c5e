// LayerTree: the OCI layer semantics (replacement, whiteouts, opaque
// directories, implicit parents, hard links) and the refusals that keep a
// hostile layer inside the image root; entries fed by hand, no tar involved.
#include "pagerfs/oci/layer_tree.h"

#include "pagerfs/util/file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <map>
#include <string>
#include <vector>

namespace pagerfs::oci {
namespace {

LayerEntry dir(std::string path, uint32_t perm = 0755) {
  LayerEntry e;
  e.path = std::move(path);
  e.kind = EntryKind::directory;
  e.permissions = perm;
  return e;
}
LayerEntry file(std::string path, uint64_t size = 1, uint32_t perm = 0644) {
  LayerEntry e;
  e.path = std::move(path);
  e.kind = EntryKind::file;
  e.permissions = perm;
  e.size = size;
  return e;
}
LayerEntry symlink(std::string path, std::string target) {
  LayerEntry e;
  e.path = std::move(path);
  e.kind = EntryKind::symlink;
  e.permissions = 0777;
  e.symlink_target = std::move(target);
  return e;
}
LayerEntry hardlink(std::string path, std::string target) {
  LayerEntry e;
  e.path = std::move(path);
  e.kind = EntryKind::hardlink;
  e.hardlink_target = std::move(target);
  return e;
}
Digest digest_of(const std::string& s) { return Sha256::of(bytes_of(s)); }

// path -> entry of the tree's output.
std::map<std::string, image::EntrySpec> by_path(const LayerTree& tree) {
  std::map<std::string, image::EntrySpec> out;
  for (image::EntrySpec& e : tree.entries()) out.emplace(e.path, std::move(e));
  return out;
}

std::vector<std::string> paths(const LayerTree& tree) {
  std::vector<std::string> out;
  for (const auto& [path, e] : by_path(tree)) out.push_back(path);
  return out;
}

class LayerTreeTest : public ::testing::Test {
 protected:
  void layer(uint32_t index) { tree.begin_layer(index, "layer " + std::to_string(index + 1) + " (sha256:x...)"); }
  void apply(const LayerEntry& e, const Digest& d = Digest()) {
    auto r = tree.apply(e, d);
    ASSERT_TRUE(r) << r.error().message();
  }
  std::string fails(const LayerEntry& e) {
    auto r = tree.apply(e, Digest());
    EXPECT_FALSE(r) << e.path;
    return r ? "" : r.error().message();
  }
  LayerTree tree;
};

TEST_F(LayerTreeTest, ImplicitParentsAreRootOwnedDirectories) {
  layer(0);
  apply(file("a/b/c"), digest_of("c"));
  const auto entries = by_path(tree);
  ASSERT_EQ(paths(tree), (std::vector<std::string>{"", "a", "a/b", "a/b/c"}));
  EXPECT_EQ(entries.at("a").mode, S_IFDIR | 0755u);
  EXPECT_EQ(entries.at("a").uid, 0u);
  EXPECT_EQ(entries.at("a").mtime_sec, 0);
  EXPECT_EQ(entries.at("a/b/c").digest, digest_of("c"));
  EXPECT_EQ(entries.at("a/b/c").mode, S_IFREG | 0644u);
}

TEST_F(LayerTreeTest, DirectoryOverDirectoryKeepsChildrenTakesMetadata) {
  layer(0);
  apply(dir("d", 0700));
  apply(file("d/f"));
  layer(1);
  LayerEntry again = dir("d", 0751);
  again.uid = 7;
  apply(again);
  const auto entries = by_path(tree);
  EXPECT_TRUE(entries.contains("d/f"));
  EXPECT_EQ(entries.at("d").mode, S_IFDIR | 0751u);
  EXPECT_EQ(entries.at("d").uid, 7u);
}

TEST_F(LayerTreeTest, FileOverDirectoryReplacesTheSubtree) {
  layer(0);
  apply(file("d/x/y"));
  layer(1);
  apply(file("d"), digest_of("d"));
  EXPECT_EQ(paths(tree), (std::vector<std::string>{"", "d"}));
  EXPECT_EQ(tree.size(), 2u);
}

TEST_F(LayerTreeTest, WhiteoutRemovesLowerEntryAndSubtree) {
  layer(0);
  apply(file("etc/a"));
  apply(file("etc/b/c"));
  layer(1);
  apply(file("etc/.wh.a", 0));
  apply(file("etc/.wh.b", 0));
  apply(file("etc/.wh.nothing", 0));  // a whiteout of nothing is fine
  EXPECT_EQ(paths(tree), (std::vector<std::string>{"", "etc"}));
}

TEST_F(LayerTreeTest, WhiteoutDoesNotRemoveWhatItsOwnLayerWrote) {
  layer(0);
  apply(file("a"));
  apply(file(".wh.a", 0));
  EXPECT_EQ(paths(tree), (std::vector<std::string>{"", "a"}));
}

TEST_F(LayerTreeTest, WhiteoutUnderMissingParentCreatesNothing) {
  layer(1);
  apply(file("no/such/.wh.x", 0));
  EXPECT_EQ(paths(tree), (std::vector<std::string>{""}));
}

TEST_F(LayerTreeTest, OpaqueDirectoryHidesLowerChildrenKeepsItsLayers) {
  layer(0);
  apply(file("d/old"));
  apply(file("d/sub/older"));
  apply(file("other"));
  layer(1);
  apply(dir("d"));
  apply(file("d/new"));
  apply(file("d/.wh..wh..opq", 0));
  apply(file("d/sub/newer"));
  EXPECT_EQ(paths(tree), (std::vector<std::string>{"", "d", "d/new", "d/sub", "d/sub/newer", "other"}));
}

TEST_F(LayerTreeTest, WhiteoutEscapingItsDirectoryIsRefused) {
  layer(1);
  for (const char* path : {".wh.", "a/.wh..", "a/.wh..."}) {
    const std::string message = fails(file(path, 0));
    EXPECT_NE(message.find("whiteout escapes its directory"), std::string::npos) << message;
    EXPECT_NE(message.find("layer 2"), std::string::npos) << message;
  }
}

TEST_F(LayerTreeTest, WhiteoutUsedAsDirectoryIsRefused) {
  layer(0);
  const std::string message = fails(file(".wh.x/y"));
  EXPECT_NE(message.find("used as a directory"), std::string::npos) << message;
}

TEST_F(LayerTreeTest, EntryUnderSymlinkIsRefused) {
  layer(0);
  apply(symlink("etc", "/tmp"));
  layer(1);
  const std::string message = fails(file("etc/passwd"));
  EXPECT_EQ(message, "layer 2 (sha256:x...): entry 'etc/passwd': parent 'etc' is a symlink, not a directory");
  // And under a file.
  apply(file("f"));
  EXPECT_NE(fails(file("f/g")).find("parent 'f' is a file"), std::string::npos);
}

TEST_F(LayerTreeTest, HardLinksShareAnInodeListedOnceInManifestOrder) {
  layer(0);
  LayerEntry target = file("z/deep/bin", 5, 04755);
  apply(target, digest_of("bin"));
  apply(hardlink("a", "z/deep/bin"));
  const auto entries = by_path(tree);
  // "a" comes first in manifest order: it is the file, the other a link.
  EXPECT_EQ(entries.at("a").type, image::EntryType::file);
  EXPECT_EQ(entries.at("a").mode, S_IFREG | 04755u);
  EXPECT_EQ(entries.at("a").digest, digest_of("bin"));
  EXPECT_EQ(entries.at("z/deep/bin").type, image::EntryType::hardlink);
  EXPECT_EQ(entries.at("z/deep/bin").hardlink_target, "a");
  // The link survives a whiteout of its target.
  layer(1);
  apply(file("z/deep/.wh.bin", 0));
  EXPECT_EQ(by_path(tree).at("a").type, image::EntryType::file);
  auto encoded = image::encode(tree.entries(), {image::BlobRecord{digest_of("bin"), Digest(), 5}});
  EXPECT_TRUE(encoded) << encoded.error().message();
}

TEST_F(LayerTreeTest, HardLinkToMissingTargetOrDirectoryIsRefused) {
  layer(0);
  apply(dir("d"));
  EXPECT_NE(fails(hardlink("l", "nope")).find("hard link to missing target 'nope'"), std::string::npos);
  EXPECT_NE(fails(hardlink("l", "d")).find("hard link to a directory 'd'"), std::string::npos);
}

TEST_F(LayerTreeTest, RootEntryTakesMetadataRootMustBeADirectory) {
  layer(0);
  apply(dir("", 0700));
  EXPECT_EQ(by_path(tree).at("").mode, S_IFDIR | 0700u);
  EXPECT_NE(fails(file("")).find("the root is a file"), std::string::npos);
}

TEST_F(LayerTreeTest, SpecialFilesAndSymlinksKeepTheirFields) {
  layer(0);
  LayerEntry fifo;
  fifo.path = "p";
  fifo.kind = EntryKind::fifo;
  fifo.permissions = 0600;
  apply(fifo);
  LayerEntry dev;
  dev.path = "null";
  dev.kind = EntryKind::char_device;
  dev.permissions = 0666;
  dev.rdev = makedev(1, 3);
  apply(dev);
  apply(symlink("s", "../x"));
  const auto entries = by_path(tree);
  EXPECT_EQ(entries.at("p").mode, S_IFIFO | 0600u);
  EXPECT_EQ(entries.at("null").mode, S_IFCHR | 0666u);
  EXPECT_EQ(entries.at("null").rdev, makedev(1, 3));
  EXPECT_EQ(entries.at("s").symlink_target, "../x");
  EXPECT_EQ(entries.at("s").size, 4u);
}

TEST(NormalizeEntryPath, CanonicalOrRefused) {
  EXPECT_EQ(normalize_entry_path("./a//b/./c/").value(), "a/b/c");
  EXPECT_EQ(normalize_entry_path("./").value(), "");
  EXPECT_EQ(normalize_entry_path(".").value(), "");
  EXPECT_FALSE(normalize_entry_path("/etc/passwd"));
  EXPECT_FALSE(normalize_entry_path("a/../../b"));
  EXPECT_FALSE(normalize_entry_path(".."));
  EXPECT_FALSE(normalize_entry_path(std::string(256, 'x')));
  EXPECT_TRUE(normalize_entry_path(std::string(255, 'x')));
  EXPECT_FALSE(normalize_entry_path(std::string("a\0b", 3)));
}

}  // namespace
}  // namespace pagerfs::oci
