#include "pagerfs/format/blob_format.h"

#include <xxhash.h>
#include <zstd.h>

#include <bit>
#include <cstring>
#include <limits>
#include <string>

#include "util/endian.h"

namespace pagerfs::format {
namespace {

// Byte offsets of the header fields (see man/pagerfs-store.5).
constexpr size_t kOffMagic = 0;
constexpr size_t kOffVersion = 8;
constexpr size_t kOffHeaderSize = 10;
constexpr size_t kOffFlags = 12;
constexpr size_t kOffByteSize = 16;
constexpr size_t kOffChunkSize = 24;
constexpr size_t kOffCodec = 28;
constexpr size_t kOffChunkCount = 32;
constexpr size_t kOffSeekTableOffset = 40;
constexpr size_t kOffSeekTableChecksum = 48;
constexpr size_t kOffDigest = 56;
constexpr size_t kOffReserved = 88;
constexpr size_t kOffHeaderChecksum = 120;
static_assert(kOffHeaderChecksum + 8 == kHeaderSize);

// Byte offsets inside one seek table entry.
constexpr size_t kEntryOffOffset = 0;
constexpr size_t kEntryOffSize = 8;
constexpr size_t kEntryOffReserved = 12;
constexpr size_t kEntryOffChecksum = 16;
static_assert(kEntryOffChecksum + 8 == kSeekEntrySize);

Error corrupt(std::string message) { return Error(errc::corrupt_blob, std::move(message)); }

uint64_t header_checksum(std::span<const std::byte> header) noexcept {
  return XXH3_64bits(header.data(), kOffHeaderChecksum);
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

std::array<std::byte, kHeaderSize> encode_header(const BlobHeader& h) {
  std::array<std::byte, kHeaderSize> out{};
  std::memcpy(out.data() + kOffMagic, kMagic.data(), kMagic.size());
  store_le16(out.data() + kOffVersion, kVersion);
  store_le16(out.data() + kOffHeaderSize, kHeaderSize);
  store_le32(out.data() + kOffFlags, h.flags);
  store_le64(out.data() + kOffByteSize, h.byte_size);
  store_le32(out.data() + kOffChunkSize, h.chunk_size);
  store_le32(out.data() + kOffCodec, static_cast<uint32_t>(h.codec));
  store_le64(out.data() + kOffChunkCount, h.chunk_count);
  store_le64(out.data() + kOffSeekTableOffset, h.seek_table_offset);
  store_le64(out.data() + kOffSeekTableChecksum, h.seek_table_checksum);
  std::memcpy(out.data() + kOffDigest, h.digest.bytes().data(), Digest::kSize);
  store_le64(out.data() + kOffHeaderChecksum, header_checksum(out));
  return out;
}

Result<BlobHeader> decode_header(std::span<const std::byte> bytes, uint64_t file_size) {
  if (bytes.size() < kHeaderSize || file_size < kHeaderSize) {
    return corrupt("truncated header: " + std::to_string(std::min<uint64_t>(bytes.size(), file_size)) +
                   " bytes, a blob header has " + std::to_string(kHeaderSize));
  }
  const std::byte* p = bytes.data();
  if (std::memcmp(p + kOffMagic, kMagic.data(), kMagic.size()) != 0) {
    return corrupt("not a pagerfs blob (bad magic)");
  }
  // The version is checked before the checksum so that a newer blob is
  // reported as such, not as corruption.
  const uint16_t version = load_le16(p + kOffVersion);
  if (version != kVersion) {
    return Error(errc::unsupported_format, "blob format version " + std::to_string(version) +
                                               " is not supported (this reader knows version " +
                                               std::to_string(kVersion) + ")");
  }
  if (load_le64(p + kOffHeaderChecksum) != header_checksum(bytes.first(kHeaderSize))) {
    return corrupt("header checksum mismatch");
  }
  const uint16_t header_size = load_le16(p + kOffHeaderSize);
  if (header_size != kHeaderSize) {
    return corrupt("header size " + std::to_string(header_size) + " is not " +
                   std::to_string(kHeaderSize));
  }
  BlobHeader h;
  h.flags = load_le32(p + kOffFlags);
  if (h.flags != 0) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%x", h.flags);
    return Error(errc::unsupported_format, std::string("unknown header flags ") + hex);
  }
  const uint32_t codec = load_le32(p + kOffCodec);
  if (codec != static_cast<uint32_t>(Codec::zstd)) {
    return Error(errc::unsupported_format, "unknown codec " + std::to_string(codec));
  }
  h.codec = Codec::zstd;
  for (size_t i = kOffReserved; i < kOffHeaderChecksum; ++i) {
    if (p[i] != std::byte{0}) return corrupt("reserved header bytes are not zero");
  }
  h.byte_size = load_le64(p + kOffByteSize);
  h.chunk_size = load_le32(p + kOffChunkSize);
  if (!is_valid_chunk_size(h.chunk_size)) {
    return corrupt("chunk size " + std::to_string(h.chunk_size) +
                   " is not a power of two from 4 KiB to 4 MiB");
  }
  h.chunk_count = load_le64(p + kOffChunkCount);
  const uint64_t expected_chunks = chunk_count_for(h.byte_size, h.chunk_size);
  if (h.chunk_count != expected_chunks) {
    return corrupt("chunk count " + std::to_string(h.chunk_count) + " does not match byte size " +
                   std::to_string(h.byte_size) + " (expected " + std::to_string(expected_chunks) +
                   ")");
  }
  h.seek_table_offset = load_le64(p + kOffSeekTableOffset);
  h.seek_table_checksum = load_le64(p + kOffSeekTableChecksum);
  std::array<uint8_t, Digest::kSize> digest{};
  std::memcpy(digest.data(), p + kOffDigest, Digest::kSize);
  h.digest = Digest(digest);

  // Geometry against the file: frames in [kHeaderSize, seek_table_offset),
  // the table in [seek_table_offset, file_size). Overflow-checked: a huge
  // chunk count cannot wrap the table size.
  if (h.chunk_count > std::numeric_limits<uint64_t>::max() / kSeekEntrySize) {
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

void encode_seek_table(std::span<const ChunkEntry> entries, std::vector<std::byte>* out) {
  out->assign(entries.size() * kSeekEntrySize, std::byte{0});
  std::byte* p = out->data();
  for (const ChunkEntry& e : entries) {
    store_le64(p + kEntryOffOffset, e.offset);
    store_le32(p + kEntryOffSize, e.compressed_size);
    store_le32(p + kEntryOffReserved, 0);
    store_le64(p + kEntryOffChecksum, e.checksum);
    p += kSeekEntrySize;
  }
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
  for (uint64_t i = 0; i < header.chunk_count; ++i) {
    const std::byte* p = bytes.data() + i * kSeekEntrySize;
    ChunkEntry e;
    e.offset = load_le64(p + kEntryOffOffset);
    e.compressed_size = load_le32(p + kEntryOffSize);
    e.checksum = load_le64(p + kEntryOffChecksum);
    const std::string where = "chunk " + std::to_string(i) + ": ";
    if (load_le32(p + kEntryOffReserved) != 0) return corrupt(where + "reserved bytes are not zero");
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
