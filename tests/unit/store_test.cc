#include "pagerfs/store/store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <limits>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/store/verify.h"
#include "support/returns_quickly.h"
#include "support/subprocess.h"
#include "support/test_data.h"
#include "util/safe_open.h"

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
  // Owner-only (was 0444): the blob may hold a file that was private.
  EXPECT_EQ(st.st_mode & 0777, 0400u);
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

using testing::returns_quickly;

TEST(Store, DirectoriesAreOwnerOnlyAndBlobsAndManifestsReadOnlyForTheOwner) {
  TempDir dir;
  ::umask(0);  // the modes are pagerfs' choice, not the umask's
  auto store = Store::create(dir / "store");
  ::umask(022);
  ASSERT_TRUE(store) << store.error().message();
  pack(store.value(), testing::random_bytes(100));
  ASSERT_TRUE(store.value().write_image("img", bytes_of(std::string("manifest bytes"))));
  const std::string root = dir / "store";
  for (const auto& [path, mode] : std::vector<std::pair<std::string, mode_t>>{
           {root + "/blobs", 0700}, {root + "/blobs/sha256", 0700}, {root + "/images", 0700},
           {root + "/images/img", 0400}}) {
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 07777, mode) << path;
  }
  EXPECT_TRUE(store.value().loose_directories().empty());

  // An existing store with looser directories is reported, never changed.
  ASSERT_EQ(::chmod((root + "/blobs/sha256").c_str(), 0755), 0);
  ASSERT_EQ(::chmod((root + "/images").c_str(), 0750), 0);
  EXPECT_EQ(store.value().loose_directories(),
            (std::vector<std::string>{root + "/blobs/sha256", root + "/images"}));
  auto again = Store::create(root);
  ASSERT_TRUE(again);
  struct stat st {};
  ASSERT_EQ(::stat((root + "/blobs/sha256").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
}

TEST(Store, AFifoUnderABlobsNameIsRefusedWithoutBlocking) {
  TempDir dir;
  auto store = Store::create(dir / "store").value();
  const auto content = testing::random_bytes(3000, 7);
  const Digest digest = Sha256::of(content);
  const std::string fifo = store.blob_path(digest);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);

  EXPECT_FALSE(returns_quickly(fifo, [&] { return store.has_blob(digest); }));
  auto verified = returns_quickly(fifo, [&] { return verify_blob(fifo, digest); });
  ASSERT_FALSE(verified);
  EXPECT_EQ(verified.error().code(), errc::not_a_regular_file);
  EXPECT_TRUE(is_corruption(verified.error().code())) << "verify reports it as damage";
  EXPECT_NE(verified.error().message().find("'" + fifo + "' is not a regular file (a FIFO)"), std::string::npos)
      << verified.error().message();
  auto listed = store.list_blobs();
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed.value(), std::vector<Digest>{digest}) << "listed: verify and the mount report it";

  // Packing that content replaces the FIFO with the blob.
  auto packed = returns_quickly(fifo, [&] { return pack(store, content); });
  EXPECT_FALSE(packed.already_present);
  EXPECT_TRUE(verify_blob(fifo, digest));
}

TEST(Store, ASymlinkUnderABlobsNameIsRefusedEvenToAGoodBlob) {
  TempDir dir;
  auto store = Store::create(dir / "store").value();
  const auto packed = pack(store, testing::random_bytes(3000, 8));
  const std::string real = store.blob_path(packed.header.digest);
  // The link points at a whole, valid blob file elsewhere.
  const std::string elsewhere = dir / "elsewhere";
  ASSERT_EQ(::rename(real.c_str(), elsewhere.c_str()), 0);
  ASSERT_EQ(::symlink(elsewhere.c_str(), real.c_str()), 0);
  EXPECT_FALSE(store.has_blob(packed.header.digest));
  auto verified = verify_blob(real, packed.header.digest);
  ASSERT_FALSE(verified);
  EXPECT_EQ(verified.error().code(), errc::not_a_regular_file);
  EXPECT_NE(verified.error().message().find("is not a regular file (a symbolic link)"), std::string::npos)
      << verified.error().message();
  EXPECT_TRUE(verify_blob(elsewhere, packed.header.digest)) << "the target itself is good";
  // A path a user names may be a link of theirs.
  EXPECT_TRUE(BlobReader::open(real, Symlinks::follow));
}

TEST(Store, AFifoOrSymlinkAsAManifestIsRefusedWithoutBlocking) {
  TempDir dir;
  auto store = Store::create(dir / "store").value();
  ASSERT_TRUE(store.write_image("good", bytes_of(std::string("x"))));
  const std::string fifo = store.image_path("piped");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  auto loaded = returns_quickly(fifo, [&] { return store.load_image("piped"); });
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code(), errc::not_a_regular_file);
  EXPECT_EQ(loaded.error().message(), "image 'piped': '" + fifo + "' is not a regular file (a FIFO)");
  ASSERT_EQ(::symlink("good", store.image_path("linked").c_str()), 0);
  auto linked = store.load_image("linked");
  ASSERT_FALSE(linked);
  EXPECT_NE(linked.error().message().find("is not a regular file (a symbolic link)"), std::string::npos)
      << linked.error().message();
  auto missing = store.load_image("missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), std::errc::no_such_file_or_directory);
}

TEST(Store, ImageConfigsAreKeptReplacedAndRemoved) {
  TempDir dir;
  auto store = Store::create(dir / "store").value();
  auto missing = store.load_image_config("app");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), std::errc::no_such_file_or_directory);
  const std::string first = R"({"config":{"Cmd":["/bin/sh"]}})";
  ASSERT_TRUE(store.write_image_config("app", bytes_of(first)));
  auto loaded = store.load_image_config("app");
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(loaded.value().data()), loaded.value().size()), first);
  struct stat st {};
  ASSERT_EQ(::stat(store.image_config_path("app").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0400u);
  ASSERT_EQ(::stat(store.configs_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_TRUE(store.write_image_config("app", bytes_of(std::string("{}"))));
  EXPECT_EQ(store.load_image_config("app").value().size(), 2u) << "replaced";
  ASSERT_TRUE(store.remove_image_config("app"));
  EXPECT_FALSE(store.load_image_config("app"));
  EXPECT_TRUE(store.remove_image_config("app")) << "removing a missing config is not an error";
  EXPECT_FALSE(store.write_image_config("../escape", bytes_of(first))) << "image names only";
}

TEST(Store, AnOversizedOrSymlinkedImageConfigIsRefused) {
  TempDir dir;
  auto store = Store::create(dir / "store").value();
  ASSERT_TRUE(store.write_image_config("big", bytes_of(std::string("{}"))));
  ASSERT_EQ(::truncate(store.image_config_path("big").c_str(), static_cast<off_t>(Store::kMaxImageConfigBytes + 1)),
            0);
  auto big = store.load_image_config("big");
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code(), errc::corrupt_blob);
  EXPECT_NE(big.error().message().find("more than"), std::string::npos) << big.error().message();
  const std::string outside = dir / "outside.json";
  ASSERT_EQ(::symlink(outside.c_str(), store.image_config_path("linked").c_str()), 0);
  auto linked = store.load_image_config("linked");
  ASSERT_FALSE(linked);
  EXPECT_EQ(linked.error().code(), errc::not_a_regular_file);
}

TEST(Store, SymlinkedStoreDirectoriesAreRefused) {
  TempDir dir;
  auto store = Store::create(dir / "real").value();
  // The root may be a link (the user's name for the store)...
  ASSERT_EQ(::symlink((dir / "real").c_str(), (dir / "alias").c_str()), 0);
  EXPECT_TRUE(Store::open(dir / "alias"));
  // ...but not the store's own directories.
  ASSERT_EQ(::mkdir((dir / "linked").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((dir / "linked/blobs").c_str(), 0700), 0);
  ASSERT_EQ(::symlink((dir / "real/blobs/sha256").c_str(), (dir / "linked/blobs/sha256").c_str()), 0);
  auto opened = Store::open(dir / "linked");
  ASSERT_FALSE(opened);
  EXPECT_NE(opened.error().message().find("blobs/sha256' is not a directory (a symbolic link)"), std::string::npos)
      << opened.error().message();
  EXPECT_FALSE(Store::create(dir / "linked"));
  ASSERT_EQ(::symlink((dir / "real").c_str(), (dir / "real/images").c_str()), 0);
  auto images = store.list_images();
  ASSERT_FALSE(images);
  EXPECT_NE(images.error().message().find("images' is not a directory (a symbolic link)"), std::string::npos)
      << images.error().message();
}

// open_regular_file(), the one way store and cache files are opened.
TEST(OpenRegularFile, RefusesEveryOtherTypeWithoutBlocking) {
  TempDir dir;
  const std::string fifo = dir / "fifo", link = dir / "link", file = dir / "file", sock = dir / "sock";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  testing::write_file(file, "content");
  ASSERT_EQ(::symlink(file.c_str(), link.c_str()), 0);
  const int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  struct Case {
    std::string path;
    int flags;
    std::string type;
  };
  const std::vector<Case> cases = {
      {fifo, O_RDONLY, "a FIFO"},          {fifo, O_WRONLY, "a FIFO"},
      {fifo, O_RDWR | O_CREAT, "a FIFO"},  {fifo, O_RDWR | O_TRUNC, "a FIFO"},
      {link, O_RDONLY, "a symbolic link"}, {link, O_RDWR | O_CREAT, "a symbolic link"},
      {dir.path(), O_RDONLY, "a directory"}, {dir.path(), O_RDWR, "a directory"},
      {sock, O_RDONLY, "a socket"},        {"/dev/null", O_RDONLY, "a character device"},
      {"/dev/zero", O_RDWR, "a character device"},
  };
  for (const Case& c : cases) {
    auto fd = returns_quickly(fifo, [&] { return open_regular_file(c.path, c.flags); });
    ASSERT_FALSE(fd) << c.path << " flags " << c.flags;
    EXPECT_EQ(fd.error().code(), errc::not_a_regular_file) << fd.error().message();
    EXPECT_EQ(fd.error().message(), "'" + c.path + "' is not a regular file (" + c.type + ")");
  }
  ::close(s);
  auto missing = open_regular_file(dir / "missing", O_RDONLY);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), std::errc::no_such_file_or_directory);

  // A regular file opens, blocking as usual; O_TRUNC truncates it.
  auto fd = open_regular_file(file, O_RDWR | O_TRUNC);
  ASSERT_TRUE(fd) << fd.error().message();
  EXPECT_EQ(::fcntl(fd.value().get(), F_GETFL) & O_NONBLOCK, 0);
  struct stat st {};
  ASSERT_EQ(::fstat(fd.value().get(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_TRUE(open_regular_file(link, O_RDONLY, 0, Symlinks::follow));
  auto opened = open_random_access_file("/dev/zero");
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().message(), "'/dev/zero' is not a regular file (a character device)");
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
