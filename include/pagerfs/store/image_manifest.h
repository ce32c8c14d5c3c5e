// Image manifest v2: the tree of one image, over content-addressed blobs,
// read in place.
//
//   STORE/images/<name>   one manifest file per image (written temp + rename)
//
// A manifest lists every entry of the tree (directories, regular files,
// symlinks, hard links, devices, fifos and sockets) with its metadata; a
// regular file names a content record: its content digest and where its
// bytes are (a whole blob of the store, or a range of a pack blob). Entries
// are stored in breadth-first order, sorted by (parent, name), so the
// children of a directory are one contiguous, sorted slice; each directory
// entry records its slice and each entry its link count, so a lookup is a
// binary search in the file's bytes and nothing is built at load.
//
//   [ header: 128 bytes ][ page table: 8 bytes per body page ]
//   [ body: entries (64 bytes each) | contents (56 each) | blobs (72 each) | strings ]
//
// All integers are little-endian. The header and the page table (XXH3-64 of
// each 64 KiB page of the body) are checked when a manifest is opened: that
// costs O(pages), not O(entries). A body page is checked on its first use,
// and an entry's fields each time it is decoded; a malformed entry is an
// error for the lookup that meets it (errc::corrupt_blob), counted, never a
// crash, a loop, a bad name or an index out of range. verify() checks
// everything eagerly. man/pagerfs-store.5 is the normative description; this
// file and src/store/image_manifest*.cc implement it (the byte layout in
// image_manifest_layout, the entry rules in image_manifest_rules, encode(),
// open() and the v1 reader, and the lookups in image_manifest.cc).
//
// Version 1 manifests (whole files, one digest table, no page table) are read
// whole, checked, and converted in memory to the version 2 bytes.
//
// Thread safety: Manifest is immutable after open() but for the page-check
// bitmap and the error counter, which are atomic; all const methods may be
// called concurrently. Copies share the bytes. Everything else here is a
// value or a pure function.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace pagerfs::image {

inline constexpr std::array<uint8_t, 8> kMagic = {'P', 'G', 'F', 'S', 'I', 'M', 'A', 'G'};
inline constexpr uint32_t kVersion = 2;
inline constexpr size_t kHeaderSize = 128;
inline constexpr uint32_t kPageSize = 64 * 1024;
inline constexpr size_t kEntrySize = 64;
inline constexpr size_t kContentRecordSize = 56;
inline constexpr size_t kBlobRecordSize = 72;
inline constexpr size_t kDigestSize = 32;
inline constexpr size_t kMaxNameLength = 255;       // one path component
inline constexpr size_t kMaxSymlinkLength = 4095;   // PATH_MAX - 1
inline constexpr size_t kMaxXattrValue = 65536;     // XATTR_SIZE_MAX
inline constexpr uint64_t kMaxEntries = 0xffffffffu;  // entry indexes are u32
inline constexpr size_t kMaxImageName = 255;
inline constexpr uint64_t kMaxSize = (uint64_t{1} << 63) - 1;  // a size must fit off_t

// Header layout (offsets in bytes):
//    0 magic "PGFSIMAG"       8 u32 version (2)        12 u32 header_size (128)
//   16 u32 page_size (65536) 20 u32 flags (0)
//   24 u64 entry_count (>= 1, < 2^32)  32 u64 content_count (< 2^32)
//   40 u64 blob_count (< 2^32)         48 u64 strings_size (< 2^32)
//   56 u64 page_count: ceil(body size / page_size)
//   64 u64 page_table_checksum: XXH3-64 of the page table's bytes
//   72 .. 120 reserved (0)    120 u64 XXH3-64 of bytes [0, 120)
// The body is entry_count * 64 + content_count * 56 + blob_count * 72 +
// strings_size bytes; the file is exactly 128 + 8 * page_count + that long.
//
// Entry layout (offsets in bytes, from the entry's start):
//    0 u32 parent (entry index; the root's is 0)
//    4 u32 name_offset        8 u16 name_length       10 u8 type    11 u8 reserved (0)
//   12 u32 mode (st_mode: file type bits and permission bits)
//   16 u32 uid               20 u32 gid
//   24 i64 mtime seconds     32 u32 mtime nanoseconds (< 10^9)
//   36 u32 xattrs_size (bytes of xattr records at xattrs_offset; 0: none)
//   40 u64 size: file: content bytes; symlink: target length; directory: the
//                size to report (the source's st_size); others 0
//   48 u64 ref:  file: content index; symlink: target offset in strings;
//                hardlink: target entry index; special: rdev;
//                directory: first child (low 32 bits) and child count (high
//                32 bits; a directory without children: 0)
//   56 u32 xattrs_offset
//   60 u32 nlink: directory: 2 + subdirectories; file, symlink, special:
//                1 + the hardlinks naming it; hardlink: 0 (it has its target's)
// Content record: 0 content digest (32), 32 u32 blob index, 36 u32 reserved
//   (0), 40 u64 offset in the blob's decoded bytes, 48 u64 length. Sorted by
//   digest, unique, each named by a file (whose size is the length).
//   A whole-file content's blob is its own digest, offset 0, and the blob's
//   byte size is the length.
// Blob record: 0 digest (32), 32 table digest (32; all zero: none recorded,
//   only in manifests converted from version 1), 64 u64 byte_size. Sorted by
//   digest, unique, each named by a content; offset + length <= byte_size.
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

// Validates `entries` and encodes them as a manifest file's bytes. `blobs`
// must hold a record for every blob a file names (its own digest, or its
// pack's); records no file names are dropped, duplicates must be equal.
// Errors (errc::invalid_argument, with the offending path or blob): a missing
// root, a bad path, a duplicate, a missing parent or one that is not a
// directory, a mode whose type bits disagree with the type or that has bits
// outside 07777, a hardlink whose target is missing, a directory or another
// hardlink, a bad symlink target, a bad xattr, too many entries; a blob
// without a record; one content digest with two sizes or two places; a
// content past its blob's byte size; a whole-file blob of another size.
Result<std::vector<std::byte>> encode(std::vector<EntrySpec> entries,
                                      std::vector<BlobRecord> blobs);

// A decoded, checked entry; string views point into the Manifest.
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
  uint64_t ref = 0;         // as in the layout above
  uint32_t nlink = 0;       // as in the layout above (a hardlink's is 0)
  uint32_t first_child = 0;  // directory
  uint32_t child_count = 0;  // directory
  std::string_view xattrs;  // the raw records (checked); see Manifest::xattrs()
};

// Where a file's bytes are.
struct Content {
  Digest digest;          // the file's own content digest
  Digest blob;            // the blob to read: == digest unless packed
  uint64_t offset = 0;    // in the blob's decoded bytes
  uint64_t length = 0;    // the file's size
  Digest table_digest;    // the blob's anchor, for Pager::open (zero: none)
  bool packed() const noexcept { return blob != digest; }
  // The anchor to open the blob with (Pager::open): none if not recorded.
  std::optional<Digest> anchor() const noexcept {
    return table_digest == Digest() ? std::nullopt : std::optional<Digest>(table_digest);
  }
};

class Manifest {
 public:
  // Opens the manifest in `bytes` (held by the Manifest). Version 2: checks
  // the header, the page table and the root entry only; version 1: checks
  // every byte and converts. errc::corrupt_blob for malformed data (the
  // message says which field), errc::unsupported_format for a newer version
  // or unknown flags.
  static Result<Manifest> parse(std::vector<std::byte> bytes);
  // The same over the file `fd` (of `size` bytes), mapped read-only
  // (MAP_PRIVATE) for version 2; a version 1 file is read and converted.
  static Result<Manifest> map(int fd, uint64_t size);

  // Checks everything eagerly: every page, every entry, the order of
  // entries and tables, child slices and link counts, every content and blob
  // record used exactly as the layout says. errc::corrupt_blob.
  Result<void> verify() const;

  uint32_t size() const noexcept { return entry_count_; }  // entries, root included
  // Entry `index`, checked (its page, its fields, its parent's type).
  Result<Entry> entry(uint32_t index) const;
  // The children of directory `dir`: entries [first, first + count), by name.
  struct Children {
    uint32_t first = 0;
    uint32_t count = 0;
  };
  Result<Children> children(uint32_t dir) const;
  // The child of directory `dir` called `name`, by binary search (nullopt:
  // none, or `dir` is not a directory).
  Result<std::optional<uint32_t>> find_child(uint32_t dir, std::string_view name) const;
  // The entry at `path` ("a/b/c"; the root is ""), by find_child from the
  // root; hard links and symlinks are not followed.
  Result<std::optional<uint32_t>> find(std::string_view path) const;
  // The entry a hardlink names; any other entry resolves to itself.
  Result<uint32_t> resolve(uint32_t index) const;
  // Where the bytes of file `file` are.
  Result<Content> content(const Entry& file) const;
  // The content with digest `digest`, by binary search of the content table.
  Result<std::optional<Content>> find_content(const Digest& digest) const;
  uint32_t content_count() const noexcept { return content_count_; }
  uint32_t blob_count() const noexcept { return blob_count_; }
  // Content record `k` and blob record `k`, checked.
  Result<Content> content_at(uint32_t k) const;
  Result<BlobRecord> blob_at(uint32_t k) const;

  std::vector<Xattr> xattrs(const Entry& entry) const;
  // The value of xattr `name`, if the entry has it.
  std::optional<std::string_view> xattr(const Entry& entry, std::string_view name) const;
  // "a/b/c" (the root is ""): for messages and listings. A malformed entry
  // on the way shows as "?" (parents are earlier entries: the walk ends).
  std::string path(uint32_t index) const;
  // The symlink target of a symlink entry.
  std::string_view symlink_target(const Entry& symlink) const noexcept;

  // Malformed entries met by lookups so far (each error counted once per
  // lookup that meets it). The first one per Manifest may be logged by the
  // caller: first_error() is true exactly once.
  uint64_t entry_errors() const noexcept;
  // The header's checksum, which covers the page table and through it every
  // byte: two manifests with the same one are the same manifest (for a
  // process that must know it loaded what another one did; not a defence
  // against forgery).
  uint64_t checksum() const noexcept;
  bool first_error() const noexcept;

 private:
  struct Shared;  // the bytes' owner, the page bitmap, the counters
  Manifest() = default;
  static Result<Manifest> open_v2(std::shared_ptr<Shared> shared, std::span<const std::byte> file);
  Result<void> check_pages(uint64_t offset, uint64_t length) const;
  Result<Entry> decode(uint32_t index) const;
  Error entry_error(uint32_t index, const std::string& what) const;
  std::string_view strings() const noexcept;
  uint64_t entries_offset() const noexcept { return body_offset_; }
  uint64_t contents_offset() const noexcept { return body_offset_ + uint64_t{entry_count_} * kEntrySize; }
  uint64_t blobs_offset() const noexcept {
    return contents_offset() + uint64_t{content_count_} * kContentRecordSize;
  }
  uint64_t strings_offset() const noexcept {
    return blobs_offset() + uint64_t{blob_count_} * kBlobRecordSize;
  }
  Digest read_digest(uint64_t offset) const noexcept;

  std::shared_ptr<Shared> shared_;
  std::span<const std::byte> file_;
  uint64_t body_offset_ = 0;
  uint32_t entry_count_ = 0;
  uint32_t content_count_ = 0;
  uint32_t blob_count_ = 0;
  uint32_t strings_size_ = 0;
  uint64_t page_count_ = 0;
};

// Image names: 1..255 bytes of [A-Za-z0-9._-], not starting with '.'.
Result<void> validate_image_name(std::string_view name);

}  // namespace pagerfs::image
