// The header of a cache map file, DIR/blobs/<hex>.map (man/pagerfs-store.5,
// CACHE DIRECTORY): which blob file the map describes, and at what sector
// size. The map's entries, one u64 per sector, follow it; the cache layer
// reads and writes them in bulk as host integers, which are little-endian
// (util/byte_codec.h asserts it).
//
// Thread safety: pure functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "pagerfs/util/error.h"

namespace pagerfs {

inline constexpr size_t kMapHeaderSize = 64;

struct MapHeader {
  uint32_t sector_size = 0;
  uint64_t blob_size = 0;  // of the blob file, not of its content
};

std::array<std::byte, kMapHeaderSize> encode_map_header(const MapHeader& header) noexcept;

// The header in `bytes` (what was read of the file's first kMapHeaderSize
// bytes), if it is one of this version for `sector_size`: errc::corrupt_blob
// "bad map header" for a short read or a wrong magic, version or checksum,
// "map of another sector size" for another sector size.
Result<MapHeader> decode_map_header(std::span<const std::byte> bytes, uint32_t sector_size);

}  // namespace pagerfs
