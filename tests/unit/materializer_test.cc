// Which files are materialized for passthrough, and their bytes: small ones
// at open, big ones after a whole read, a packed file's own range only, and
// never a file whose bytes do not match its content digest.
#include "fuse/materializer.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "pager_fixture.h"

namespace pagerfs {
namespace {

class MaterializerTest : public PagerTest {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/pagerfs-materializer-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    auto files = MaterializedFiles::open({dir_ + "/m", 64 << 20});
    ASSERT_TRUE(files) << files.error().message();
    pager_ = make_pager();
    Materializer::Options options;
    options.small_file_limit = 64 * 1024;
    materializer_ = std::make_unique<Materializer>(std::move(files).value(), pager_, options, spdlog::default_logger());
  }
  void TearDown() override {
    materializer_.reset();
    std::filesystem::remove_all(dir_);
    PagerTest::TearDown();
  }

  Materializer::Source source(const Digest& blob, uint64_t offset, uint64_t length) {
    auto opened = pager_->open(blob);
    EXPECT_TRUE(opened) << opened.error().message();
    return {opened.value(), offset, length};
  }

  static std::vector<std::byte> contents(const MaterializedFile& file) {
    std::vector<std::byte> out(file.size());
    EXPECT_EQ(::pread(file.fd(), out.data(), out.size(), 0), static_cast<ssize_t>(out.size()));
    return out;
  }

  std::string dir_;
  std::shared_ptr<Pager> pager_;
  std::unique_ptr<Materializer> materializer_;
};

TEST_F(MaterializerTest, ASmallFileIsMaterializedAtItsFirstOpen) {
  const auto content = testing::random_bytes(50'000, 1);
  const Digest d = add_blob(content);
  auto backing = materializer_->backing_for_open(d, source(d, 0, content.size()));
  ASSERT_TRUE(backing);
  EXPECT_EQ(contents(*backing), content);
  EXPECT_EQ(materializer_->stats().materialized_on_open, 1u);
  // The next open finds it.
  auto again = materializer_->backing_for_open(d, source(d, 0, content.size()));
  ASSERT_TRUE(again);
  EXPECT_EQ(materializer_->stats().materialized_on_open, 1u);
  EXPECT_EQ(materializer_->file_stats().hits, 1u);
}

TEST_F(MaterializerTest, ABigFileIsMaterializedOnlyAfterAWholeRead) {
  const auto content = testing::compressible_bytes(300'000, 2);
  const Digest d = add_blob(content);
  EXPECT_FALSE(materializer_->backing_for_open(d, source(d, 0, content.size())));
  materializer_->read_whole(d, source(d, 0, content.size()));
  std::optional<MaterializedFile> backing;
  for (int i = 0; i < 500 && !backing; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (materializer_->stats().materialized_in_background == 1) {
      backing = materializer_->backing_for_open(d, source(d, 0, content.size()));
    }
  }
  ASSERT_TRUE(backing) << "not materialized in 5 s";
  EXPECT_EQ(contents(*backing), content);
}

TEST_F(MaterializerTest, APackedFileIsItsOwnRangeOfThePack) {
  const auto pack = testing::random_bytes(100'000, 3);
  const Digest d = add_blob(pack);
  const std::vector<std::byte> file(pack.begin() + 12'345, pack.begin() + 12'345 + 4'000);
  auto backing = materializer_->backing_for_open(Sha256::of(file), source(d, 12'345, file.size()));
  ASSERT_TRUE(backing);
  EXPECT_EQ(contents(*backing), file);
}

TEST_F(MaterializerTest, BytesThatDoNotMatchTheContentDigestAreNeverMaterialized) {
  const auto content = testing::random_bytes(10'000, 4);
  const Digest d = add_blob(content);
  const Digest other = Sha256::of(testing::random_bytes(10'000, 5));
  EXPECT_FALSE(materializer_->backing_for_open(other, source(d, 0, content.size())));
  EXPECT_EQ(materializer_->stats().failures, 1u);
  EXPECT_EQ(materializer_->file_stats().files, 0u);
}

TEST_F(MaterializerTest, AnEmptyFileHasNoBackingFile) {
  const Digest d = add_blob(testing::random_bytes(100, 6));
  EXPECT_FALSE(materializer_->backing_for_open(Sha256::of(std::vector<std::byte>{}), source(d, 0, 0)));
  EXPECT_EQ(materializer_->stats().failures, 0u);
}

}  // namespace
}  // namespace pagerfs
