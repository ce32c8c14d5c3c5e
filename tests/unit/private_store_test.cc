// A remote-only mount's private store directory: removed when its daemon
// stops, and, when a daemon was killed and could not, by the next daemon
// that makes one in the same place.
#include "fuse/private_store.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

namespace pagerfs {
namespace {

std::set<std::string> directories_in(const std::string& parent) {
  std::set<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(parent)) {
    if (entry.is_directory()) out.insert(entry.path().filename());
  }
  return out;
}

class PrivateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/pagerfs-private-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    cache_ = dir;
  }
  void TearDown() override { std::filesystem::remove_all(cache_); }
  std::string cache_;
};

TEST_F(PrivateStoreTest, IsRemovedWhenTheDaemonStops) {
  std::string root;
  {
    auto made = PrivateStore::create(cache_);
    ASSERT_TRUE(made) << made.error().message();
    root = made.value()->root();
    EXPECT_TRUE(std::filesystem::is_directory(root + "/blobs/sha256"));
    EXPECT_EQ(made.value()->manifest_cache_dir(), cache_ + "/manifests");
  }
  EXPECT_FALSE(std::filesystem::exists(root));
}

TEST_F(PrivateStoreTest, AKilledDaemonsDirectoryIsRemovedByTheNextOneAndALiveOnesIsNot) {
  auto alive = PrivateStore::create(cache_);
  ASSERT_TRUE(alive) << alive.error().message();
  // A daemon killed while it served: its directory stays, unlocked.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto made = PrivateStore::create(cache_);
    ::_exit(made ? 0 : 1);  // no destructor: as under SIGKILL
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_EQ(status, 0);
  ASSERT_EQ(directories_in(cache_).size(), 2u);
  // A directory being made (not yet marked held) is never taken for abandoned.
  std::filesystem::create_directory(cache_ + "/mount-abcdef");

  auto next = PrivateStore::create(cache_);
  ASSERT_TRUE(next) << next.error().message();
  const std::string alive_name = std::filesystem::path(alive.value()->root()).filename();
  const std::string next_name = std::filesystem::path(next.value()->root()).filename();
  EXPECT_EQ(directories_in(cache_), (std::set<std::string>{alive_name, next_name, "mount-abcdef"}));
}

}  // namespace
}  // namespace pagerfs
