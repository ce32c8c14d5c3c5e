// pagerfsctl through the real binary: exit codes, messages, and byte-exact output.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/file.h"
#include "pagerfs/store/image_manifest.h"
#include "pagerfs/store/store.h"
#include "support/subprocess.h"
#include "support/test_data.h"

namespace pagerfs {
namespace {

using testing::ProcessResult;
using testing::TempDir;

class CliTest : public ::testing::Test {
 protected:
  ProcessResult ctl(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), testing::binary_from_env("PAGERFSCTL"));
    return testing::run(args, input);
  }

  // pagerfsctl under timeout(1): a run that hangs is killed and ends with
  // status 124 (or 137), failing the test instead of hanging the suite.
  ProcessResult ctl_quick(std::vector<std::string> args) {
    args.insert(args.begin(), {"timeout", "-k", "2", "10", testing::binary_from_env("PAGERFSCTL")});
    return testing::run(args);
  }

  // Packs `content` from a file; returns the blob's path.
  std::string pack_file(const std::string& name, const std::string& content,
                        const std::string& chunk = "4K") {
    const std::string path = dir_ / name;
    testing::write_file(path, content);
    const auto r = ctl({"pack", "--store", store(), "--chunk-size", chunk, path});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const std::string hex = Sha256::of(bytes_of(content)).hex();
    EXPECT_EQ(r.out, "sha256:" + hex + "  " + path + "\n");
    return store() + "/blobs/sha256/" + hex;
  }

  // A failed run: the given status, no signal, one line on stderr.
  static void expect_failure(const ProcessResult& r, int code, const std::string& needle) {
    EXPECT_FALSE(r.signaled) << "signal " << r.signal;
    EXPECT_EQ(r.exit_code, code) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("pagerfsctl: "), std::string::npos) << r.err;
  }

  std::string store() const { return dir_ / "store"; }

  TempDir dir_;
};

TEST_F(CliTest, PackThenCatReproducesTheInput) {
  for (size_t size : {0, 1, 4095, 4096, 4097, 100000}) {
    const std::string content = testing::to_string(testing::random_bytes(size, size));
    const std::string blob = pack_file("in" + std::to_string(size), content);
    const auto r = ctl({"cat", blob});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(r.out == content) << "size " << size;
  }
}

TEST_F(CliTest, DigestMatchesSha256sum) {
  const std::string path = dir_ / "text";
  testing::write_file(path, testing::to_string(testing::compressible_bytes(300000)));
  const auto packed = ctl({"pack", "--store", store(), path});
  ASSERT_EQ(packed.exit_code, 0) << packed.err;
  const auto sum = testing::run({"sha256sum", path});
  ASSERT_EQ(sum.exit_code, 0);
  const std::string hex = sum.out.substr(0, 64);
  EXPECT_EQ(packed.out, "sha256:" + hex + "  " + path + "\n");
  struct stat st {};
  EXPECT_EQ(::stat((store() + "/blobs/sha256/" + hex).c_str(), &st), 0);
}

TEST_F(CliTest, PacksStandardInput) {
  const std::string content = testing::to_string(testing::compressible_bytes(70000));
  const auto r = ctl({"pack", "-s", store(), "-"}, content);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string hex = Sha256::of(bytes_of(content)).hex();
  EXPECT_EQ(r.out, "sha256:" + hex + "  -\n");
  EXPECT_TRUE(ctl({"cat", store() + "/blobs/sha256/" + hex}).out == content);
}

TEST_F(CliTest, CatHonoursOffsetAndLength) {
  const std::string content = testing::to_string(testing::random_bytes(20000));
  const std::string blob = pack_file("f", content);
  const std::tuple<std::string, std::string, size_t, size_t> cases[] = {
      {"0", "10", 0, 10},        {"4090", "20", 4090, 20}, {"19990", "100", 19990, 10},
      {"20000", "5", 20000, 0},  {"1K", "1K", 1024, 1024}, {"99999", "1", 20000, 0},
  };
  for (const auto& [off, len, expect_off, expect_len] : cases) {
    const auto r = ctl({"cat", blob, "--offset", off, "--length", len});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(r.out == content.substr(expect_off, expect_len)) << off << "+" << len;
  }
  EXPECT_TRUE(ctl({"cat", blob, "--offset", "15000"}).out == content.substr(15000));
}

TEST_F(CliTest, VerifyAcceptsAGoodStore) {
  pack_file("a", "hello");
  pack_file("b", testing::to_string(testing::random_bytes(50000)));
  const auto r = ctl({"verify", store()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("2 blob(s) checked: 2 ok, 0 corrupt"), std::string::npos) << r.err;
}

TEST_F(CliTest, AFlippedByteIsCaughtByVerifyAndCat) {
  const std::string content = testing::to_string(testing::random_bytes(30000));
  const std::string blob = pack_file("victim", content);
  const std::string intact = pack_file("intact", "other content");
  const std::string hex = blob.substr(blob.size() - 64);
  // Flip one byte in the middle of the second chunk's frame.
  ::chmod(blob.c_str(), 0644);
  {
    std::fstream f(blob, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(128 + 4096 + 2000);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x40);
    f.seekp(128 + 4096 + 2000);
    f.write(&c, 1);
  }
  const auto v = ctl({"verify", store()});
  expect_failure(v, 1, "corrupt blob sha256:" + hex);
  EXPECT_NE(v.out.find("CORRUPT  sha256:" + hex), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("ok       sha256:"), std::string::npos) << v.out;

  const auto c = ctl({"cat", blob});
  expect_failure(c, 1, "chunk 1: checksum mismatch");
  // The good chunk before the damage is still readable on its own.
  EXPECT_EQ(ctl({"cat", blob, "--length", "4096"}).out, content.substr(0, 4096));
  EXPECT_EQ(ctl({"verify", store(), intact.substr(intact.size() - 64)}).exit_code, 0);
}

TEST_F(CliTest, TruncatedAndGarbageBlobsFailCleanly) {
  const std::string content = testing::to_string(testing::random_bytes(30000));
  const std::string blob = pack_file("t", content);
  const std::string whole = testing::read_file(blob);
  for (size_t len : {size_t{0}, size_t{5}, size_t{127}, size_t{128}, size_t{4000}, whole.size() - 1}) {
    const std::string cut = dir_ / "cut";
    testing::write_file(cut, whole.substr(0, len));
    for (const char* cmd : {"cat", "inspect"}) {
      const auto r = ctl({cmd, cut});
      expect_failure(r, 1, "'" + cut + "'");
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
  }
  const std::string garbage = dir_ / "garbage";
  testing::write_file(garbage, testing::to_string(testing::random_bytes(10000, 3)));
  expect_failure(ctl({"cat", garbage}), 1, "not a pagerfs blob");
  expect_failure(ctl({"inspect", garbage}), 1, "bad magic");
  expect_failure(ctl({"cat", dir_ / "missing"}), 1, "No such file");
}

TEST_F(CliTest, InspectShowsGeometry) {
  const std::string blob = pack_file("g", testing::to_string(testing::compressible_bytes(10000)));
  const auto text = ctl({"inspect", blob});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("chunks      3 x 4.0 KiB (last 1808 bytes)"), std::string::npos) << text.out;
  const auto json = ctl({"inspect", "--json", blob});
  ASSERT_EQ(json.exit_code, 0);
  EXPECT_NE(json.out.find("\"byte_size\": 10000"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\"chunk_count\": 3"), std::string::npos) << json.out;
  // Format v2, and its table digest: the one the reader computes.
  EXPECT_NE(text.out.find("format      pagerfs blob v2, zstd"), std::string::npos) << text.out;
  const std::string table = "sha256:" + BlobReader::open(blob).value()->table_digest().hex();
  EXPECT_NE(text.out.find("table       " + table), std::string::npos) << text.out;
  EXPECT_NE(json.out.find("\"format_version\": 2"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\"table_digest\": \"" + table + "\""), std::string::npos) << json.out;
}

TEST_F(CliTest, BadUsageExitsTwo) {
  const std::string input = dir_ / "x";
  testing::write_file(input, "x");
  expect_failure(ctl({}), 2, "A subcommand is required");
  // Usage errors are one line that says where the usage is.
  for (const auto& [args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"frobnicate"}, "pagerfsctl: error: unknown command 'frobnicate' (see 'pagerfsctl --help')\n"},
           {{}, "pagerfsctl: error: A subcommand is required (see 'pagerfsctl --help')\n"},
           {{"pack", "-s", store()}, "pagerfsctl: error: inputs is required (see 'pagerfsctl pack --help')\n"},
           {{"inspect", "--bogus", input},
            "pagerfsctl: error: The following argument was not expected: --bogus (see 'pagerfsctl inspect --help')\n"}}) {
    const auto r = ctl(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.err, message);
  }
  expect_failure(ctl({"pack", input}), 2, "--store");
  expect_failure(ctl({"pack", "-s", store(), "--chunk-size", "3K", input}), 2, "chunk size 3072");
  expect_failure(ctl({"pack", "-s", store(), "--chunk-size", "lots", input}), 2, "bad size 'lots'");
  expect_failure(ctl({"pack", "-s", store(), "--level", "42", input}), 2, "compression level 42");
  expect_failure(ctl({"pack", "-s", store(), "-", "-"}), 2, "only once");
  expect_failure(ctl({"verify", dir_ / "nostore"}), 2, "No such file");
  expect_failure(ctl({"verify", dir_.path()}), 2, "not a pagerfs store");
  pack_file("y", "y");
  expect_failure(ctl({"verify", store(), "sha256:xyz"}), 2, "bad digest");
  expect_failure(ctl({"cat", input, "--offset", "-1"}), 2, "bad size");
  for (const char* sub : {"pack", "inspect", "verify", "cat"}) {
    const auto help = ctl({sub, "--help"});
    EXPECT_EQ(help.exit_code, 0) << sub;
    EXPECT_NE(help.out.find("Usage"), std::string::npos) << sub;
  }
}

TEST_F(CliTest, InspectOfADeviceSaysItIsNotARegularFile) {
  const auto r = ctl({"inspect", "/dev/zero"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "pagerfsctl: error: '/dev/zero' is not a regular file (a character device)\n");
  expect_failure(ctl({"inspect", dir_.path()}), 1, "is not a regular file (a directory)");
}

TEST_F(CliTest, VerifyOfAMissingBlobIsAnIoError) {
  pack_file("z", "z");
  const std::string absent(64, 'a');
  expect_failure(ctl({"verify", store(), absent}), 2, "cannot verify sha256:" + absent);
}

TEST_F(CliTest, PackFailureOfOneInputStillPacksTheOthers) {
  const std::string good = dir_ / "good";
  testing::write_file(good, "good");
  const auto r = ctl({"pack", "-s", store(), dir_ / "absent", good});
  expect_failure(r, 1, "absent");
  EXPECT_NE(r.out.find("  " + good), std::string::npos);
}

// A FIFO named like a blob or an image (someone else's store) is refused at
// once by every command, never waited on.
TEST_F(CliTest, FifosInTheStoreAreReportedNotWaitedOn) {
  pack_file("a", "good content");
  const std::string tree = dir_ / "tree";
  std::filesystem::create_directory(tree);
  testing::write_file(tree + "/f", "file of the image");
  ASSERT_EQ(ctl({"pack", "-s", store(), "--image", "good", tree}).exit_code, 0);
  const std::string later = "content packed later", in_image = "content of a later image";
  const std::string fifo_hex = Sha256::of(bytes_of(later)).hex();
  const std::string fifo_blob = store() + "/blobs/sha256/" + fifo_hex;
  const std::string image_hex = Sha256::of(bytes_of(in_image)).hex();
  ASSERT_EQ(::mkfifo(fifo_blob.c_str(), 0644), 0);
  ASSERT_EQ(::mkfifo((store() + "/blobs/sha256/" + image_hex).c_str(), 0644), 0);
  const std::string fifo_image = store() + "/images/piped";
  ASSERT_EQ(::mkfifo(fifo_image.c_str(), 0644), 0);

  const auto v = ctl_quick({"verify", store()});
  expect_failure(v, 1, "'" + fifo_blob + "' is not a regular file (a FIFO)");
  EXPECT_NE(v.out.find("CORRUPT  sha256:" + fifo_hex), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("CORRUPT  image piped"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("ok       image good"), std::string::npos) << v.out;
  expect_failure(ctl_quick({"verify", store(), fifo_hex}), 1, "is not a regular file (a FIFO)");

  const auto listed = ctl_quick({"images", store()});
  expect_failure(listed, 1, "image 'piped': '" + fifo_image + "' is not a regular file (a FIFO)");
  EXPECT_NE(listed.out.find("good"), std::string::npos) << "the other images are listed: " << listed.out;
  expect_failure(ctl_quick({"images", store(), "piped"}), 1, "is not a regular file (a FIFO)");
  for (const std::string& path : {fifo_blob, fifo_image}) {
    const auto inspected = ctl_quick({"inspect", path});
    expect_failure(inspected, 1, "'" + path + "' is not a regular file (a FIFO)");
    EXPECT_EQ(std::count(inspected.err.begin(), inspected.err.end(), '\n'), 1) << inspected.err;
    expect_failure(ctl_quick({"cat", path}), 1, "is not a regular file (a FIFO)");
  }

  // Packing the content a FIFO is named after replaces it with the blob,
  // from a file and in an image.
  testing::write_file(dir_ / "later", later);
  const auto packed = ctl_quick({"pack", "-s", store(), dir_ / "later"});
  EXPECT_EQ(packed.exit_code, 0) << packed.err;
  std::filesystem::create_directory(dir_ / "tree2");
  testing::write_file(dir_ / "tree2/g", in_image);
  const auto image = ctl_quick({"pack", "-s", store(), "--image", "later", dir_ / "tree2"});
  EXPECT_EQ(image.exit_code, 0) << image.err;
  ASSERT_EQ(::unlink(fifo_image.c_str()), 0);
  const auto again = ctl_quick({"verify", store()});
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_EQ(ctl_quick({"cat", fifo_blob}).out, later);
}

// A symlink named like a blob is refused, even one to a good blob file; a
// path the user names on the command line may be a link of theirs.
TEST_F(CliTest, ASymlinkNamedLikeABlobIsRefused) {
  const std::string blob = pack_file("a", "linked content");
  const std::string hex = blob.substr(blob.size() - 64);
  const std::string elsewhere = dir_ / "elsewhere";
  ASSERT_EQ(::rename(blob.c_str(), elsewhere.c_str()), 0);
  ASSERT_EQ(::symlink(elsewhere.c_str(), blob.c_str()), 0);
  const auto v = ctl_quick({"verify", store()});
  expect_failure(v, 1, "'" + blob + "' is not a regular file (a symbolic link)");
  EXPECT_NE(v.out.find("CORRUPT  sha256:" + hex), std::string::npos) << v.out;
  const std::string mine = dir_ / "my-link";
  ASSERT_EQ(::symlink(elsewhere.c_str(), mine.c_str()), 0);
  const auto c = ctl_quick({"cat", mine});
  EXPECT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(c.out, "linked content");
  EXPECT_EQ(ctl_quick({"inspect", mine}).exit_code, 0);
}

// A 0600 file packed into an image (an /etc/shadow of a root file system)
// cannot be read from the store on disk by another user: not its blob, not
// the manifest that lists it, not through pagerfsctl.
TEST_F(CliTest, APrivateFilePackedIntoAnImageStaysPrivateOnDisk) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to pack as one user and read as another";
  // Everything up to the store is open to the user, so only the store's own
  // modes can keep it out.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  const std::string probe = dir_ / "probe";
  testing::write_file(probe, "public");
  ASSERT_EQ(::chmod(probe.c_str(), 0644), 0);
  ASSERT_EQ(testing::run_as_test_user({"cat", probe}).out, "public") << "the user reaches the test directory";

  const std::string tree = dir_ / "rootfs";
  std::filesystem::create_directories(tree + "/etc");
  const std::string secret = "root:$6$very-secret-hash:19000:0:99999:7:::\n";
  testing::write_file(tree + "/etc/shadow", secret);
  ASSERT_EQ(::chmod((tree + "/etc/shadow").c_str(), 0600), 0);
  const auto packed = ctl({"pack", "-s", store(), "--image", "rootfs", tree});
  ASSERT_EQ(packed.exit_code, 0) << packed.err;
  EXPECT_EQ(packed.err.find("warning"), std::string::npos) << "a new store is private: " << packed.err;
  const std::string blob = store() + "/blobs/sha256/" + Sha256::of(bytes_of(secret)).hex();
  const std::string manifest = store() + "/images/rootfs";
  ASSERT_NE(testing::read_file(blob).find("very-secret"), std::string::npos) << "a small blob holds it as is";

  for (const std::string& path : {blob, manifest}) {
    const auto r = testing::run_as_test_user({"cat", path});
    EXPECT_NE(r.exit_code, 0) << path;
    EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << path << ": " << r.err;
    EXPECT_EQ(r.out.find("very-secret"), std::string::npos);
  }
  const auto listed = testing::run_as_test_user({"ls", store() + "/blobs/sha256"});
  EXPECT_NE(listed.exit_code, 0) << "not even the digests are listed: " << listed.out;
  const auto through_ctl = testing::run_as_test_user({testing::binary_from_env("PAGERFSCTL"), "cat", blob});
  EXPECT_EQ(through_ctl.exit_code, 1);
  EXPECT_NE(through_ctl.err.find("Permission denied"), std::string::npos) << through_ctl.err;
  EXPECT_EQ(through_ctl.out.find("very-secret"), std::string::npos);

  // The test can fail: with the old layout (0755 directories, 0444 files)
  // the same user reads the secret.
  for (const std::string& dir : {store() + "/blobs", store() + "/blobs/sha256"}) ::chmod(dir.c_str(), 0755);
  ::chmod(blob.c_str(), 0444);
  EXPECT_NE(testing::run_as_test_user({"cat", blob}).out.find("very-secret"), std::string::npos) << "a small blob holds it as is";
}

// Packing into an existing store that others may enter (a store of an older
// version) works and says once, in one line, what closes it; pagerfsctl
// never changes the mode of a directory it did not create.
TEST_F(CliTest, PackIntoALooseStoreWarnsOnce) {
  pack_file("first", "first");
  for (const std::string& dir : {store() + "/blobs", store() + "/blobs/sha256"}) {
    ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  }
  testing::write_file(dir_ / "x", "x");
  testing::write_file(dir_ / "y", "y");
  const auto r = ctl({"pack", "-s", store(), dir_ / "x", dir_ / "y"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "pagerfsctl: warning: store directories open to group or others can expose packed private "
                   "files; to close them: chmod 0700 '" + store() + "/blobs' '" + store() + "/blobs/sha256'\n");
  struct stat st {};
  ASSERT_EQ(::stat((store() + "/blobs/sha256").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u) << "left as it was";
  ASSERT_EQ(::stat((store() + "/blobs/sha256/" + Sha256::of(bytes_of(std::string("x"))).hex()).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400u) << "new blobs are owner-only anyway";
  for (const std::string& dir : {store() + "/blobs", store() + "/blobs/sha256"}) ::chmod(dir.c_str(), 0700);
  const auto quiet = ctl({"pack", "-s", store(), dir_ / "x"});
  EXPECT_EQ(quiet.err, "");
}

TEST_F(CliTest, ListingADeepImageIsLinear) {
  // 20,000 nested directories: each path is its parent's plus one name. A
  // listing that rebuilt every path from the root took about a minute; one
  // that extends the parent's path costs what it prints (400 MB here).
  constexpr int kDepth = 20000;
  {
    std::vector<image::EntrySpec> specs(kDepth + 1);
    std::string path;
    for (int i = 0; i <= kDepth; ++i) {
      if (i > 0) path += i == 1 ? "d" : "/d";
      specs[i].path = path;
      specs[i].type = image::EntryType::directory;
      specs[i].mode = S_IFDIR | 0755;
    }
    auto manifest = image::encode(std::move(specs), {});
    ASSERT_TRUE(manifest) << manifest.error().message();
    auto created = Store::create(store());
    ASSERT_TRUE(created) << created.error().message();
    ASSERT_TRUE(created.value().write_image("deep", manifest.value()));
  }

  // Into a file: capturing 400 MB through a pipe would time the test, not pagerfsctl.
  const std::string listing = dir_ / "listing";
  const auto start = std::chrono::steady_clock::now();
  const auto r = testing::run({"sh", "-c", "exec \"$0\" images \"$1\" deep > \"$2\"",
                               testing::binary_from_env("PAGERFSCTL"), store(), listing});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(seconds, 10.0);
  // Every line, in order: ".", "d", "d/d", ...
  std::ifstream in(listing);
  std::string line, expected = ".";
  size_t lines = 0;
  while (std::getline(in, line)) {
    ASSERT_TRUE(line.starts_with("dir      0755 ")) << line.substr(0, 80);
    ASSERT_TRUE(line.ends_with(expected) && line.size() > expected.size() + 2 &&
                line.compare(line.size() - expected.size() - 2, 2, "  ") == 0)
        << "line " << lines << ": " << line.substr(0, 80);
    if (lines == 0) expected = "d"; else expected += "/d";
    ++lines;
  }
  EXPECT_EQ(lines, static_cast<size_t>(kDepth + 1));
}

// The packing options of pack --image are checked before anything is read.
TEST_F(CliTest, PackOptionsAreChecked) {
  const std::string tree = dir_ / "tree";
  std::filesystem::create_directories(tree);
  testing::write_file(tree + "/f", "small");
  expect_failure(ctl({"pack", "-s", store(), "--image", "i", "--pack-threshold", "1M", "--pack-max", "64K", tree}),
                 2, "--pack-threshold (1.0 MiB) must not exceed --pack-max (64.0 KiB)");
  expect_failure(ctl({"pack", "-s", store(), "--image", "i", "--pack-max", "0", tree}), 2, "--pack-max");
  expect_failure(ctl({"pack", "-s", store(), "--image", "i", "--pack-threshold", "lots", tree}), 2,
                 "--pack-threshold");
  EXPECT_FALSE(std::filesystem::exists(store() + "/images/i"));
  EXPECT_EQ(ctl({"pack", "-s", store(), "--image", "i", "--pack-threshold", "0", tree}).exit_code, 0);
}

}  // namespace
}  // namespace pagerfs
