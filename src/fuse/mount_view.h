// The tree a mount shows, and its inode numbers:
//
//   /                              ino 1
//   /blobs                         ino 2
//   /blobs/sha256                  ino 3
//   /images                        ino 4
//   /blobs/sha256/<hex>            2^63 | the digest's first 63 bits
//   /images/<name>/...             (image number + 1) << 32 | entry index
//
// Every entry of an image is an inode of its own (a group of hard links is
// one inode: its first entry's), so tools that compare inode numbers (tar,
// cp -a, rsync -H, find -samefile) see exactly the links the image has, even
// where files share content. Shared content is shared below the kernel: one
// blob on disk, one decoded chunk cache in the pager; the kernel's page cache
// is per inode, so two equal files are cached twice once both are read.
// Blob inodes (/blobs/sha256/<hex>) are derived from the digest: 2^63 | its
// first 63 bits (a collision with another held blob takes the next free
// number). The view knows a blob only while the kernel holds its inode:
// each LOOKUP reply counts one reference (hold_blob), FORGET drops them
// (forget), and the last one dropped forgets the blob, so memory follows
// what the kernel caches, never the size of the store. Nothing of the store
// is listed or read at mount: blobs are found on lookup (see Filesystem),
// images on lookup and in the listing of /images. An image is never removed or changed
// while mounted: its manifest stays mapped, so entry names and
// attributes stay valid for the life of the view.
// A file packed into another blob (a pack) shows in /blobs/sha256 under its
// own content digest too, found through the loaded images' content tables.
//
// Image entries are checked as they are used (image::Manifest): a lookup,
// an attribute or a listing that meets a malformed entry is an error
// (errc::corrupt_blob: EIO), counted by the manifest and reported once per
// image through the error log, if one is set.
//
// Thread safety: all methods may be called concurrently; mu_ guards the
// tables, and an Image, once added, is never moved or changed (a Node's
// pointer to it stays valid without the lock).
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fuse/takeover_journal.h"
#include "pagerfs/store/image_manifest.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "util/mutex.h"

namespace pagerfs {

class MountView {
 public:
  static constexpr fuse_ino_t kRoot = FUSE_ROOT_ID;
  static constexpr fuse_ino_t kBlobsDir = 2;
  static constexpr fuse_ino_t kShaDir = 3;
  static constexpr fuse_ino_t kImagesDir = 4;
  static constexpr fuse_ino_t kBlobBit = fuse_ino_t{1} << 63;  // set in every blob inode

  struct Image {
    std::string name;
    image::Manifest manifest;
    fuse_ino_t base = 0;  // entry e is inode base | e
  };

  // What an inode is.
  struct Node {
    enum class Kind { fixed_dir, blob, image_file, image_entry };
    Kind kind = Kind::fixed_dir;
    Digest digest;                 // blob, image_file: the content digest
    // Where the bytes are: image_file; blob: a packed content's (else the
    // blob itself is read, whole).
    std::optional<image::Content> content;
    const Image* image = nullptr;  // image_file, image_entry
    uint32_t entry = 0;            // image_file, image_entry: the manifest entry
  };

  MountView() = default;

  // Records the inodes handed to the kernel (images' numbers, blobs'
  // digests) in `journal`, for a successor on the same connection. Set
  // before the view is shared; the journal outlives the view.
  void set_journal(TakeoverJournal* journal) noexcept { journal_ = journal; }
  // A successor's view: the images and blob inodes the predecessor handed
  // out (`contents`), before any request is served. An image is restored
  // only if `load` gives a manifest with the checksum the predecessor
  // loaded; otherwise its number stays taken and its inodes are unknown
  // (ENOENT, never another image's entries).
  using ImageLoader = std::function<Result<std::optional<image::Manifest>>(std::string_view name)>;
  struct Restored {
    size_t images = 0;
    size_t stale_images = 0;
    size_t blobs = 0;
  };
  Restored restore(const TakeoverJournal::Contents& contents, const ImageLoader& load);

  // Called (without a lock of the view) with the first malformed entry
  // error of each image.
  using ErrorLog = std::function<void(const Image&, const Error&)>;
  void set_error_log(ErrorLog log) { error_log_ = std::move(log); }

  // ENOENT for an inode the view does not know; errc::corrupt_blob for a
  // malformed entry.
  Result<Node> node(fuse_ino_t ino) const;
  static bool is_fixed_dir(fuse_ino_t ino) noexcept { return ino >= kRoot && ino <= kImagesDir; }
  bool is_dir(fuse_ino_t ino) const;

  // The inode of `name` in directory `parent`, if the view knows it.
  Result<std::optional<fuse_ino_t>> lookup(fuse_ino_t parent, std::string_view name) const;
  // The inode of a path relative to the root ("images/a/bin/sh"); symlinks
  // are not followed.
  Result<std::optional<fuse_ino_t>> resolve(std::string_view path) const;

  // Whether the kernel holds an inode of blob `digest`.
  bool has_blob(const Digest& digest) const;
  // The inode of blob `digest` (one the store has, or a content packed into
  // another blob: `packed`; the caller checked), with one more kernel
  // reference: call once per LOOKUP reply that names it.
  fuse_ino_t hold_blob(const Digest& digest, std::optional<image::Content> packed = std::nullopt);
  // The inode blob `digest` has, or would get if looked up now (readdir's
  // d_ino); takes no reference.
  fuse_ino_t blob_ino(const Digest& digest) const;
  // The kernel dropped `nlookup` references to `ino` (FORGET); a blob inode
  // with none left is forgotten. Other inodes are derived: nothing to do.
  void forget(fuse_ino_t ino, uint64_t nlookup);
  // The number of blob inodes the kernel holds.
  size_t blob_inode_count() const;
  // The inode number derived from a digest (before collisions).
  static fuse_ino_t derived_blob_ino(const Digest& digest) noexcept;
  // A content packed into another blob, named by a loaded image (the first
  // that has it), if any.
  Result<std::optional<image::Content>> find_packed(const Digest& digest) const;
  // The blobs image `name` names (its blob records); ENOENT if the view
  // has no such image.
  Result<std::unordered_set<Digest, DigestHash>> image_blobs(std::string_view name) const;
  // Malformed image entries met so far, over all images.
  uint64_t image_entry_errors() const;
  // Adds an image under /images (a name already there keeps its manifest);
  // returns the inode of its root.
  fuse_ino_t add_image(std::string name, image::Manifest manifest);
  size_t image_count() const;
  uint64_t image_entry_count() const;

  // st_blocks for `bytes` (512-byte units, rounded up, no overflow).
  static constexpr blkcnt_t blocks_of(uint64_t bytes) noexcept {
    return static_cast<blkcnt_t>(bytes / 512 + (bytes % 512 != 0 ? 1 : 0));
  }

  // The attributes of an image's directory, symlink or special file, or of
  // an image file inode (its size is the manifest's).
  Result<struct stat> image_attributes(const Image& image, uint32_t entry, fuse_ino_t ino) const;

  struct Entry {
    std::string name;
    fuse_ino_t ino;
    mode_t type;  // S_IFDIR, S_IFREG, ... (for d_type)
  };
  // Directory entries from position `offset` on (".", ".." first). Of
  // /blobs/sha256 only "." and "..": Filesystem streams the store's
  // directory instead.
  Result<std::vector<Entry>> list(fuse_ino_t dir, size_t offset, size_t max) const;

 private:
  // A blob of /blobs/sha256 that the kernel holds.
  struct BlobNode {
    Digest digest;
    uint64_t lookups = 0;                  // kernel references (LOOKUP replies not yet forgotten)
    std::optional<image::Content> packed;  // a content inside a pack
  };

  Result<fuse_ino_t> parent_of(fuse_ino_t dir) const;
  // The inode of image entry `entry` (a hard link: its target's).
  Result<fuse_ino_t> image_entry_ino(const Image& image, uint32_t entry) const;
  // `error` (of image `image`'s manifest), reported if it is the first.
  Error failed(const Image& image, Error error) const;
  Result<mode_t> type_bits(const Image& image, uint32_t entry) const;
  const Image* image_of(fuse_ino_t ino) const REQUIRES_SHARED(mu_);

  static constexpr uint64_t kInheritedLookups = uint64_t{1} << 62;  // never reaches 0
  static constexpr uint32_t kMaxRestoredImages = 1u << 20;
  ErrorLog error_log_;  // set before the view is shared
  TakeoverJournal* journal_ = nullptr;  // set before the view is shared
  mutable SharedMutex mu_;
  fuse_ino_t free_blob_ino(const Digest& digest) const REQUIRES_SHARED(mu_);

  std::unordered_map<fuse_ino_t, BlobNode> blobs_ GUARDED_BY(mu_);
  std::unordered_map<Digest, fuse_ino_t, DigestHash> blob_inos_ GUARDED_BY(mu_);
  std::deque<std::unique_ptr<Image>> images_ GUARDED_BY(mu_);  // never shrinks; null: a stale number
  std::unordered_map<std::string, size_t> image_index_ GUARDED_BY(mu_);
};

}  // namespace pagerfs
