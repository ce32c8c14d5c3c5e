// The fixture of the mount tests (mount_test.cc, mount_failures_test.cc): a
// store of blobs whose sizes are deliberately not page- or chunk-aligned,
// mounted for real through the daemon, and helpers that read a file back by
// read() and by mmap.
#pragma once

#include <fcntl.h>
#include <climits>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/store/store.h"
#include "support/mount_fixture.h"
#include "support/subprocess.h"
#include "support/test_data.h"

namespace pagerfs {

struct PackedBlob {
  std::string hex;
  std::vector<std::byte> content;
};

class MountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::fuse_available()) {
      if (std::getenv("PAGERFS_REQUIRE_FUSE")) FAIL() << "/dev/fuse is required (PAGERFS_REQUIRE_FUSE)";
      GTEST_SKIP() << "no /dev/fuse";
    }
    store_path_ = dir_ / "store";
    auto store = Store::create(store_path_);
    ASSERT_TRUE(store);
    // Sizes that are deliberately not page- or chunk-aligned.
    add(testing::random_bytes(3 * 1024 * 1024 + 4096 - 42, 1), 64 * 1024);
    add(testing::compressible_bytes(5 * 1024 * 1024 + 17, 2), 128 * 1024);
    add(testing::random_bytes(4096 - 42, 3), 4096);
    add(testing::random_bytes(1, 4), 4096);
    add({}, 4096);
  }

  const PackedBlob& add(std::vector<std::byte> content, uint32_t chunk_size) {
    auto input = memory_input_stream(content);
    BlobWriterOptions options;
    options.chunk_size = chunk_size;
    auto packed = Store::open(store_path_).value().pack(*input, options);
    EXPECT_TRUE(packed) << packed.error().message();
    blobs_.push_back({packed.value().header.digest.hex(), std::move(content)});
    return blobs_.back();
  }

  std::unique_ptr<testing::MountedStore> mount(const std::vector<std::string>& options = {}) {
    return std::make_unique<testing::MountedStore>(store_path_, dir_ / "mnt", options);
  }

  std::string store_blob(const std::string& hex) const { return store_path_ + "/blobs/sha256/" + hex; }

  // Flips one byte in the middle of a blob file's first frame (after the header).
  void damage(const std::string& hex, uint64_t at = 128 + 100) {
    const std::string path = store_blob(hex);
    ::chmod(path.c_str(), 0644);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(at));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(static_cast<std::streamoff>(at));
    f.write(&c, 1);
  }

  testing::TempDir dir_;
  std::string store_path_;
  std::vector<PackedBlob> blobs_;
};

inline std::vector<std::byte> read_all(const std::string& path) {
  const std::string s = testing::read_file(path);
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

// A read-only shared mapping of a whole file, unmapped and closed on scope exit.
class Mapping {
 public:
  explicit Mapping(const std::string& path, size_t length = 0, int advice = MADV_NORMAL) {
    fd_ = ::open(path.c_str(), O_RDONLY);
    EXPECT_GE(fd_, 0) << path;
    struct stat st {};
    ::fstat(fd_, &st);
    size_ = length != 0 ? length : static_cast<size_t>(st.st_size);
    void* map = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
    EXPECT_NE(map, MAP_FAILED) << std::strerror(errno);
    data_ = map == MAP_FAILED ? nullptr : static_cast<const std::byte*>(map);
    if (data_ != nullptr) ::madvise(const_cast<std::byte*>(data_), size_, advice);
  }
  ~Mapping() {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  const std::byte* data() const { return data_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  size_t size_ = 0;
  const std::byte* data_ = nullptr;
};

// Maps the file and copies it out page by page through faults.
inline std::vector<std::byte> mmap_all(const std::string& path, int advice = MADV_NORMAL) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0) << path;
  struct stat st {};
  ::fstat(fd, &st);
  std::vector<std::byte> out(static_cast<size_t>(st.st_size));
  if (st.st_size > 0) {
    void* map = ::mmap(nullptr, out.size(), PROT_READ, MAP_SHARED, fd, 0);
    EXPECT_NE(map, MAP_FAILED) << std::strerror(errno);
    ::madvise(map, out.size(), advice);
    std::memcpy(out.data(), map, out.size());
    ::munmap(map, out.size());
  }
  ::close(fd);
  return out;
}

inline nlohmann::json stats_of(const std::string& mnt) {
  const auto r = testing::run({testing::binary_from_env("PAGERFSCTL"), "stats", "--json", mnt});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out);
}


}  // namespace pagerfs
