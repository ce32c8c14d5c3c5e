// ImageCatalog: which images are usable and why not, the failures it
// remembers (retried when the manifest changes or after retry_after), its
// counters, and verify's stricter check against blobs verified whole.
#include "pagerfs/store/image_catalog.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "pagerfs/store/image_packer.h"
#include "pagerfs/store/store.h"
#include "support/subprocess.h"

namespace pagerfs {
namespace {

using namespace std::chrono_literals;
using testing::read_file;
using testing::TempDir;
using testing::write_file;

Digest digest_of(const std::string& content) { return Sha256::of(bytes_of(content)); }

class ImageCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(tree());
    write_file(tree() + "/a.txt", "alpha\n");
    write_file(tree() + "/b.txt", "bravo bravo\n");
    auto created = Store::create(dir_ / "store");
    ASSERT_TRUE(created) << created.error().message();
    store_.emplace(std::move(created).value());
    ImagePackOptions options;
    options.blob.chunk_size = 4096;
    options.blob.threads = 1;
    options.pack_threshold = 0;  // a blob per file: the tests remove and damage them one by one
    auto packed = pack_image(store(), "good", tree(), options);
    ASSERT_TRUE(packed) << packed.error().message();
    good_manifest_ = read_file(store().image_path("good"));
  }

  std::string tree() const { return dir_ / "tree"; }
  const Store& store() const { return *store_; }

  // A catalog whose failures are counted in `reported_`.
  ImageCatalog catalog(std::chrono::steady_clock::duration retry_after = 10s) {
    ImageCatalog::Options options;
    options.retry_after = retry_after;
    options.on_failure = [this](const Error& error) {
      ++reported_;
      last_reported_ = error.message();
    };
    return ImageCatalog(store(), options);
  }
  void write_manifest(const std::string& name, const std::string& bytes) {
    auto written = store().write_image(name, bytes_of(bytes));
    ASSERT_TRUE(written) << written.error().message();
  }
  // Moves blob `digest` out of the store; restore() puts it back.
  void hide_blob(const Digest& digest) {
    hidden_ = digest;
    std::filesystem::rename(store().blob_path(digest), dir_ / "hidden");
  }
  void restore_blob() { std::filesystem::rename(dir_ / "hidden", store().blob_path(hidden_)); }

  TempDir dir_;
  std::optional<Store> store_;
  std::string good_manifest_;
  int reported_ = 0;
  std::string last_reported_;
  Digest hidden_;
};

TEST_F(ImageCatalogTest, AGoodImageIsUsable) {
  ImageCatalog c = catalog();
  auto names = c.names();
  ASSERT_TRUE(names) << names.error().message();
  EXPECT_EQ(names.value(), std::vector<std::string>{"good"});
  auto loaded = c.load("good");
  ASSERT_TRUE(loaded) << loaded.error().message();
  ASSERT_TRUE(loaded.value().has_value());
  EXPECT_TRUE(loaded.value()->find("a.txt").value());
  EXPECT_EQ(reported_, 0);
  EXPECT_EQ(c.stats().images_failed, 0u);
  EXPECT_EQ(c.stats().image_load_failures, 0u);
  EXPECT_TRUE(c.manifest("good"));
}

TEST_F(ImageCatalogTest, NoSuchImageIsNotAFailure) {
  ImageCatalog c = catalog();
  for (const char* name : {"absent", ".hidden", "a/b", ""}) {
    auto loaded = c.load(name);
    ASSERT_TRUE(loaded) << name << ": " << loaded.error().message();
    EXPECT_FALSE(loaded.value().has_value()) << name;
  }
  EXPECT_EQ(reported_, 0);
  EXPECT_EQ(c.stats().image_load_failures, 0u);
}

TEST_F(ImageCatalogTest, ABrokenManifestIsRefusedAndRemembered) {
  write_manifest("broken", "not a manifest at all");
  ImageCatalog c = catalog();
  auto loaded = c.load("broken");
  ASSERT_FALSE(loaded);
  const std::string reason = loaded.error().message();
  EXPECT_NE(reason.find("image 'broken'"), std::string::npos) << reason;
  EXPECT_EQ(reason.find('\n'), std::string::npos) << reason;  // one line
  EXPECT_EQ(reported_, 1);
  EXPECT_EQ(last_reported_, reason);
  EXPECT_FALSE(c.manifest("broken"));  // the listing's view: the same manifest is bad

  // Asked again with the file unchanged: the remembered reason, not counted again.
  auto again = c.load("broken");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message(), reason);
  EXPECT_EQ(reported_, 1);
  EXPECT_EQ(c.stats().images_failed, 1u);
  EXPECT_EQ(c.stats().image_load_failures, 1u);

  // The good image is not affected.
  auto good = c.load("good");
  ASSERT_TRUE(good && good.value().has_value());
}

TEST_F(ImageCatalogTest, AMissingBlobDoesNotLeaveTheImageOut) {
  // Loading reads the manifest only: a missing blob is an error when a file
  // that needs it is opened, and verify's to find.
  hide_blob(digest_of("bravo bravo\n"));
  ImageCatalog c = catalog();
  auto loaded = c.load("good");
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_TRUE(loaded.value().has_value());
  EXPECT_EQ(c.stats().images_failed, 0u);
}

TEST_F(ImageCatalogTest, AChangedManifestIsRetriedAtOnce) {
  write_manifest("img", "garbage");
  ImageCatalog c = catalog(/*retry_after=*/1h);
  ASSERT_FALSE(c.load("img"));
  // Replaced (a new file under the name): read again without waiting.
  write_manifest("img", good_manifest_);
  auto loaded = c.load("img");
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_TRUE(loaded.value().has_value());
  EXPECT_EQ(c.stats().images_failed, 0u);
  EXPECT_EQ(c.stats().image_load_failures, 1u);
}

TEST_F(ImageCatalogTest, AnUnchangedFailureIsRetriedAfterRetryAfter) {
  write_manifest("img", "garbage");
  {
    ImageCatalog c = catalog(/*retry_after=*/1h);
    ASSERT_FALSE(c.load("img"));
    // The manifest did not change: the failure stands until retry_after.
    EXPECT_FALSE(c.load("img"));
    EXPECT_EQ(reported_, 1);
    EXPECT_EQ(c.stats().image_load_failures, 1u);
  }
  ImageCatalog c = catalog(/*retry_after=*/0s);
  ASSERT_FALSE(c.load("img"));
  ASSERT_FALSE(c.load("img"));  // retried, and failed again: counted
  EXPECT_EQ(c.stats().image_load_failures, 2u);
  EXPECT_EQ(c.stats().images_failed, 1u);
}

TEST_F(ImageCatalogTest, VerifyNeedsEveryBlobWholeAndOfItsSize) {
  const ImageCatalog c(store());
  const Digest a = digest_of("alpha\n"), b = digest_of("bravo bravo\n");
  EXPECT_TRUE(c.verify("good", {{a, 6}, {b, 12}}));

  auto missing = c.verify("good", {{a, 6}});  // b damaged: not whole
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), errc::corrupt_blob);
  EXPECT_NE(missing.error().message().find("blob " + b.str() + " is missing"), std::string::npos);

  auto short_blob = c.verify("good", {{a, 6}, {b, 11}});
  ASSERT_FALSE(short_blob);
  EXPECT_EQ(short_blob.error().code(), errc::corrupt_blob);
  EXPECT_EQ(short_blob.error().message(),
            "image 'good': blob " + b.str() + " has 11 bytes, the image says 12");

  write_manifest("broken", "garbage");
  auto broken = c.verify("broken", {{a, 6}, {b, 12}});
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().message().find("image 'broken'"), std::string::npos);
}

}  // namespace
}  // namespace pagerfs
