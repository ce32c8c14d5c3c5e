// Nothing proportional to the store at mount, and memory that follows what
// the kernel holds: blobs are found on lookup, blobs/sha256 is streamed from
// the store's directory, blob inodes are forgotten when the kernel drops
// them (and come back with the same number), images load on first use.
#include <dirent.h>

#include <map>

#include "integration/mount_store_fixture.h"

namespace pagerfs {
namespace {

using testing::MountedStore;

class LazyTest : public MountTest {
 protected:
  // `n` small blobs more, packed directly through the library (fast).
  void add_many(int n) {
    auto store = Store::open(store_path_).value();
    for (int i = 0; i < n; ++i) {
      const std::string text = "blob number " + std::to_string(i);
      auto input = memory_input_stream(bytes_of(text));
      auto packed = store.pack(*input, {});
      ASSERT_TRUE(packed) << packed.error().message();
      many_.push_back(packed.value().header.digest.hex());
    }
  }
  std::vector<std::string> many_;
};

struct stat stat_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st;
}

// Waits up to 10 s for `done(stats)`.
template <class Done>
nlohmann::json wait_stats(const std::string& mnt, Done done) {
  nlohmann::json s = stats_of(mnt);
  for (int i = 0; i < 100 && !done(s); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    s = stats_of(mnt);
  }
  return s;
}

// 3000 blobs listed through many readdir replies: each name exactly once,
// names that are not blobs left out, and every d_ino the inode stat gives.
TEST_F(LazyTest, ThousandsOfBlobsAreListedOnceEachThroughManyRepliesWithTheirInodes) {
  add_many(3000);
  testing::write_file(store_path_ + "/blobs/sha256/.tmp-not-a-blob", "x");
  testing::write_file(store_path_ + "/blobs/sha256/README", "x");
  auto m = mount();
  std::map<std::string, ino_t> listed;
  int dots = 0;
  DIR* dir = ::opendir((m->path() + "/blobs/sha256").c_str());
  ASSERT_NE(dir, nullptr);
  while (const dirent* d = ::readdir(dir)) {
    const std::string name = d->d_name;
    if (name == "." || name == "..") {
      ++dots;
      continue;
    }
    EXPECT_TRUE(listed.emplace(name, d->d_ino).second) << name << " listed twice";
    EXPECT_EQ(d->d_type, DT_REG) << name;
  }
  ::closedir(dir);
  EXPECT_EQ(dots, 2);
  EXPECT_EQ(listed.size(), many_.size() + blobs_.size());
  for (const std::string& hex : many_) EXPECT_TRUE(listed.contains(hex)) << hex;
  const nlohmann::json s = stats_of(m->path());
  EXPECT_GT(s["fuse"]["readdir"]["calls"].get<uint64_t>() + s["fuse"]["readdirplus"]["calls"].get<uint64_t>(), 2u)
      << "one reply (32 KiB, glibc's getdents buffer) cannot hold 3000 names";
  // d_ino is what stat says, for every blob (and the lookups agree).
  for (const auto& [name, ino] : listed) {
    ASSERT_EQ(stat_of(m->blob(name)).st_ino, ino) << name;
  }
  EXPECT_EQ(stat_of(m->blob(many_[0])).st_size, static_cast<off_t>(std::string("blob number 0").size()));
  EXPECT_EQ(testing::read_file(m->blob(many_[7])), "blob number 7");
}

// Reading a directory with a seek back (telldir/seekdir through the mount)
// resumes at the same entry.
TEST_F(LazyTest, AListingResumesWhereItWasLeft) {
  add_many(500);
  auto m = mount();
  DIR* dir = ::opendir((m->path() + "/blobs/sha256").c_str());
  ASSERT_NE(dir, nullptr);
  for (int i = 0; i < 250; ++i) ASSERT_NE(::readdir(dir), nullptr);
  const long at = ::telldir(dir);
  std::vector<std::string> first;
  while (const dirent* d = ::readdir(dir)) first.emplace_back(d->d_name);
  ::seekdir(dir, at);
  std::vector<std::string> again;
  while (const dirent* d = ::readdir(dir)) again.emplace_back(d->d_name);
  ::closedir(dir);
  EXPECT_FALSE(first.empty());
  EXPECT_EQ(first, again);
}

// The kernel drops the inodes (drop_caches): FORGET releases them in the
// daemon, and a new lookup gives the same inode number.
TEST_F(LazyTest, BlobInodesAreForgottenWhenTheKernelDropsThemAndComeBackTheSame) {
  if (::geteuid() != 0) GTEST_SKIP() << "drop_caches needs root";
  add_many(50);
  auto m = mount();
  std::map<std::string, ino_t> inos;
  for (const std::string& hex : many_) inos[hex] = stat_of(m->blob(hex)).st_ino;
  EXPECT_GE(stats_of(m->path())["blob_inodes"].get<uint64_t>(), many_.size());
  const auto drop = [] {
    ::sync();
    std::ofstream("/proc/sys/vm/drop_caches") << "2";
  };
  drop();
  const nlohmann::json s = wait_stats(m->path(), [&](const nlohmann::json& s) {
    if (s["blob_inodes"].get<uint64_t>() == 0) return true;
    drop();
    return false;
  });
  EXPECT_EQ(s["blob_inodes"].get<uint64_t>(), 0u);
  EXPECT_GT(s["fuse"]["forget"]["calls"].get<uint64_t>(), 0u);
  for (const auto& [hex, ino] : inos) EXPECT_EQ(stat_of(m->blob(hex)).st_ino, ino) << hex;
  EXPECT_GE(stats_of(m->path())["blob_inodes"].get<uint64_t>(), many_.size());
}

// Mounting reads nothing of the store: no blob header, no layer read, no
// image manifest, however many blobs and images there are; a lookup reads
// the one blob's header, an image loads when it is looked up.
TEST_F(LazyTest, MountingReadsNoBlobAndNoImage) {
  add_many(2000);
  const std::string tree = dir_ / "tree";
  std::filesystem::create_directories(tree + "/d");
  testing::write_file(tree + "/d/f", "file content");
  const auto packed = testing::run({testing::binary_from_env("PAGERFSCTL"), "pack", "-s", store_path_, "--image",
                                    "img", tree});
  ASSERT_EQ(packed.exit_code, 0) << packed.err;
  auto m = mount();
  nlohmann::json s = stats_of(m->path());
  EXPECT_EQ(s["blob_header_reads"], 0u);
  EXPECT_EQ(s["blob_inodes"], 0u);
  EXPECT_EQ(s["images"], 0u);
  for (const auto& layer : s["layers"]) EXPECT_EQ(layer["reads"], 0u) << layer.dump();
  stat_of(m->blob(many_[1]));
  s = stats_of(m->path());
  EXPECT_EQ(s["blob_header_reads"], 1u);
  EXPECT_EQ(s["images"], 0u);
  EXPECT_EQ(testing::read_file(m->path() + "/images/img/d/f"), "file content");
  EXPECT_EQ(stats_of(m->path())["images"], 1u);
}

}  // namespace
}  // namespace pagerfs
