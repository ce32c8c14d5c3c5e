#include "pagerfs/format/blob_format.h"

#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstdio>
#include <limits>
#include <string>

#include "util/byte_codec.h"

namespace pagerfs::format {
namespace {

// The header's fields, in order (man/pagerfs-store.5, "Blob header"):
//     0 magic "PGFSBLOB"     8 u16 version         10 u16 header_size
//    12 u32 flags           16 u64 byte_size       24 u32 chunk_size
//    28 u32 codec           32 u64 chunk_count     40 u64 seek_table_offset
//    48 u64 seek_table_checksum                    56 digest (32 bytes)
//    88 reserved (32 zero bytes)                  120 u64 header checksum
// The header checksum is the XXH3-64 of every byte before it.
constexpr size_t kHeaderChecksumOffset = kHeaderSize - 8;
constexpr size_t kReservedHeaderBytes = 32;

Error corrupt(std::string message) { return Error(errc::corrupt_blob, std::move(message)); }

uint64_t header_checksum(std::span<const std::byte> header) noexcept {
  return XXH3_64bits(header.data(), kHeaderChecksumOffset);
}

// The fields of a header as stored, before any is checked.
struct StoredHeader {
  std::array<uint8_t, 8> magic{};
  uint16_t version = 0;
  uint16_t header_size = 0;
  uint32_t codec = 0;
  std::span<const std::byte> reserved;
  uint64_t checksum = 0;
  BlobHeader fields;  // the rest, as read
};

StoredHeader read_header(std::span<const std::byte> bytes) noexcept {
  ByteReader r(bytes.first(kHeaderSize));
  StoredHeader s;
  BlobHeader& h = s.fields;
  s.magic = r.array<8>();
  s.version = r.u16();
  s.header_size = r.u16();
  h.flags = r.u32();
  h.byte_size = r.u64();
  h.chunk_size = r.u32();
  s.codec = r.u32();
  h.chunk_count = r.u64();
  h.seek_table_offset = r.u64();
  h.seek_table_checksum = r.u64();
  h.digest = Digest(r.array<Digest::kSize>());
  s.reserved = r.bytes(kReservedHeaderBytes);
  s.checksum = r.u64();
  assert(r.ok() && r.remaining() == 0);
  return s;
}

}  // namespace

uint32_t BlobHeader::chunk_length(uint64_t index) const noexcept {
  const uint64_t start = index * chunk_size;
  const uint64_t remaining = byte_size - start;
  return remaining < chunk_size ? static_cast<uint32_t>(remaining) : chunk_size;
}

uint64_t chunk_count_for(uint64_t byte_size, uint32_t chunk_size) noexcept {
  return byte_size / chunk_size + (byte_size % chunk_size != 0 ? 1 : 0);
}

bool is_valid_chunk_size(uint64_t chunk_size) noexcept {
  return chunk_size >= kMinChunkSize && chunk_size <= kMaxChunkSize &&
         std::has_single_bit(chunk_size);
}

uint64_t max_compressed_chunk_size(uint32_t chunk_size) noexcept {
  return ZSTD_compressBound(chunk_size);
}

uint64_t chunk_checksum(std::span<const std::byte> data) noexcept {
  return XXH3_64bits(data.data(), data.size());
}

Digest chunk_sha256(std::span<const std::byte> data) { return Sha256::of(data); }

Digest table_digest(const BlobHeader& header, std::span<const std::byte> seek_table_bytes) {
  std::array<std::byte, 8 + 4 + 4 + 8 + Digest::kSize> prefix{};
  ByteWriter w(prefix);
  w.u64(header.byte_size)
      .u32(header.chunk_size)
      .u32(static_cast<uint32_t>(header.codec))
      .u64(header.chunk_count)
      .bytes(header.digest.bytes());
  assert(w.filled());
  Sha256 sha;
  sha.update(prefix);
  sha.update(seek_table_bytes);
  return sha.finish();
}

std::array<std::byte, kHeaderSize> encode_header(const BlobHeader& h) {
  std::array<std::byte, kHeaderSize> out{};
  ByteWriter w(out);
  w.bytes(kMagic)
      .u16(h.version)
      .u16(kHeaderSize)
      .u32(h.flags)
      .u64(h.byte_size)
      .u32(h.chunk_size)
      .u32(static_cast<uint32_t>(h.codec))
      .u64(h.chunk_count)
      .u64(h.seek_table_offset)
      .u64(h.seek_table_checksum)
      .bytes(h.digest.bytes())
      .zeros(kReservedHeaderBytes);
  assert(w.position() == kHeaderChecksumOffset);
  w.u64(header_checksum(out));
  assert(w.filled());
  return out;
}

Result<BlobHeader> decode_header(std::span<const std::byte> bytes, uint64_t file_size) {
  if (bytes.size() < kHeaderSize || file_size < kHeaderSize) {
    return corrupt("truncated header: " + std::to_string(std::min<uint64_t>(bytes.size(), file_size)) +
                   " bytes, a blob header has " + std::to_string(kHeaderSize));
  }
  const StoredHeader s = read_header(bytes);
  if (s.magic != kMagic) return corrupt("not a pagerfs blob (bad magic)");
  // The version is checked before the checksum so that a newer blob is
  // reported as such, not as corruption.
  if (s.version != kVersion1 && s.version != kVersion2) {
    return Error(errc::unsupported_format, "blob format version " + std::to_string(s.version) +
                                               " is not supported (this reader knows versions " +
                                               std::to_string(kVersion1) + " and " +
                                               std::to_string(kVersion2) + ")");
  }
  if (s.checksum != header_checksum(bytes.first(kHeaderSize))) {
    return corrupt("header checksum mismatch");
  }
  if (s.header_size != kHeaderSize) {
    return corrupt("header size " + std::to_string(s.header_size) + " is not " +
                   std::to_string(kHeaderSize));
  }
  BlobHeader h = s.fields;
  h.version = s.version;
  if (h.flags != 0) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%x", h.flags);
    return Error(errc::unsupported_format, std::string("unknown header flags ") + hex);
  }
  if (s.codec != static_cast<uint32_t>(Codec::zstd)) {
    return Error(errc::unsupported_format, "unknown codec " + std::to_string(s.codec));
  }
  h.codec = Codec::zstd;
  if (std::ranges::any_of(s.reserved, [](std::byte b) { return b != std::byte{0}; })) {
    return corrupt("reserved header bytes are not zero");
  }
  if (!is_valid_chunk_size(h.chunk_size)) {
    return corrupt("chunk size " + std::to_string(h.chunk_size) +
                   " is not a power of two from 4 KiB to 4 MiB");
  }
  const uint64_t expected_chunks = chunk_count_for(h.byte_size, h.chunk_size);
  if (h.chunk_count != expected_chunks) {
    return corrupt("chunk count " + std::to_string(h.chunk_count) + " does not match byte size " +
                   std::to_string(h.byte_size) + " (expected " + std::to_string(expected_chunks) +
                   ")");
  }

  // Geometry against the file: frames in [kHeaderSize, seek_table_offset),
  // the table in [seek_table_offset, file_size). Overflow-checked: a huge
  // chunk count cannot wrap the table size.
  if (h.chunk_count > std::numeric_limits<uint64_t>::max() / seek_entry_size(h.version)) {
    return corrupt("chunk count " + std::to_string(h.chunk_count) + " is too large");
  }
  if (h.seek_table_offset < kHeaderSize || h.seek_table_offset > file_size) {
    return corrupt("seek table offset " + std::to_string(h.seek_table_offset) +
                   " is outside the file (" + std::to_string(file_size) + " bytes)");
  }
  if (file_size - h.seek_table_offset != h.seek_table_size()) {
    return corrupt("seek table of " + std::to_string(h.chunk_count) + " entries needs " +
                   std::to_string(h.seek_table_size()) + " bytes at offset " +
                   std::to_string(h.seek_table_offset) + ", the file has " +
                   std::to_string(file_size - h.seek_table_offset) +
                   " (truncated or trailing data)");
  }
  return h;
}

// One seek table entry (seek_entry_size() bytes): u64 frame offset, u32
// compressed size, u32 reserved (0), u64 XXH3-64 of the decompressed chunk;
// v2 then the 32-byte SHA-256 of the decompressed chunk.
void encode_seek_table(uint16_t version, std::span<const ChunkEntry> entries,
                       std::vector<std::byte>* out) {
  out->assign(entries.size() * seek_entry_size(version), std::byte{0});
  ByteWriter w(*out);
  for (const ChunkEntry& e : entries) {
    w.u64(e.offset).u32(e.compressed_size).zeros(4).u64(e.checksum);
    if (version >= kVersion2) w.bytes(e.sha256.bytes());
  }
  assert(w.filled());
}

Result<std::vector<ChunkEntry>> decode_seek_table(const BlobHeader& header,
                                                  std::span<const std::byte> bytes) {
  if (bytes.size() != header.seek_table_size()) {
    return corrupt("seek table is " + std::to_string(bytes.size()) + " bytes, expected " +
                   std::to_string(header.seek_table_size()));
  }
  if (XXH3_64bits(bytes.data(), bytes.size()) != header.seek_table_checksum) {
    return corrupt("seek table checksum mismatch");
  }
  const uint64_t max_frame = max_compressed_chunk_size(header.chunk_size);
  std::vector<ChunkEntry> entries;
  entries.reserve(header.chunk_count);
  uint64_t expected_offset = kHeaderSize;
  ByteReader r(bytes);  // its size was checked: every read below is in bounds
  for (uint64_t i = 0; i < header.chunk_count; ++i) {
    ChunkEntry e;
    e.offset = r.u64();
    e.compressed_size = r.u32();
    const uint32_t reserved = r.u32();
    e.checksum = r.u64();
    if (header.has_chunk_sha256()) e.sha256 = Digest(r.array<Digest::kSize>());
    const std::string where = "chunk " + std::to_string(i) + ": ";
    if (reserved != 0) return corrupt(where + "reserved bytes are not zero");
    if (e.offset != expected_offset) {
      return corrupt(where + "frame offset " + std::to_string(e.offset) + ", expected " +
                     std::to_string(expected_offset) + " (frames must be contiguous)");
    }
    if (e.compressed_size == 0 || e.compressed_size > max_frame) {
      return corrupt(where + "compressed size " + std::to_string(e.compressed_size) +
                     " is outside 1.." + std::to_string(max_frame));
    }
    // expected_offset <= seek_table_offset here, so this cannot overflow.
    if (e.compressed_size > header.seek_table_offset - e.offset) {
      return corrupt(where + "frame runs past the seek table");
    }
    expected_offset = e.offset + e.compressed_size;
    entries.push_back(e);
  }
  if (expected_offset != header.seek_table_offset) {
    return corrupt(std::to_string(header.seek_table_offset - expected_offset) +
                   " stray bytes between the last frame and the seek table");
  }
  return entries;
}

}  // namespace pagerfs::format
