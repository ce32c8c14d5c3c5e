// Blob format v2 (and v1, still read): the on-disk layout of one compressed
// blob file.
//
//   [ header: 128 bytes ][ chunk 0: zstd frame ][ chunk 1 ] ... [ seek table ]
//
// The content is cut into chunks of `chunk_size` bytes (the last may be
// shorter); each chunk is one zstd frame, so any byte range can be read by
// decoding only the chunks it touches. The seek table (one entry per chunk:
// 24 bytes in v1, 56 in v2, which adds the chunk's SHA-256) sits at the end
// so that a blob can be written in one pass from a pipe; the header,
// finalised last, points at it. All integers are little-endian.
//
// The table digest (table_digest()) is the SHA-256 of the header's content
// fields and the seek table: anchored in an image manifest, it makes every
// v2 chunk checkable by SHA-256 against something the user trusts.
// man/pagerfs-store.5 is the normative description; this file and
// blob_format.cc implement it.
//
// Thread safety: everything here is a pure function or a value.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace pagerfs::format {

inline constexpr std::array<uint8_t, 8> kMagic = {'P', 'G', 'F', 'S', 'B', 'L', 'O', 'B'};
inline constexpr uint16_t kVersion1 = 1;  // read only: 24-byte seek entries, XXH3 only
inline constexpr uint16_t kVersion2 = 2;  // adds each chunk's SHA-256 to its seek entry
inline constexpr uint16_t kVersion = kVersion2;  // what the writer writes
inline constexpr size_t kHeaderSize = 128;
inline constexpr size_t kSeekEntrySizeV1 = 24;
inline constexpr size_t kSeekEntrySizeV2 = 56;
// The seek entry size of a known version (kVersion1 or kVersion2).
constexpr size_t seek_entry_size(uint16_t version) noexcept {
  return version == kVersion1 ? kSeekEntrySizeV1 : kSeekEntrySizeV2;
}
inline constexpr uint32_t kMinChunkSize = 4 * 1024;
inline constexpr uint32_t kMaxChunkSize = 4 * 1024 * 1024;
// Chosen by measurement (scripts/bench-format, a 1 GiB tar of /usr/lib): at
// 128 KiB the blob is 6% larger than at 1 MiB (ratio 3.27 vs 3.47) but one
// chunk decodes in ~0.2 ms instead of ~1.8 ms, and it is squashfs' default
// block size, so the two compare like for like.
inline constexpr uint32_t kDefaultChunkSize = 128 * 1024;

enum class Codec : uint32_t { zstd = 1 };

struct BlobHeader {
  uint16_t version = kVersion;     // kVersion1 or kVersion2
  uint64_t byte_size = 0;          // decompressed content size
  uint32_t chunk_size = kDefaultChunkSize;
  Codec codec = Codec::zstd;
  uint32_t flags = 0;              // none defined; readers reject any set bit
  uint64_t chunk_count = 0;        // ceil(byte_size / chunk_size)
  uint64_t seek_table_offset = 0;  // where the seek table starts; it ends at end of file
  uint64_t seek_table_checksum = 0;  // XXH3-64 of the seek table bytes
  Digest digest;                   // SHA-256 of the decompressed content

  uint64_t seek_table_size() const noexcept { return chunk_count * seek_entry_size(version); }
  // True when the seek table carries each chunk's SHA-256.
  bool has_chunk_sha256() const noexcept { return version >= kVersion2; }
  // Decompressed length of chunk `index` (< chunk_count).
  uint32_t chunk_length(uint64_t index) const noexcept;
};

struct ChunkEntry {
  uint64_t offset = 0;           // of the zstd frame in the blob file
  uint32_t compressed_size = 0;  // of the zstd frame
  uint64_t checksum = 0;         // XXH3-64 of the decompressed chunk
  Digest sha256;                 // SHA-256 of the decompressed chunk (v2; zero in v1)
};

// ceil(byte_size / chunk_size), overflow-free. chunk_size must be non-zero.
uint64_t chunk_count_for(uint64_t byte_size, uint32_t chunk_size) noexcept;
bool is_valid_chunk_size(uint64_t chunk_size) noexcept;
// The largest zstd frame a chunk of `chunk_size` bytes may compress to.
uint64_t max_compressed_chunk_size(uint32_t chunk_size) noexcept;
// XXH3-64 of a decompressed chunk (the seek table's checksum).
uint64_t chunk_checksum(std::span<const std::byte> data) noexcept;
// SHA-256 of a decompressed chunk (the v2 seek table's digest).
Digest chunk_sha256(std::span<const std::byte> data);

std::array<std::byte, kHeaderSize> encode_header(const BlobHeader& header);
// Parses and validates a header against the size of the file holding it.
// Every field is checked: magic, version, header checksum, flags, codec,
// chunk geometry, and that the seek table ends exactly at end of file.
Result<BlobHeader> decode_header(std::span<const std::byte> bytes, uint64_t file_size);

// Encodes the seek table in the format of `version` (v1 drops the SHA-256s:
// tests and tools that make v1 blobs).
void encode_seek_table(uint16_t version, std::span<const ChunkEntry> entries,
                       std::vector<std::byte>* out);
// Parses and validates the seek table of a decoded header: its checksum, and
// that the frames are non-empty, bounded, and tile [kHeaderSize,
// seek_table_offset) exactly, in order.
Result<std::vector<ChunkEntry>> decode_seek_table(const BlobHeader& header,
                                                  std::span<const std::byte> bytes);

// The table digest of a blob: SHA-256 over u64 byte_size, u32 chunk_size,
// u32 codec, u64 chunk_count, the 32-byte content digest (integers
// little-endian), then the seek table bytes as stored. Defined for v1 and
// v2; it names everything a reader trusts when it decodes a chunk (for v2,
// every chunk's SHA-256), and nothing that may differ between two good
// copies of the blob (the header's checksums are derived).
Digest table_digest(const BlobHeader& header, std::span<const std::byte> seek_table_bytes);

}  // namespace pagerfs::format
