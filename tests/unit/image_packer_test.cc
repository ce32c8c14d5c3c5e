// pack_image() against a tree that changes under it: swapped files are
// refused, changed files never leave a manifest naming a blob the store lacks,
// and special files are recorded without being opened. build_image() with
// small files packed: the specs name packs at the right offsets, each pack's
// decoded bytes are its files concatenated, equal contents share a place, and
// a second image reuses the first one's packs.
#include "pagerfs/store/image_packer.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/store/stored_packs.h"
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

// A config kept by an import under the name describes another image once a
// packed tree replaces it.
TEST_F(ImagePackerTest, PackingOverAnImportedImageRemovesItsConfig) {
  write_file(tree() + "/a", "a\n");
  ASSERT_TRUE(store().write_image_config("img", bytes_of(std::string(R"({"config":{}})"))));
  ASSERT_TRUE(store().write_image_config("other", bytes_of(std::string("{}"))));
  auto packed = pack();
  ASSERT_TRUE(packed) << packed.error().message();
  auto config = store().load_image_config("img");
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().code(), std::errc::no_such_file_or_directory);
  EXPECT_TRUE(store().load_image_config("other")) << "another image's config is kept";
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
  options_.pack_threshold = 0;  // whole blobs: a pack's member that changes fails the pack
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

// The decoded bytes of blob `digest`.
std::string blob_content(const Store& store, const Digest& digest) {
  auto reader = BlobReader::open(store.blob_path(digest));
  EXPECT_TRUE(reader) << digest.str() << ": " << (reader ? "" : reader.error().message());
  if (!reader) return {};
  std::string out(reader.value()->byte_size(), '\0');
  auto n = reader.value()->read(0, std::as_writable_bytes(std::span(out)));
  EXPECT_TRUE(n && n.value() == out.size()) << digest.str();
  return out;
}

class ImagePackerPacksTest : public ImagePackerTest {
 protected:
  void SetUp() override {
    ImagePackerTest::SetUp();
    options_.pack_threshold = 1000;
    options_.pack_max = 4000;
  }

  Result<BuiltImage> build(const StoredPacks& known = {}) { return build_image(store(), tree(), options_, known); }

  // Checks what a built image names against the tree on disk (`contents`:
  // path -> content of every regular file): each file names its content's
  // digest; a packed one sits at its offset in a pack the store holds, a whole
  // one is a blob of the store; every pack is exactly its distinct members
  // back to back; the blob records are sorted, unique, and name exactly the
  // blobs the entries use, with their sizes. With `reused_packs`, a pack may
  // also hold contents this image does not name (another image's files).
  void expect_consistent(const BuiltImage& built, const std::map<std::string, std::string>& contents,
                         bool reused_packs = false) {
    std::set<Digest> used;
    std::map<Digest, std::map<uint64_t, uint64_t>> pieces;  // pack -> offset -> length
    size_t files = 0;
    for (const image::EntrySpec& e : built.entries) {
      if (e.type != image::EntryType::file) {
        EXPECT_FALSE(e.packed) << e.path;
        continue;
      }
      ++files;
      const std::string& content = contents.at(e.path);
      EXPECT_EQ(e.digest, digest_of(content)) << e.path;
      EXPECT_EQ(e.size, content.size()) << e.path;
      if (e.packed) {
        EXPECT_GT(e.size, 0u) << e.path;
        EXPECT_LT(e.size, options_.pack_threshold) << e.path;
        EXPECT_EQ(blob_content(store(), e.packed->blob).substr(e.packed->offset, e.size), content) << e.path;
        pieces[e.packed->blob][e.packed->offset] = e.size;
        used.insert(e.packed->blob);
      } else {
        EXPECT_EQ(blob_content(store(), e.digest), content) << e.path;
        used.insert(e.digest);
      }
    }
    EXPECT_EQ(files, contents.size());
    for (const auto& [pack, at] : pieces) {
      if (reused_packs) break;
      uint64_t end = 0;
      for (const auto& [offset, length] : at) {
        EXPECT_EQ(offset, end) << pack.str() << ": a gap or an overlap";
        end = offset + length;
      }
      EXPECT_EQ(end, blob_content(store(), pack).size()) << pack.str();
      EXPECT_LE(end, options_.pack_max) << pack.str();
    }
    std::vector<Digest> named;
    for (const image::BlobRecord& r : built.blobs) {
      named.push_back(r.digest);
      EXPECT_EQ(r.byte_size, blob_content(store(), r.digest).size()) << r.digest.str();
    }
    EXPECT_TRUE(std::is_sorted(named.begin(), named.end()));
    EXPECT_EQ(std::set<Digest>(named.begin(), named.end()), used);
    EXPECT_EQ(named.size(), used.size());
  }

  // Writes `content` at `rel` in the tree and remembers it.
  void put(const std::string& rel, const std::string& content) {
    std::filesystem::create_directories(std::filesystem::path(tree() + "/" + rel).parent_path());
    write_file(tree() + "/" + rel, content);
    contents_[rel] = content;
  }

  const image::EntrySpec& spec(const BuiltImage& built, const std::string& path) {
    for (const image::EntrySpec& e : built.entries) {
      if (e.path == path) return e;
    }
    ADD_FAILURE() << path << " is not in the image";
    return built.entries.front();
  }

  std::map<std::string, std::string> contents_;
};

TEST_F(ImagePackerPacksTest, SmallFilesArePackedInManifestOrderAndEqualContentsShareAPlace) {
  // Breadth first: a, b, c, d/, then d/e, d/f, d/f2: one pack of a, b, d/e,
  // then a second one (d/f would take the first past 3000 bytes).
  options_.pack_max = 3000;
  put("a", std::string(900, 'a'));
  put("b", std::string(800, 'b'));
  put("big", std::string(10000, 'B'));         // whole: at or above the threshold
  put("c-dup-of-a", std::string(900, 'a'));    // shares a's place
  put("edge", std::string(1000, 'e'));         // whole: exactly the threshold
  put("empty", "");                            // whole: the empty blob
  put("d/e", std::string(999, 'x'));
  put("d/f", std::string(600, 'y'));
  put("d/f2", std::string(100, 'z'));
  put("d/g-dup-of-big", std::string(10000, 'B'));
  ASSERT_EQ(::link((tree() + "/a").c_str(), (tree() + "/d/link").c_str()), 0);

  auto built = build();
  ASSERT_TRUE(built) << built.error().message();
  const BuiltImage& b = built.value();
  expect_consistent(b, contents_);
  const image::EntrySpec& a = spec(b, "a");
  ASSERT_TRUE(a.packed);
  EXPECT_EQ(a.packed->offset, 0u);
  ASSERT_TRUE(spec(b, "b").packed);
  EXPECT_EQ(spec(b, "b").packed->blob, a.packed->blob);
  EXPECT_EQ(spec(b, "b").packed->offset, 900u);
  ASSERT_TRUE(spec(b, "c-dup-of-a").packed);
  EXPECT_EQ(spec(b, "c-dup-of-a").packed->blob, a.packed->blob);
  EXPECT_EQ(spec(b, "c-dup-of-a").packed->offset, 0u);
  ASSERT_TRUE(spec(b, "d/e").packed);
  EXPECT_EQ(spec(b, "d/e").packed->blob, a.packed->blob);
  EXPECT_EQ(spec(b, "d/e").packed->offset, 1700u);
  ASSERT_TRUE(spec(b, "d/f").packed);
  EXPECT_NE(spec(b, "d/f").packed->blob, a.packed->blob);
  EXPECT_EQ(spec(b, "d/f").packed->offset, 0u);
  ASSERT_TRUE(spec(b, "d/f2").packed);
  EXPECT_EQ(spec(b, "d/f2").packed->offset, 600u);
  EXPECT_EQ(blob_content(store(), a.packed->blob),
            std::string(900, 'a') + std::string(800, 'b') + std::string(999, 'x'));
  for (const char* whole : {"big", "edge", "empty", "d/g-dup-of-big"}) EXPECT_FALSE(spec(b, whole).packed) << whole;
  EXPECT_EQ(spec(b, "d/link").type, image::EntryType::hardlink);
  EXPECT_FALSE(spec(b, "d/link").packed);

  EXPECT_EQ(b.result.files, 10u);
  EXPECT_EQ(b.result.packed_files, 6u);
  EXPECT_EQ(b.result.packs, 2u);
  EXPECT_EQ(b.result.new_packs, 2u);
  EXPECT_EQ(b.result.new_blobs, 5u);  // 2 packs, big, edge, empty
  EXPECT_EQ(b.blobs.size(), 5u);

  // The same tree again: the same packs (a plan is deterministic), nothing new.
  auto again = build();
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(again.value().result.new_blobs, 0u);
  ASSERT_TRUE(spec(again.value(), "d/f").packed);
  EXPECT_EQ(spec(again.value(), "d/f").packed->blob, spec(b, "d/f").packed->blob);
}

TEST_F(ImagePackerPacksTest, ThresholdZeroPacksNothing) {
  put("a", "small");
  put("d/b", std::string(100, 'b'));
  put("d/c", "small");
  options_.pack_threshold = 0;
  auto built = build();
  ASSERT_TRUE(built) << built.error().message();
  expect_consistent(built.value(), contents_);
  for (const image::EntrySpec& e : built.value().entries) EXPECT_FALSE(e.packed) << e.path;
  EXPECT_EQ(built.value().result.packs, 0u);
  EXPECT_EQ(built.value().blobs.size(), 2u);
}

TEST_F(ImagePackerPacksTest, ASecondImageWithTwoChangedFilesWritesOnePack) {
  for (int i = 0; i < 12; ++i) put("d" + std::to_string(i % 3) + "/f" + std::to_string(i), std::string(500, static_cast<char>('a' + i)));
  auto first = build();
  ASSERT_TRUE(first) << first.error().message();
  expect_consistent(first.value(), contents_);
  EXPECT_EQ(first.value().result.new_packs, 2u);  // 12 x 500 bytes, 4000 per pack

  // What stored_packs() will read from the first image's manifest (Part B).
  StoredPacks known;
  std::map<Digest, image::BlobRecord> records;
  for (const image::BlobRecord& r : first.value().blobs) records[r.digest] = r;
  for (const image::EntrySpec& e : first.value().entries) {
    if (e.packed) known.add(e.digest, *e.packed, records.at(e.packed->blob));
  }
  put("d1/f4", std::string(500, '4'));
  put("d2/f11", std::string(300, '!'));
  auto second = build(known);
  ASSERT_TRUE(second) << second.error().message();
  const BuiltImage& b = second.value();
  expect_consistent(b, contents_, /*reused_packs=*/true);
  EXPECT_EQ(b.result.new_packs, 1u);
  EXPECT_EQ(b.result.new_blobs, 1u);
  EXPECT_EQ(b.result.packs, 3u);
  const image::EntrySpec& f4 = spec(b, "d1/f4");
  const image::EntrySpec& f11 = spec(b, "d2/f11");
  ASSERT_TRUE(f4.packed && f11.packed);
  EXPECT_EQ(f4.packed->blob, f11.packed->blob);
  EXPECT_EQ(blob_content(store(), f4.packed->blob), std::string(500, '4') + std::string(300, '!'));
  for (const image::EntrySpec& e : b.entries) {
    if (!e.packed || e.path == "d1/f4" || e.path == "d2/f11") continue;
    const image::EntrySpec& before = spec(first.value(), e.path);
    ASSERT_TRUE(before.packed) << e.path;
    EXPECT_EQ(e.packed->blob, before.packed->blob) << e.path;
    EXPECT_EQ(e.packed->offset, before.packed->offset) << e.path;
  }
}

TEST_F(ImagePackerPacksTest, APackedFileChangedAfterItsHashFailsThePack) {
  put("a", std::string(500, 'a'));
  put("b", std::string(500, 'b'));
  for (const std::string& replacement : {std::string(500, 'z'), std::string(499, 'b'), std::string(501, 'b')}) {
    SCOPED_TRACE(replacement.size());
    write_file(tree() + "/b", std::string(500, 'b'));
    options_.test_hooks.hashed = [&](const std::string& path) {
      if (path == tree() + "/b") write_file(path, replacement);  // the same inode
    };
    auto built = build();
    ASSERT_FALSE(built);
    EXPECT_NE(built.error().message().find("'" + tree() + "/b' changed during pack"), std::string::npos)
        << built.error().message();
    EXPECT_FALSE(store().has_blob(Sha256::of(bytes_of(std::string(500, 'a') + replacement))));
  }
}

TEST_F(ImagePackerPacksTest, PackingOptionsAreChecked) {
  put("a", "a");
  options_.pack_threshold = 5000;  // above pack_max
  auto built = build();
  ASSERT_FALSE(built);
  EXPECT_NE(built.error().message().find("--pack-threshold"), std::string::npos) << built.error().message();
}

}  // namespace
}  // namespace pagerfs
