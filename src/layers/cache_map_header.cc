#include "layers/cache_map_header.h"

#include <xxhash.h>

#include <cassert>

#include "util/byte_codec.h"

namespace pagerfs {
namespace {

constexpr std::array<uint8_t, 8> kMapMagic = {'P', 'G', 'F', 'S', 'C', 'M', 'A', 'P'};
constexpr uint32_t kMapVersion = 1;
// Fields: magic, u32 version, u32 sector_size, u64 blob_size, 32 reserved
// bytes (zero; not checked on read), u64 XXH3-64 of everything before it.
constexpr size_t kReservedBytes = 32;
constexpr size_t kChecksumOffset = kMapHeaderSize - 8;

uint64_t header_checksum(std::span<const std::byte> header) noexcept {
  return XXH3_64bits(header.data(), kChecksumOffset);
}

}  // namespace

std::array<std::byte, kMapHeaderSize> encode_map_header(const MapHeader& header) noexcept {
  std::array<std::byte, kMapHeaderSize> out{};
  ByteWriter w(out);
  w.bytes(kMapMagic).u32(kMapVersion).u32(header.sector_size).u64(header.blob_size).zeros(kReservedBytes);
  assert(w.position() == kChecksumOffset);
  w.u64(header_checksum(out));
  assert(w.filled());
  return out;
}

Result<MapHeader> decode_map_header(std::span<const std::byte> bytes, uint32_t sector_size) {
  if (bytes.size() != kMapHeaderSize) return Error(errc::corrupt_blob, "bad map header");
  ByteReader r(bytes);
  const auto magic = r.array<8>();
  const uint32_t version = r.u32();
  MapHeader h;
  h.sector_size = r.u32();
  h.blob_size = r.u64();
  r.skip(kReservedBytes);
  const uint64_t checksum = r.u64();
  assert(r.ok() && r.remaining() == 0);
  if (magic != kMapMagic || version != kMapVersion || checksum != header_checksum(bytes)) {
    return Error(errc::corrupt_blob, "bad map header");
  }
  if (h.sector_size != sector_size) return Error(errc::corrupt_blob, "map of another sector size");
  return h;
}

}  // namespace pagerfs
