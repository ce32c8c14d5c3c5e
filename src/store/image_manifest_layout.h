// The bytes of an image manifest: its header, its entries and its xattr
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

#include "pagerfs/store/image_manifest.h"
#include "util/byte_codec.h"

namespace pagerfs::image {

// The header as stored (kHeaderSize bytes).
struct StoredHeader {
  std::array<uint8_t, 8> magic = kMagic;
  uint32_t version = kVersion;
  uint32_t header_size = kHeaderSize;
  uint64_t entry_count = 0;
  uint64_t digest_count = 0;
  uint64_t strings_size = 0;
  uint64_t body_checksum = 0;  // XXH3-64 of every byte after the header
  uint32_t flags = 0;
  uint32_t reserved = 0;
  uint64_t header_checksum = 0;  // XXH3-64 of the header's bytes before it
};

// Writes `header` into the first kHeaderSize bytes of `manifest`, with its
// header_checksum computed (the one given is ignored).
void write_header(const StoredHeader& header, std::span<std::byte> manifest) noexcept;
// The header in the first kHeaderSize bytes of `manifest` (which has them).
StoredHeader read_header(std::span<const std::byte> manifest) noexcept;
// What header_checksum must be for the header at the start of `manifest`.
uint64_t header_checksum(std::span<const std::byte> manifest) noexcept;

// One entry as stored (kEntrySize bytes); see Entry for the meaning.
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
  uint32_t reserved32 = 0;
};

// Entry `index`, written into or read from a manifest whose length holds
// it (the parser checks that before it reads any). Inline: every lookup
// reads entries.
inline void write_entry(const StoredEntry& e, std::span<std::byte> manifest, uint32_t index) noexcept {
  ByteWriter w(manifest.subspan(kHeaderSize + uint64_t{index} * kEntrySize, kEntrySize));
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
      .u32(e.reserved32);
  assert(w.filled());
}

inline StoredEntry read_entry(std::span<const std::byte> manifest, uint32_t index) noexcept {
  ByteReader r(manifest.subspan(kHeaderSize + uint64_t{index} * kEntrySize, kEntrySize));
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
  e.reserved32 = r.u32();
  assert(r.ok() && r.remaining() == 0);
  return e;
}

// Where the tables start, for a manifest of `entry_count` entries and
// `digest_count` digests.
inline uint64_t digest_table_offset(uint64_t entry_count) noexcept {
  return kHeaderSize + entry_count * kEntrySize;
}
inline uint64_t string_table_offset(uint64_t entry_count, uint64_t digest_count) noexcept {
  return digest_table_offset(entry_count) + digest_count * kDigestSize;
}

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

}  // namespace pagerfs::image
