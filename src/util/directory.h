// Listing a directory: the one walker every reader of a store, a cache or a
// tree to pack uses. Its entries come without "." and "..", each with its
// name and the d_type readdir(3) gives (DT_UNKNOWN where the file system does
// not say: callers that need the type for sure lstat the entry).
//
// A directory may change while it is listed: an entry added or removed
// meanwhile may or may not be seen (readdir(3)); none is seen twice. A
// visitor may remove entries of the directory it is visiting.
//
// Thread safety: stateless; safe from any thread. A walk reads its own
// stream, so two walks of the same directory fd may run at once.
#pragma once

#include <dirent.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/util/error.h"
#include "pagerfs/util/file.h"

namespace pagerfs {

struct DirectoryEntry {
  std::string_view name;            // valid during the visit only
  unsigned char type = DT_UNKNOWN;  // DT_REG, DT_DIR, DT_LNK, ... (see readdir(3))
};
using DirectoryVisitor = std::function<void(const DirectoryEntry&)>;

// Calls `visit` for every entry of the directory open as `dirfd`, in the
// order readdir returns them, from the start. `dirfd` stays the caller's
// (the walk reads a descriptor of its own, opened from it). `path` names the directory in errors:
// "read directory '<path>': <strerror>".
Result<void> for_each_entry(int dirfd, const std::string& path, const DirectoryVisitor& visit);
// The same for the directory at `path`, opened as open_directory() does
// (util/safe_open.h): a symbolic link is refused unless `symlinks` is
// `follow`, and its errors are open_directory()'s (ENOENT for a missing one).
Result<void> for_each_entry(const std::string& path, const DirectoryVisitor& visit,
                            Symlinks symlinks = Symlinks::refuse);

// The entries' names, sorted bytewise (a deterministic order).
Result<std::vector<std::string>> list_entry_names(int dirfd, const std::string& path);
Result<std::vector<std::string>> list_entry_names(const std::string& path, Symlinks symlinks = Symlinks::refuse);

}  // namespace pagerfs
