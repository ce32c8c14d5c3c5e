// Image manifest v1: the tree of one image, over content-addressed blobs.
//
//   STORE/images/<name>   one manifest file per image (written temp + rename)
//
// A manifest lists every entry of the tree (directories, regular files,
// symlinks, hard links, devices, fifos and sockets) with its metadata; a
// regular file names its content by the SHA-256 digest of a blob in the same
// store. Entries are stored in breadth-first order, sorted by (parent, name),
// so the children of a directory are one contiguous, sorted slice: a lookup is
// a binary search and readdir is a slice, with no index to build on load.
//
//   [ header: 64 bytes ][ entries: 64 bytes each ][ digests: 32 bytes each ][ strings ]
//
// All integers are little-endian. Names and link targets are in the string
// table. A manifest is parsed by validating every field (see Manifest::parse);
// a valid manifest can only describe a tree: names are single path
// components, every parent is an earlier directory, and nothing can resolve
// outside the image. man/pagerfs-store.5 is the normative description; this
// file and src/store/image_manifest*.cc implement it (the byte layout in
// image_manifest_layout, the entry rules in image_manifest_rules, encode(),
// parse(), and the lookups and image rules in image_manifest.cc).
//
// Thread safety: Manifest is immutable after parse(); all const methods may be
// called concurrently. Everything else here is a value or a pure function.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace pagerfs::image {

inline constexpr std::array<uint8_t, 8> kMagic = {'P', 'G', 'F', 'S', 'I', 'M', 'A', 'G'};
inline constexpr uint32_t kVersion = 1;
inline constexpr size_t kHeaderSize = 64;
inline constexpr size_t kEntrySize = 64;
inline constexpr size_t kDigestSize = 32;
inline constexpr size_t kMaxNameLength = 255;       // one path component
inline constexpr size_t kMaxSymlinkLength = 4095;   // PATH_MAX - 1
inline constexpr size_t kMaxXattrValue = 65536;     // XATTR_SIZE_MAX
inline constexpr uint64_t kMaxEntries = 0xffffffffu;  // entry indexes are u32
inline constexpr size_t kMaxImageName = 255;
inline constexpr uint64_t kMaxSize = (uint64_t{1} << 63) - 1;  // a size must fit off_t

// Header layout (offsets in bytes):
//    0 magic "PGFSIMAG"       8 u32 version (1)       12 u32 header_size (64)
//   16 u64 entry_count (>= 1) 24 u64 digest_count     32 u64 strings_size (< 2^32)
//   40 u64 body_checksum: XXH3-64 of every byte after the header
//   48 u32 flags (0)          52 u32 reserved (0)     56 u64 XXH3-64 of bytes [0, 56)
// The file is exactly header + entries + digests + strings long.
//
// Entry layout (offsets in bytes):
//    0 u32 parent (entry index; the root's is 0)
//    4 u32 name_offset        8 u16 name_length       10 u8 type    11 u8 reserved (0)
//   12 u32 mode (st_mode: file type bits and permission bits)
//   16 u32 uid               20 u32 gid
//   24 i64 mtime seconds     32 u32 mtime nanoseconds (< 10^9)
//   36 u32 xattrs_size (bytes of xattr records at xattrs_offset; 0: none)
//   40 u64 size: file: content bytes; symlink: target length; directory: the
//                size to report (the source's st_size); others 0
//   48 u64 ref:  file: digest index; symlink: target offset in strings;
//                hardlink: target entry index; special: rdev; directory: 0
//   56 u32 xattrs_offset     60 u32 reserved (0)
// Xattr records: u8 name_length (>= 1), name, u32 value_length, value; sorted
// by name, no duplicates, exactly xattrs_size bytes.
enum class EntryType : uint8_t {
  directory = 1,
  file = 2,
  symlink = 3,
  hardlink = 4,  // another name for an earlier-or-later non-directory entry
  special = 5,   // character or block device, fifo, socket: metadata only
};

struct Xattr {
  std::string name;
  std::string value;
  bool operator==(const Xattr&) const = default;
};

// A file whose content sits inside another blob (a pack).
struct PackedRef {
  Digest blob;          // the pack blob
  uint64_t offset = 0;  // where the content starts in the pack's decoded bytes
  bool operator==(const PackedRef&) const = default;
};

// One blob the manifest names (whole files and packs).
struct BlobRecord {
  Digest digest;
  Digest table_digest;  // format::table_digest of the blob (zero: none recorded)
  uint64_t byte_size = 0;
  bool operator==(const BlobRecord&) const = default;
};

// One entry as a builder describes it: by path, in any order.
struct EntrySpec {
  // Relative to the image root, components separated by '/', no leading or
  // trailing '/', no empty, "." or ".." components. The root is "".
  std::string path;
  EntryType type = EntryType::file;
  uint32_t mode = 0;  // st_mode; a hardlink's is 0 (it has its target's)
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint64_t size = 0;             // file: content bytes; directory: st_size to report
  Digest digest;                 // file: the SHA-256 of its content
  std::optional<PackedRef> packed;  // file: where its content sits in a pack (else a whole blob)
  std::string symlink_target;    // symlink
  std::string hardlink_target;   // hardlink: the path of the entry it names
  uint64_t rdev = 0;             // special
  std::vector<Xattr> xattrs;     // any order; sorted on encode
};

// Validates `entries` and encodes them as a manifest file's bytes. Errors
// (errc::invalid_argument, with the offending path): a missing root, a bad
// path, a duplicate, a missing parent or one that is not a directory, a mode
// whose type bits disagree with the type or that has bits outside 07777, a
// hardlink whose target is missing, a directory or another hardlink, a bad
// symlink target, a bad xattr, too many entries.
Result<std::vector<std::byte>> encode(std::vector<EntrySpec> entries);

// A decoded entry; string views point into the Manifest.
struct Entry {
  uint32_t index = 0;
  uint32_t parent = 0;
  std::string_view name;  // empty for the root
  EntryType type = EntryType::directory;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint64_t size = 0;
  uint64_t ref = 0;  // as in the layout above
  std::string_view xattrs;  // the raw records; see Manifest::xattrs()
};

class Manifest {
 public:
  // Validates every byte: header fields and checksums, exact file length,
  // entry 0 a directory named "" with parent 0; for every other entry, parent
  // < index and a directory, a valid name, (parent, name) strictly increasing;
  // types, modes and refs as in the layout above; the digest table sorted,
  // unique, and each digest used; every offset and length inside the string
  // table; symlink targets 1..4095 bytes without NUL; xattr records well-formed.
  // errc::corrupt_blob for malformed data (the message says which field),
  // errc::unsupported_format for a newer version or unknown flags.
  static Result<Manifest> parse(std::vector<std::byte> bytes);

  uint32_t size() const noexcept { return entry_count_; }  // entries, root included
  Entry entry(uint32_t index) const noexcept;               // index < size()
  std::span<const Digest> digests() const noexcept { return digests_; }
  const Digest& digest_of(const Entry& file) const noexcept { return digests_[file.ref]; }

  // The children of directory `dir`: entries [first, first + count), by name.
  struct Children {
    uint32_t first = 0;
    uint32_t count = 0;
  };
  Children children(uint32_t dir) const noexcept;
  // The child of directory `dir` called `name`, by binary search.
  std::optional<uint32_t> find_child(uint32_t dir, std::string_view name) const noexcept;
  // The entry at `path` ("a/b/c"; the root is ""), by find_child from the
  // root; hard links and symlinks are not followed.
  std::optional<uint32_t> find(std::string_view path) const noexcept;
  // The link count: a directory's is 2 + its subdirectories; a non-directory's
  // is 1 + the hardlinks naming it (a hardlink entry reports its target's).
  uint32_t nlink(uint32_t index) const noexcept;
  // The entry a hardlink names; any other entry resolves to itself.
  uint32_t resolve(uint32_t index) const noexcept;
  std::vector<Xattr> xattrs(const Entry& entry) const;
  // The value of xattr `name`, if the entry has it.
  std::optional<std::string_view> xattr(const Entry& entry, std::string_view name) const;
  // "a/b/c" (the root is ""): for messages and listings.
  std::string path(uint32_t index) const;
  // The symlink target of a symlink entry.
  std::string_view symlink_target(const Entry& symlink) const noexcept;

 private:
  Manifest() = default;
  std::vector<std::byte> bytes_;
  uint32_t entry_count_ = 0;
  std::vector<Digest> digests_;
  std::vector<uint32_t> child_begin_;  // per entry: first child (directories)
  std::vector<uint32_t> child_count_;  // per entry: number of children (directories)
  std::vector<uint32_t> nlink_;        // per entry
};

// Image names: 1..255 bytes of [A-Za-z0-9._-], not starting with '.'.
Result<void> validate_image_name(std::string_view name);

// Checks that `present` holds for every blob image `name` names (each digest
// asked once). The error (ENOENT) names the image, the first file that uses
// a missing blob, and the blob, in one line:
//   image 'NAME': 'PATH': blob sha256:<hex> is missing from the store
Result<void> require_blobs(std::string_view name, const Manifest& manifest,
                           const std::function<bool(const Digest&)>& present);

}  // namespace pagerfs::image
