// util/directory.h: the directory walker. Entries without "." and "..", with
// their types; a walk of a descriptor that leaves it to the caller and starts
// from the beginning; errors as Results.
#include "util/directory.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "support/subprocess.h"
#include "util/unique_fd.h"

namespace pagerfs {
namespace {

using testing::TempDir;

// A directory with one entry of each common kind.
void populate(const TempDir& dir) {
  testing::write_file(dir / "file", "x");
  ASSERT_EQ(::mkdir((dir / "sub").c_str(), 0700), 0);
  ASSERT_EQ(::symlink("file", (dir / "link").c_str()), 0);
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
}

std::map<std::string, unsigned char> entries_of(int fd, const std::string& path) {
  std::map<std::string, unsigned char> out;
  auto walked = for_each_entry(fd, path, [&](const DirectoryEntry& e) {
    EXPECT_TRUE(out.emplace(std::string(e.name), e.type).second) << "seen twice: " << e.name;
  });
  EXPECT_TRUE(walked) << walked.error().message();
  return out;
}

TEST(Directory, ListsEveryEntryButDotAndDotDotWithItsType) {
  TempDir dir;
  populate(dir);
  UniqueFd fd(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(fd);
  const auto entries = entries_of(fd.get(), dir.path());
  ASSERT_EQ(entries.size(), 4u);
  // DT_UNKNOWN is allowed by readdir(3); the file systems tests run on say.
  auto type_is = [&](const char* name, unsigned char type) {
    ASSERT_TRUE(entries.contains(name)) << name;
    const unsigned char got = entries.at(name);
    EXPECT_TRUE(got == type || got == DT_UNKNOWN) << name << ": " << int{got};
  };
  type_is("file", DT_REG);
  type_is("sub", DT_DIR);
  type_is("link", DT_LNK);
  type_is("fifo", DT_FIFO);
}

TEST(Directory, AnEmptyDirectoryHasNoEntries) {
  TempDir dir;
  auto names = list_entry_names(dir.path());
  ASSERT_TRUE(names) << names.error().message();
  EXPECT_TRUE(names.value().empty());
}

TEST(Directory, NamesAreSortedBytewise) {
  TempDir dir;
  for (const char* name : {"b", "a", "B", "\xc3\xa9", "a.b", "-"}) testing::write_file(dir / name, "");
  auto names = list_entry_names(dir.path());
  ASSERT_TRUE(names) << names.error().message();
  EXPECT_EQ(names.value(), (std::vector<std::string>{"-", "B", "a", "a.b", "b", "\xc3\xa9"}));
}

TEST(Directory, AWalkLeavesTheDescriptorToTheCallerAndStartsFromTheBeginning) {
  TempDir dir;
  populate(dir);
  UniqueFd fd(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(fd);
  EXPECT_EQ(entries_of(fd.get(), dir.path()).size(), 4u);
  // Walked again (the first walk moved the offset both share), and listed.
  EXPECT_EQ(entries_of(fd.get(), dir.path()).size(), 4u);
  auto names = list_entry_names(fd.get(), dir.path());
  ASSERT_TRUE(names) << names.error().message();
  EXPECT_EQ(names.value(), (std::vector<std::string>{"fifo", "file", "link", "sub"}));
  struct stat st {};
  EXPECT_EQ(::fstat(fd.get(), &st), 0) << "the caller's descriptor was closed";
}

TEST(Directory, AVisitorMayRemoveEntries) {
  TempDir dir;
  for (int i = 0; i < 200; ++i) testing::write_file(dir / std::to_string(i), "");
  int seen = 0;
  auto walked = for_each_entry(dir.path(), [&](const DirectoryEntry& e) {
    ++seen;
    EXPECT_EQ(::unlink((dir / std::string(e.name)).c_str()), 0) << e.name;
  });
  ASSERT_TRUE(walked) << walked.error().message();
  EXPECT_EQ(seen, 200);
  EXPECT_TRUE(list_entry_names(dir.path()).value().empty());
}

TEST(Directory, ErrorsAreResults) {
  TempDir dir;
  populate(dir);
  auto count = [](const std::string& path, Symlinks symlinks = Symlinks::refuse) {
    return for_each_entry(path, [](const DirectoryEntry&) {}, symlinks);
  };
  auto missing = count(dir / "missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), std::errc::no_such_file_or_directory);
  auto file = count(dir / "file");
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error().code(), std::errc::not_a_directory);
  EXPECT_NE(file.error().message().find("is not a directory (a regular file)"), std::string::npos)
      << file.error().message();
  // A FIFO is refused, not opened (which would block).
  EXPECT_FALSE(count(dir / "fifo"));

  ASSERT_EQ(::symlink("sub", (dir / "sub-link").c_str()), 0);
  auto link = count(dir / "sub-link");
  ASSERT_FALSE(link);
  EXPECT_NE(link.error().message().find("(a symbolic link)"), std::string::npos) << link.error().message();
  EXPECT_TRUE(count(dir / "sub-link", Symlinks::follow));

  auto bad_fd = for_each_entry(-1, "nowhere", [](const DirectoryEntry&) {});
  ASSERT_FALSE(bad_fd);
  EXPECT_EQ(bad_fd.error().code(), std::errc::bad_file_descriptor);
  EXPECT_NE(bad_fd.error().message().find("'nowhere'"), std::string::npos) << bad_fd.error().message();
  // A descriptor of a file, not a directory.
  UniqueFd not_dir(::open((dir / "file").c_str(), O_RDONLY | O_CLOEXEC));
  auto on_file = for_each_entry(not_dir.get(), "file", [](const DirectoryEntry&) {});
  ASSERT_FALSE(on_file);
  EXPECT_EQ(on_file.error().code(), std::errc::not_a_directory);
}

}  // namespace
}  // namespace pagerfs
