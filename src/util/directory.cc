#include "util/directory.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "util/quoted.h"
#include "util/safe_open.h"
#include "util/unique_fd.h"

namespace pagerfs {
namespace {

struct DirCloser {
  void operator()(DIR* d) const noexcept { ::closedir(d); }
};
using DirStream = std::unique_ptr<DIR, DirCloser>;


// A stream over `fd`, which it owns from then on (closed with it), from the
// directory's first entry.
Result<DirStream> stream_of(UniqueFd fd, const std::string& path) {
  DIR* d = ::fdopendir(fd.get());
  if (d == nullptr) return Error::from_errno(errno, "open directory " + quoted(path));
  fd.release();
  return DirStream(d);
}

Result<void> walk(DIR* d, const std::string& path, const DirectoryVisitor& visit) {
  for (;;) {
    // readdir() returns nullptr both at the end and on an error; only errno
    // tells them apart, and the visitor may have set it.
    errno = 0;
    const dirent* e = ::readdir(d);
    if (e == nullptr) {
      if (errno != 0) return Error::from_errno(errno, "read directory " + quoted(path));
      return ok();
    }
    const std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    visit(DirectoryEntry{name, e->d_type});
  }
}

Result<std::vector<std::string>> sorted_names(const auto& for_each) {
  std::vector<std::string> names;
  PAGERFS_TRYV(for_each([&](const DirectoryEntry& e) { names.emplace_back(e.name); }));
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

Result<void> for_each_entry(int dirfd, const std::string& path, const DirectoryVisitor& visit) {
  // A file description of its own (not a dup(), which would share the
  // caller's offset): the walk starts at the first entry, and walks of one
  // fd from several threads do not disturb each other.
  UniqueFd copy(::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!copy) return Error::from_errno(errno, "open directory " + quoted(path));
  PAGERFS_TRY(d, stream_of(std::move(copy), path));
  return walk(d.get(), path, visit);
}

Result<void> for_each_entry(const std::string& path, const DirectoryVisitor& visit, Symlinks symlinks) {
  PAGERFS_TRY(fd, open_directory(path, symlinks));
  PAGERFS_TRY(d, stream_of(std::move(fd), path));
  return walk(d.get(), path, visit);
}

Result<std::vector<std::string>> list_entry_names(int dirfd, const std::string& path) {
  return sorted_names([&](const DirectoryVisitor& visit) { return for_each_entry(dirfd, path, visit); });
}

Result<std::vector<std::string>> list_entry_names(const std::string& path, Symlinks symlinks) {
  return sorted_names([&](const DirectoryVisitor& visit) { return for_each_entry(path, visit, symlinks); });
}

}  // namespace pagerfs
