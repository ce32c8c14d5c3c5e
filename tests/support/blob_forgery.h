// Forging blob files the way an untrusted store could: seek table fields
// rewritten and every XXH3 checksum (seek table, header) recomputed, so that
// only the SHA-256 checks stand between the forgery and a reader.
#pragma once

#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "pagerfs/format/blob_format.h"
#include "pagerfs/util/digest.h"
#include "util/byte_codec.h"

namespace pagerfs::testing {

// Offsets in the header (man/pagerfs-store.5).
inline constexpr size_t kHeaderVersionOffset = 8;
inline constexpr size_t kHeaderTableOffset = 40;
inline constexpr size_t kHeaderTableChecksumOffset = 48;
inline constexpr size_t kHeaderChecksumOffset = 120;

inline uint64_t seek_table_offset(const std::vector<std::byte>& blob) {
  return load_le64(blob.data() + kHeaderTableOffset);
}

// Recomputes the seek table's and the header's XXH3 checksums.
inline void reseal(std::vector<std::byte>& blob) {
  const uint64_t table = seek_table_offset(blob);
  store_le64(blob.data() + kHeaderTableChecksumOffset, XXH3_64bits(blob.data() + table, blob.size() - table));
  store_le64(blob.data() + kHeaderChecksumOffset, XXH3_64bits(blob.data(), kHeaderChecksumOffset));
}

// Where seek entry `index` of a v2 blob starts, and its fields.
inline size_t v2_entry(const std::vector<std::byte>& blob, uint64_t index) {
  return seek_table_offset(blob) + format::kSeekEntrySizeV2 * index;
}
inline constexpr size_t kEntryChecksumOffset = 16;
inline constexpr size_t kEntrySha256Offset = 24;

// Chunk `index` of a v2 blob now claims SHA-256 `sha` (its XXH3 still
// matches its bytes): what a store that lies about one chunk serves.
inline void forge_chunk_sha256(std::vector<std::byte>& blob, uint64_t index, const Digest& sha) {
  const size_t at = v2_entry(blob, index) + kEntrySha256Offset;
  for (size_t i = 0; i < Digest::kSize; ++i) blob[at + i] = static_cast<std::byte>(sha.bytes()[i]);
  reseal(blob);
}

// The header now claims content digest `digest`.
inline void forge_header_digest(std::vector<std::byte>& blob, const Digest& digest) {
  constexpr size_t kHeaderDigestOffset = 56;
  for (size_t i = 0; i < Digest::kSize; ++i) blob[kHeaderDigestOffset + i] = static_cast<std::byte>(digest.bytes()[i]);
  reseal(blob);
}

}  // namespace pagerfs::testing
