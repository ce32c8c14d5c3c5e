// Little-endian loads and stores on unaligned bytes (the on-disk byte order).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace pagerfs {

static_assert(std::endian::native == std::endian::little,
              "pagerfs stores little-endian integers and runs on little-endian hosts");

template <class T>
inline T load_le(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
inline void store_le(std::byte* p, T v) noexcept {
  std::memcpy(p, &v, sizeof v);
}

inline uint16_t load_le16(const std::byte* p) noexcept { return load_le<uint16_t>(p); }
inline uint32_t load_le32(const std::byte* p) noexcept { return load_le<uint32_t>(p); }
inline uint64_t load_le64(const std::byte* p) noexcept { return load_le<uint64_t>(p); }
inline void store_le16(std::byte* p, uint16_t v) noexcept { store_le(p, v); }
inline void store_le32(std::byte* p, uint32_t v) noexcept { store_le(p, v); }
inline void store_le64(std::byte* p, uint64_t v) noexcept { store_le(p, v); }

}  // namespace pagerfs
