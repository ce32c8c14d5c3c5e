// The tree a mount shows, and its inode numbers:
//
//   /                       ino 1
//   /blobs                  ino 2
//   /blobs/sha256           ino 3
//   /blobs/sha256/<hex>     ino 4, 5, ...: one per blob, stable while mounted
//
// Blobs packed into the store after mounting appear on lookup (and then in
// readdir): the store is re-checked for a name the view does not know.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <fuse_lowlevel.h>

#include <optional>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pagerfs/digest.h"

namespace pagerfs {

class MountView {
 public:
  static constexpr fuse_ino_t kRoot = FUSE_ROOT_ID;
  static constexpr fuse_ino_t kBlobsDir = 2;
  static constexpr fuse_ino_t kShaDir = 3;
  static constexpr fuse_ino_t kFirstBlob = 4;

  explicit MountView(std::vector<Digest> digests);

  static bool is_dir(fuse_ino_t ino) noexcept { return ino >= kRoot && ino <= kShaDir; }
  // The directory's parent (the root is its own parent).
  static fuse_ino_t parent_of(fuse_ino_t dir) noexcept { return dir == kRoot ? kRoot : dir - 1; }

  // The inode of `name` in directory `parent` if the view knows it.
  std::optional<fuse_ino_t> lookup(fuse_ino_t parent, std::string_view name) const;
  // Adds a blob found in the store after mounting; returns its inode.
  fuse_ino_t add(const Digest& digest);
  std::optional<Digest> digest_of(fuse_ino_t ino) const;
  size_t blob_count() const;

  struct Entry {
    std::string name;
    fuse_ino_t ino;
    bool is_dir;
  };
  // Directory entries from position `offset` on (".", ".." first).
  std::vector<Entry> list(fuse_ino_t dir, size_t offset, size_t max) const;

 private:
  mutable std::shared_mutex mu_;
  std::vector<Digest> digests_;                             // guarded by mu_; ino - kFirstBlob
  std::unordered_map<Digest, fuse_ino_t, DigestHash> inos_;  // guarded by mu_
};

}  // namespace pagerfs
