// The bytes of an image manifest (version 2): its header, its entries, content
// and blob records and its xattr
// records as they are stored, and the codec between them and these structs.
// The layout is the one pagerfs/store/image_manifest.h documents (and
// man/pagerfs-store.5 specifies); the fields below are in its order, and the
// codec (util/byte_codec.h cursors, here and in image_manifest_layout.cc)
// writes and reads them in that order.
//
// Nothing here checks a value: the encoder (image_manifest_encode.cc) writes
// only what the rules allow, and the parser (image_manifest_parse.cc) checks
// every field it reads.
//
// Thread safety: values and pure functions.
#pragma once

#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/store/image_manifest.h"
#include "util/byte_codec.h"

namespace pagerfs::image {

// The header as stored (kHeaderSize bytes).
struct StoredHeader {
  std::array<uint8_t, 8> magic = kMagic;
  uint32_t version = kVersion;
  uint32_t header_size = kHeaderSize;
  uint32_t page_size = kPageSize;
  uint32_t flags = 0;
  uint64_t entry_count = 0;
  uint64_t content_count = 0;
  uint64_t blob_count = 0;
  uint64_t strings_size = 0;
  uint64_t page_count = 0;
  uint64_t page_table_checksum = 0;  // XXH3-64 of the page table
  std::array<uint8_t, 48> reserved{};
  uint64_t header_checksum = 0;  // XXH3-64 of the header's bytes before it
};
inline constexpr size_t kHeaderChecksumOffset = kHeaderSize - 8;

// Writes `header` into the first kHeaderSize bytes of `manifest`, with its
// header_checksum computed (the one given is ignored).
void write_header(const StoredHeader& header, std::span<std::byte> manifest) noexcept;
// The header in the first kHeaderSize bytes of `manifest` (which has them).
StoredHeader read_header(std::span<const std::byte> manifest) noexcept;
// What header_checksum must be for the header at the start of `manifest`.
uint64_t header_checksum(std::span<const std::byte> manifest) noexcept;

// The body's size for these counts (each < 2^32: no overflow).
inline uint64_t body_size(uint64_t entries, uint64_t contents, uint64_t blobs, uint64_t strings) noexcept {
  return entries * kEntrySize + contents * kContentRecordSize + blobs * kBlobRecordSize + strings;
}
inline uint64_t pages_for(uint64_t body) noexcept { return (body + kPageSize - 1) / kPageSize; }

// One entry as stored (kEntrySize bytes); see Entry for the meaning. The
// version 1 entry has the same layout with nlink reserved (0).
struct StoredEntry {
  uint32_t parent = 0;
  uint32_t name_offset = 0;
  uint16_t name_length = 0;
  uint8_t type = 0;
  uint8_t reserved8 = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint32_t xattrs_size = 0;
  uint64_t size = 0;
  uint64_t ref = 0;
  uint32_t xattrs_offset = 0;
  uint32_t nlink = 0;
};

// Entry `index` of the entry table at `table` in `manifest` (whose length
// holds it: callers check that before they read). Inline: every lookup reads
// entries.
inline void write_entry(const StoredEntry& e, std::span<std::byte> manifest, uint64_t table,
                        uint32_t index) noexcept {
  ByteWriter w(manifest.subspan(table + uint64_t{index} * kEntrySize, kEntrySize));
  w.u32(e.parent)
      .u32(e.name_offset)
      .u16(e.name_length)
      .u8(e.type)
      .u8(e.reserved8)
      .u32(e.mode)
      .u32(e.uid)
      .u32(e.gid)
      .i64(e.mtime_sec)
      .u32(e.mtime_nsec)
      .u32(e.xattrs_size)
      .u64(e.size)
      .u64(e.ref)
      .u32(e.xattrs_offset)
      .u32(e.nlink);
  assert(w.filled());
}

inline StoredEntry read_entry(std::span<const std::byte> manifest, uint64_t table,
                              uint32_t index) noexcept {
  ByteReader r(manifest.subspan(table + uint64_t{index} * kEntrySize, kEntrySize));
  StoredEntry e;
  e.parent = r.u32();
  e.name_offset = r.u32();
  e.name_length = r.u16();
  e.type = r.u8();
  e.reserved8 = r.u8();
  e.mode = r.u32();
  e.uid = r.u32();
  e.gid = r.u32();
  e.mtime_sec = r.i64();
  e.mtime_nsec = r.u32();
  e.xattrs_size = r.u32();
  e.size = r.u64();
  e.ref = r.u64();
  e.xattrs_offset = r.u32();
  e.nlink = r.u32();
  assert(r.ok() && r.remaining() == 0);
  return e;
}

// A content record as stored (kContentRecordSize bytes).
struct StoredContent {
  Digest digest;
  uint32_t blob = 0;
  uint32_t reserved = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};
void write_content(const StoredContent& c, std::span<std::byte> at) noexcept;
StoredContent read_content(std::span<const std::byte> at) noexcept;

// A blob record as stored (kBlobRecordSize bytes).
void write_blob_record(const BlobRecord& b, std::span<std::byte> at) noexcept;
BlobRecord read_blob_record(std::span<const std::byte> at) noexcept;

// One xattr record: u8 name_length, name, u32 value_length, value.
struct XattrRecord {
  std::string_view name;
  std::string_view value;
  size_t length = 0;  // of the whole record
};

// The record at the start of `records`, read as far as `records` goes.
struct XattrRecordRead {
  XattrRecord record;      // meaningful only if `complete`
  size_t name_length = 0;  // as stored, even if the name is cut short
  bool complete = false;   // the whole record is inside `records`
};
XattrRecordRead read_xattr_record(std::string_view records) noexcept;
// Appends the record of `xattr` (whose name is at most 255 bytes).
void append_xattr_record(std::string& records, const Xattr& xattr);

// Why `records` are not a valid xattr list (sorted, unique, well-formed,
// exactly filling it), or an empty string.
std::string check_records(std::string_view records);

// A version 1 manifest, checked whole (every field, as version 1 specified)
// and described for encode(): image_manifest_parse.cc.
struct V1Tree {
  std::vector<EntrySpec> entries;
  std::vector<BlobRecord> blobs;
};
Result<V1Tree> parse_v1(std::span<const std::byte> bytes);

}  // namespace pagerfs::image
