// Reading a directory tree's shape and metadata for an image manifest.
//
// Thread safety: scan_tree() is a pure function of the file system; it may
// run concurrently with anything.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pagerfs/error.h"
#include "pagerfs/image_manifest.h"

namespace pagerfs {

struct TreeScan {
  // Every entry; regular files have no digest yet.
  std::vector<image::EntrySpec> entries;
  // The regular files (not their extra hard links), to be packed.
  struct File {
    size_t entry = 0;     // index into `entries`
    std::string source;   // path to read the content from
    uint64_t size = 0;    // at scan time
  };
  std::vector<File> files;
};

// Walks `root` without following symlinks and describes every entry: type,
// mode, owner, mtime, size, symlink target, device number and xattrs. Files
// with several links inside the tree become one file and hardlink entries.
// namespace (ACLs) and pagerfs' own user.pagerfs.* are not recorded.
Result<TreeScan> scan_tree(const std::string& root);

}  // namespace pagerfs
