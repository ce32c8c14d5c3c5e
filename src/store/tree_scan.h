// Reading a directory tree's shape and metadata for an image manifest, and
// opening its files again, safely, to pack them.
//
// The tree may change while it is packed (and may belong to someone else):
// the scan walks it with directory fds, never follows a symlink, and checks
// that each directory it enters is the one its parent listed; a file is later
// opened beneath the scanned root without following symlinks and refused
// unless it is the regular file (device, inode) the scan saw. So a file
// swapped for a symlink, a FIFO or another file between the scan and the pack
// makes the pack fail; it never packs another file's content.
//
// Thread safety: scan_tree() may run concurrently with anything. A TreeScan
// is a value; open_scanned_file() may be called from several threads at once
// on the same TreeScan (it only reads it).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "pagerfs/util/error.h"
#include "pagerfs/store/image_manifest.h"
#include "util/unique_fd.h"

namespace pagerfs {

struct TreeScan {
  std::string root;  // the directory as given, for messages
  UniqueFd root_fd;  // that directory, as scanned: files are opened beneath it
  // Every entry; regular files have no digest and no xattrs yet (both are read
  // when the file is packed, from the fd its content is read from).
  std::vector<image::EntrySpec> entries;
  // The regular files (not their extra hard links), to be packed.
  struct File {
    size_t entry = 0;     // index into `entries`
    std::string rel;      // relative to the root
    std::string source;   // root + "/" + rel, for messages
    uint64_t size = 0;    // at scan time
    dev_t dev = 0;        // the file the scan saw
    ino_t ino = 0;
  };
  std::vector<File> files;
};

// Walks `root` without following symlinks and describes every entry: type,
// mode, owner, mtime, size, symlink target, device number and the xattrs of
// everything but regular files. Files with several links inside the tree
// become one file (the first met: the walk is depth first, in name order)
// and hardlink entries. xattrs of the system.* namespace (ACLs) and pagerfs'
// own user.pagerfs.* are not recorded. Errors name the entry; one
// that changed while it was walked says "changed during pack".
Result<TreeScan> scan_tree(const std::string& root);

// Opens `file` for reading (O_RDONLY | O_NOFOLLOW, beneath scan.root_fd with
// no symlink followed) and checks it is still the regular file the scan saw;
// otherwise fails with "'<source>' changed during pack: ...". A FIFO put in
// its place does not block the open.
Result<UniqueFd> open_scanned_file(const TreeScan& scan, const TreeScan::File& file);

// The xattrs of the open file `fd` that an image records (see scan_tree);
// `path` names it in errors.
Result<std::vector<image::Xattr>> read_fd_xattrs(int fd, const std::string& path);

}  // namespace pagerfs
