// The tree a mount shows, and its inode numbers:
//
//   /                              ino 1
//   /blobs                         ino 2
//   /blobs/sha256                  ino 3
//   /images                        ino 4
//   /blobs/sha256/<hex>            a file inode (below 2^32)
//   /images/<name>/...             directories, symlinks, special files:
//                                  (image number + 1) << 32 | entry index;
//                                  regular files: a file inode
//
// File inodes are numbered from 5 as they are first looked up, and are
// shared: every image file with the same content *and* the same attributes
// (mode, owner, mtime, link count, xattrs) is one inode, so one page cache,
// across all images. An inode has one set of attributes, so files that differ
// in any of them cannot share one; a group of hard links is one inode of its
// own. /blobs/sha256/<hex> shows a blob with the store's attributes (0444),
// which is one inode per digest.
//
// Blobs packed into the store after mounting appear on lookup, and images on
// lookup and in the listing of /images (see Filesystem). An image is never removed or changed
// while mounted: its manifest stays in memory, so entry names and
// attributes stay valid for the life of the view.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <deque>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pagerfs/digest.h"
#include "pagerfs/image_manifest.h"

namespace pagerfs {

class MountView {
 public:
  static constexpr fuse_ino_t kRoot = FUSE_ROOT_ID;
  static constexpr fuse_ino_t kBlobsDir = 2;
  static constexpr fuse_ino_t kShaDir = 3;
  static constexpr fuse_ino_t kImagesDir = 4;
  static constexpr fuse_ino_t kFirstFile = 5;

  struct Image {
    std::string name;
    image::Manifest manifest;
    fuse_ino_t base = 0;  // entry e is inode base | e
  };

  // What an inode is.
  struct Node {
    enum class Kind { fixed_dir, blob, image_file, image_entry };
    Kind kind = Kind::fixed_dir;
    Digest digest;                 // blob, image_file
    const Image* image = nullptr;  // image_file (the entry that made the inode), image_entry
    uint32_t entry = 0;            // image_file, image_entry: the manifest entry
  };

  explicit MountView(std::vector<Digest> blobs);

  std::optional<Node> node(fuse_ino_t ino) const;
  static bool is_fixed_dir(fuse_ino_t ino) noexcept { return ino >= kRoot && ino <= kImagesDir; }
  bool is_dir(fuse_ino_t ino) const;

  // The inode of `name` in directory `parent`, if the view knows it. May
  // number a file inode (hence not const).
  std::optional<fuse_ino_t> lookup(fuse_ino_t parent, std::string_view name);
  // The inode of a path relative to the root ("images/a/bin/sh"); symlinks
  // are not followed.
  std::optional<fuse_ino_t> resolve(std::string_view path);

  // Adds a blob found in the store after mounting; returns its inode.
  fuse_ino_t add_blob(const Digest& digest);
  // Adds an image under /images (a name already there keeps its manifest);
  // returns the inode of its root.
  fuse_ino_t add_image(std::string name, image::Manifest manifest);
  size_t blob_count() const;
  size_t image_count() const;
  uint64_t image_entry_count() const;

  // The attributes of an image's directory, symlink or special file, or of
  // an image file inode (its size is the manifest's).
  static struct stat image_attributes(const Image& image, uint32_t entry, fuse_ino_t ino);

  struct Entry {
    std::string name;
    fuse_ino_t ino;
    mode_t type;  // S_IFDIR, S_IFREG, ... (for d_type)
  };
  // Directory entries from position `offset` on (".", ".." first).
  std::vector<Entry> list(fuse_ino_t dir, size_t offset, size_t max);

 private:
  // What makes image files one inode: equal content and equal attributes.
  struct FileKey {
    Digest digest;
    uint32_t mode, uid, gid, mtime_nsec, nlink;
    int64_t mtime_sec;
    std::string_view xattrs;  // points into a manifest, which outlives the view's use
    fuse_ino_t link_group;    // the hard link group (base | entry), or 0
    bool operator==(const FileKey&) const = default;
  };
  struct FileKeyHash {
    size_t operator()(const FileKey& k) const noexcept;
  };
  struct FileNode {
    Digest digest;
    const Image* image = nullptr;  // nullptr: a blob
    uint32_t entry = 0;
  };

  fuse_ino_t parent_of(fuse_ino_t dir) const;
  // The inode of image entry `entry` (resolving hard links); numbers a file
  // inode if needed. Caller holds no lock.
  fuse_ino_t image_entry_ino(const Image& image, uint32_t entry);
  const Image* image_of(fuse_ino_t ino) const;  // caller holds mu_
  fuse_ino_t add_file(FileNode node);           // caller holds mu_ exclusively

  mutable std::shared_mutex mu_;
  std::vector<FileNode> files_;                                     // guarded by mu_; ino - kFirstFile
  std::vector<fuse_ino_t> blob_list_;                              // guarded by mu_; /blobs/sha256 in order
  std::unordered_map<Digest, fuse_ino_t, DigestHash> blob_inos_;   // guarded by mu_
  std::unordered_map<FileKey, fuse_ino_t, FileKeyHash> file_inos_;  // guarded by mu_
  std::deque<std::unique_ptr<Image>> images_;                       // guarded by mu_; never shrinks
  std::unordered_map<std::string, size_t> image_index_;             // guarded by mu_
};

}  // namespace pagerfs
