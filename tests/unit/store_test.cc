#include "pagerfs/store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <limits>

#include "pagerfs/blob_reader.h"
#include "pagerfs/verify.h"
#include "support/subprocess.h"
#include "support/test_data.h"

namespace pagerfs {
namespace {

using testing::TempDir;

Store::PackResult pack(const Store& store, const std::vector<std::byte>& content) {
  auto input = memory_input_stream(content);
  BlobWriterOptions options;
  options.chunk_size = 4096;
  auto packed = store.pack(*input, options);
  EXPECT_TRUE(packed) << packed.error().message();
  return packed.value();
}

TEST(Store, OpenRejectsMissingAndNonStores) {
  TempDir dir;
  auto missing = Store::open(dir / "nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), std::errc::no_such_file_or_directory);
  auto empty = Store::open(dir.path());
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code(), errc::not_a_store);
  EXPECT_NE(empty.error().message().find("not a pagerfs store"), std::string::npos);
}

TEST(Store, PackNamesTheBlobByItsContent) {
  TempDir dir;
  auto store = Store::create(dir / "store");
  ASSERT_TRUE(store) << store.error().message();
  const auto content = testing::random_bytes(50000);
  const auto packed = pack(store.value(), content);
  EXPECT_FALSE(packed.already_present);
  EXPECT_EQ(packed.header.digest, Sha256::of(content));
  const std::string path = store.value().blob_path(packed.header.digest);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), packed.file_size);
  EXPECT_TRUE(verify_blob(path, packed.header.digest));

  auto listed = store.value().list_blobs();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed.value().size(), 1u);
  EXPECT_EQ(listed.value()[0], packed.header.digest);
}

TEST(Store, PackKeepsAnExistingBlobAndLeavesNoTemporaries) {
  TempDir dir;
  auto store = Store::create(dir / "store").value();
  const auto content = testing::compressible_bytes(20000);
  const auto first = pack(store, content);
  struct stat before {};
  ASSERT_EQ(::stat(store.blob_path(first.header.digest).c_str(), &before), 0);
  const auto second = pack(store, content);
  EXPECT_TRUE(second.already_present);
  struct stat after {};
  ASSERT_EQ(::stat(store.blob_path(first.header.digest).c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
  const auto files = testing::run({"ls", "-A", store.blobs_dir()});
  EXPECT_EQ(files.out, first.header.digest.hex() + "\n");
}

TEST(Store, ListingIgnoresTemporariesAndStrangers) {
  TempDir dir;
  auto store = Store::create(dir / "store").value();
  const auto packed = pack(store, testing::random_bytes(10));
  testing::write_file(store.blobs_dir() + "/.tmp-pack-abcdef", "partial");
  testing::write_file(store.blobs_dir() + "/README", "hello");
  testing::write_file(store.blobs_dir() + "/" + std::string(64, 'A'), "upper case is not canonical");
  auto listed = store.list_blobs();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed.value().size(), 1u);
  EXPECT_EQ(listed.value()[0], packed.header.digest);
}

TEST(Store, VerifyNamesTheMismatch) {
  TempDir dir;
  auto store = Store::create(dir / "store").value();
  const auto a = pack(store, testing::random_bytes(5000, 1));
  const auto b = pack(store, testing::random_bytes(5000, 2));
  // A blob stored under another blob's name is intact but misnamed.
  auto wrong = verify_blob(store.blob_path(a.header.digest), b.header.digest);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), errc::digest_mismatch);
  EXPECT_TRUE(is_corruption(wrong.error().code()));
  EXPECT_NE(wrong.error().message().find("file name says " + b.header.digest.str()), std::string::npos);
  auto missing = verify_blob(dir / "none", std::nullopt);
  ASSERT_FALSE(missing);
  EXPECT_FALSE(is_corruption(missing.error().code()));
}

// An input that produces `size` bytes of a cheap, position-dependent pattern.
class PatternStream final : public InputStream {
 public:
  explicit PatternStream(uint64_t size) : size_(size) {}
  Result<size_t> read_some(std::span<std::byte> out) override {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), size_ - pos_));
    std::fill_n(out.begin(), n, std::byte{0});
    for (uint64_t p = (pos_ + 65535) / 65536 * 65536; p < pos_ + n; p += 65536) {
      out[p - pos_] = static_cast<std::byte>(p >> 16);
    }
    pos_ += n;
    return n;
  }
  const std::string& name() const noexcept override { return name_; }

 private:
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string name_ = "pattern";
};

TEST(Store, PacksAndReadsMoreThan4GiB) {
  TempDir dir;
  auto store = Store::create(dir / "store").value();
  const uint64_t size = (uint64_t{4} << 30) + 4097;
  PatternStream input(size);
  BlobWriterOptions options;
  options.chunk_size = 4 << 20;
  auto packed = store.pack(input, options);
  ASSERT_TRUE(packed) << packed.error().message();
  EXPECT_EQ(packed.value().header.byte_size, size);
  auto reader = BlobReader::open(store.blob_path(packed.value().header.digest));
  ASSERT_TRUE(reader) << reader.error().message();
  // Bytes past 4 GiB read back correctly: the pattern marks every 64 KiB.
  std::vector<std::byte> tail(8192);
  const uint64_t at = (uint64_t{4} << 30) - 4096;
  auto n = reader.value()->read(at, tail);
  ASSERT_TRUE(n);
  EXPECT_EQ(n.value(), 8192u);
  EXPECT_EQ(tail[4096], static_cast<std::byte>(((uint64_t{4} << 30) >> 16) & 0xff));
  EXPECT_EQ(tail[4095], std::byte{0});
}

}  // namespace
}  // namespace pagerfs
