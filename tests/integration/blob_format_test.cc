// Blob formats through a real mount: a v1 blob (written before v2) still
// mounts and reads; a v2 chunk forged so that its XXH3 matches but its
// SHA-256 does not is EIO with -o verify=sha256 (and served without it:
// the check is what stops it).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/digest.h"
#include "support/blob_forgery.h"
#include "support/mount_fixture.h"
#include "support/subprocess.h"
#include "support/test_data.h"

namespace pagerfs {
namespace {

using testing::MountedStore;
using testing::TempDir;

constexpr const char* kV1Hex = "e17de274f118f08e1f1c5e4645e0e667e004d2713f46211fe12ff015aa667c9e";
constexpr uint32_t kChunk = 4096;

std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}

// Reads [offset, offset + length) of `path` with pread; the errno on failure.
int pread_errno(const std::string& path, uint64_t offset, size_t length, std::string* out) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return errno;
  out->assign(length, '\0');
  const ssize_t n = ::pread(fd, out->data(), length, static_cast<off_t>(offset));
  const int err = n < 0 ? errno : 0;
  ::close(fd);
  if (n >= 0) out->resize(static_cast<size_t>(n));
  return err;
}

class BlobFormatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::fuse_available()) {
      if (std::getenv("PAGERFS_REQUIRE_FUSE")) FAIL() << "/dev/fuse is required (PAGERFS_REQUIRE_FUSE)";
      GTEST_SKIP() << "no /dev/fuse";
    }
    store_ = dir_ / "store";
    ASSERT_TRUE(Store::create(store_));
    std::filesystem::create_directory(dir_ / "mnt");
  }

  std::string blob_path(const std::string& hex) const { return store_ + "/blobs/sha256/" + hex; }

  // Puts `file` in the store under the name of blob `digest` (a forgery).
  void replace_blob(const Digest& digest, const std::vector<std::byte>& file) const {
    std::filesystem::remove(blob_path(digest.hex()));
    testing::write_file(blob_path(digest.hex()), std::string(reinterpret_cast<const char*>(file.data()), file.size()));
  }

  Digest pack(const std::vector<std::byte>& content) {
    auto input = memory_input_stream(content);
    BlobWriterOptions options;
    options.chunk_size = kChunk;
    auto packed = Store::open(store_).value().pack(*input, options);
    EXPECT_TRUE(packed) << packed.error().message();
    return packed.value().header.digest;
  }

  std::string store_;
  TempDir dir_;
};

TEST_F(BlobFormatTest, AV1BlobStillMountsAndReadsBesideAV2One) {
  const char* root = std::getenv("PAGERFS_SOURCE_ROOT");
  ASSERT_NE(root, nullptr);
  std::filesystem::copy_file(std::string(root) + "/tests/data/v1-blob/" + kV1Hex, blob_path(kV1Hex));
  std::string v1_content(10000, '\0');
  for (size_t i = 0; i < v1_content.size(); ++i) v1_content[i] = static_cast<char>((i * 7 + i / 300) % 251);
  const auto v2_content = testing::random_bytes(3 * kChunk + 42, 5);
  const Digest v2 = pack(v2_content);
  for (const char* verify : {"verify=xxh3", "verify=sha256"}) {
    MountedStore m(store_, dir_ / "mnt", {verify});
    EXPECT_EQ(testing::read_file(m.blob(kV1Hex)), v1_content) << verify;
    EXPECT_TRUE(bytes_of(testing::read_file(m.blob(v2.hex()))) == v2_content) << verify;
  }
  const auto inspected = testing::run({testing::binary_from_env("PAGERFSCTL"), "inspect", blob_path(kV1Hex)});
  EXPECT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_NE(inspected.out.find("pagerfs blob v1"), std::string::npos) << inspected.out;
  const auto verified = testing::run({testing::binary_from_env("PAGERFSCTL"), "verify", store_});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
}

TEST_F(BlobFormatTest, AForgedChunkIsEioWithVerifySha256AndServedWithout) {
  const auto content = testing::random_bytes(3 * kChunk, 6);
  auto other = content;
  other[kChunk + 7] ^= std::byte{0x5a};
  const Digest genuine = pack(content);
  const Digest forger = pack(other);
  // The forger's blob, relabelled as the genuine content: chunk 1 holds
  // other bytes, with their XXH3, and the genuine chunk's SHA-256.
  auto file = bytes_of(testing::read_file(blob_path(forger.hex())));
  auto genuine_reader = BlobReader::open(blob_path(genuine.hex())).value();
  testing::forge_chunk_sha256(file, 1, genuine_reader->chunks()[1].sha256);
  testing::forge_header_digest(file, genuine);
  replace_blob(genuine, file);

  std::string got;
  {
    MountedStore m(store_, dir_ / "mnt", {"verify=sha256"});
    EXPECT_EQ(pread_errno(m.blob(genuine.hex()), 0, kChunk, &got), 0) << "chunk 0 is genuine";
    EXPECT_EQ(pread_errno(m.blob(genuine.hex()), kChunk, 100, &got), EIO);
    EXPECT_EQ(pread_errno(m.blob(genuine.hex()), kChunk, 100, &got), EIO) << "not cached as good";
  }
  {
    MountedStore m(store_, dir_ / "mnt", {"verify=xxh3"});
    ASSERT_EQ(pread_errno(m.blob(genuine.hex()), kChunk, 100, &got), 0);
    EXPECT_NE(got[7], static_cast<char>(content[kChunk + 7])) << "the forgery is served without SHA-256";
  }
  const auto verified = testing::run({testing::binary_from_env("PAGERFSCTL"), "verify", store_});
  EXPECT_EQ(verified.exit_code, 1) << "pagerfsctl verify always checks SHA-256";
  EXPECT_NE(verified.err.find("SHA-256"), std::string::npos) << verified.err;
}

// The anchor: an image records each blob's table digest, so a blob replaced
// by a self-consistent forgery (chunk bytes, XXH3, SHA-256 and the seek
// table all agreeing, under the genuine content digest) is refused when an
// image file opens, with the default verify=xxh3. The blob view, which has
// no anchor, serves the forgery: the anchor is what stops it.
TEST_F(BlobFormatTest, AnImageFileRefusesAForgedBlobByItsAnchor) {
  const auto content = testing::random_bytes(3 * kChunk, 7);
  auto other = content;
  other[kChunk + 9] ^= std::byte{0x33};
  const Digest genuine = pack(content);
  const Digest forger = pack(other);
  std::filesystem::create_directories(dir_ / "tree");
  testing::write_file(dir_ / "tree/file.bin", std::string(reinterpret_cast<const char*>(content.data()), content.size()));
  const auto packed = testing::run({testing::binary_from_env("PAGERFSCTL"), "pack", "--store", store_, "--image",
                                    "img", "--chunk-size", "4K", "--pack-threshold", "0", dir_ / "tree"});
  ASSERT_EQ(packed.exit_code, 0) << packed.err;

  // Fully self-consistent: chunk 1's SHA-256 is the forged bytes' own.
  auto file = bytes_of(testing::read_file(blob_path(forger.hex())));
  testing::forge_header_digest(file, genuine);
  replace_blob(genuine, file);

  MountedStore m(store_, dir_ / "mnt");
  const std::string image_file = m.path() + "/images/img/file.bin";
  std::string got;
  EXPECT_EQ(pread_errno(image_file, 0, 100, &got), EIO) << "refused at open by the manifest's anchor";
  EXPECT_EQ(pread_errno(image_file, 0, 100, &got), EIO) << "and again: a refused blob is not kept open";
  ASSERT_EQ(pread_errno(m.blob(genuine.hex()), kChunk, 100, &got), 0);
  EXPECT_NE(got[9], static_cast<char>(content[kChunk + 9])) << "the unanchored blob view serves the forgery";
  const auto stats = testing::run({testing::binary_from_env("PAGERFSCTL"), "stats", m.path(), "--json"});
  EXPECT_NE(stats.out.find("\"anchor_mismatches\":"), std::string::npos) << stats.out;
  EXPECT_EQ(stats.out.find("\"anchor_mismatches\":0"), std::string::npos) << stats.out;
}

}  // namespace
}  // namespace pagerfs
