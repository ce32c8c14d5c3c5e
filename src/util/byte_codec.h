// The little-endian codec of every on-disk structure (blob header and seek
// table, image manifest, cache map): cursors that read or write fixed-width
// fields in the order they are laid out, so that a structure's layout is
// written once, as the sequence of its fields, not as a table of offsets.
//
//   ByteWriter w(out);                     ByteReader r(in);
//   w.bytes(kMagic).u16(kVersion)          const auto magic = r.bytes(8);
//    .u32(flags).zeros(4).u64(size);       const uint16_t version = r.u16(); ...
//                                          if (!r.ok()) return truncated;
//
// Both are bounds-checked and never touch a byte outside their span: a read
// past the end yields zeros (an empty span for bytes()), a write past the end
// writes nothing, and either makes ok() false for good. So a decoder can read
// a whole structure and check once; an encoder asserts once that it filled
// exactly its buffer. load_le()/store_le() are the single-field primitives
// beneath them, for patching one field at a known offset (tests do).
//
// Thread safety: a cursor is a value used by one thread at a time; the
// functions are pure.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>

namespace pagerfs {

// The host's integers are the disk's: loads and stores are plain copies.
static_assert(std::endian::native == std::endian::little,
              "pagerfs stores little-endian integers and runs on little-endian hosts");

template <class T>
inline T load_le(const std::byte* p) noexcept {
  static_assert(std::is_integral_v<T>);
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
inline void store_le(std::byte* p, T v) noexcept {
  static_assert(std::is_integral_v<T>);
  std::memcpy(p, &v, sizeof v);
}

inline uint16_t load_le16(const std::byte* p) noexcept { return load_le<uint16_t>(p); }
inline uint32_t load_le32(const std::byte* p) noexcept { return load_le<uint32_t>(p); }
inline uint64_t load_le64(const std::byte* p) noexcept { return load_le<uint64_t>(p); }
inline void store_le16(std::byte* p, uint16_t v) noexcept { store_le(p, v); }
inline void store_le32(std::byte* p, uint32_t v) noexcept { store_le(p, v); }
inline void store_le64(std::byte* p, uint64_t v) noexcept { store_le(p, v); }

// Reads fields in order from the front of a span.
class ByteReader {
 public:
  explicit ByteReader(std::span<const std::byte> in) noexcept : in_(in) {}

  uint8_t u8() noexcept { return read<uint8_t>(); }
  uint16_t u16() noexcept { return read<uint16_t>(); }
  uint32_t u32() noexcept { return read<uint32_t>(); }
  uint64_t u64() noexcept { return read<uint64_t>(); }
  int64_t i64() noexcept { return static_cast<int64_t>(read<uint64_t>()); }  // two's complement

  // The next `n` bytes, as a view into the input.
  std::span<const std::byte> bytes(size_t n) noexcept {
    if (!take(n)) return {};
    return in_.subspan(pos_ - n, n);
  }
  // The next N bytes, copied (magic numbers, digests); zeros past the end.
  template <size_t N>
  std::array<uint8_t, N> array() noexcept {
    std::array<uint8_t, N> out{};
    if (const std::span<const std::byte> b = bytes(N); b.size() == N) std::memcpy(out.data(), b.data(), N);
    return out;
  }
  std::string_view chars(size_t n) noexcept {
    const std::span<const std::byte> b = bytes(n);
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }
  void skip(size_t n) noexcept { take(n); }

  // False once a read ran past the end (and from then on).
  bool ok() const noexcept { return ok_; }
  size_t position() const noexcept { return pos_; }
  size_t remaining() const noexcept { return in_.size() - pos_; }

 private:
  template <class T>
  T read() noexcept {
    if (!take(sizeof(T))) return 0;
    return load_le<T>(in_.data() + pos_ - sizeof(T));
  }
  bool take(size_t n) noexcept {
    if (!ok_ || n > in_.size() - pos_) {
      ok_ = false;
      return false;
    }
    pos_ += n;
    return true;
  }

  std::span<const std::byte> in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// Writes fields in order from the front of a span; each call returns the
// writer, so a structure is one chain in layout order.
class ByteWriter {
 public:
  explicit ByteWriter(std::span<std::byte> out) noexcept : out_(out) {}

  ByteWriter& u8(uint8_t v) noexcept { return write(v); }
  ByteWriter& u16(uint16_t v) noexcept { return write(v); }
  ByteWriter& u32(uint32_t v) noexcept { return write(v); }
  ByteWriter& u64(uint64_t v) noexcept { return write(v); }
  ByteWriter& i64(int64_t v) noexcept { return write(static_cast<uint64_t>(v)); }

  ByteWriter& bytes(std::span<const std::byte> b) noexcept {
    if (std::byte* p = take(b.size()); p != nullptr && !b.empty()) std::memcpy(p, b.data(), b.size());
    return *this;
  }
  ByteWriter& bytes(std::span<const uint8_t> b) noexcept { return bytes(std::as_bytes(b)); }
  ByteWriter& chars(std::string_view s) noexcept {
    return bytes(std::as_bytes(std::span(s.data(), s.size())));
  }
  // Reserved fields: `n` zero bytes.
  ByteWriter& zeros(size_t n) noexcept {
    if (std::byte* p = take(n); p != nullptr && n != 0) std::memset(p, 0, n);
    return *this;
  }

  // False once a write did not fit (and from then on).
  bool ok() const noexcept { return ok_; }
  size_t position() const noexcept { return pos_; }
  size_t remaining() const noexcept { return out_.size() - pos_; }
  // Whether every byte of the span was written, and nothing more was tried.
  bool filled() const noexcept { return ok_ && pos_ == out_.size(); }

 private:
  template <class T>
  ByteWriter& write(T v) noexcept {
    if (std::byte* p = take(sizeof v)) store_le(p, v);
    return *this;
  }
  std::byte* take(size_t n) noexcept {
    if (!ok_ || n > out_.size() - pos_) {
      ok_ = false;
      return nullptr;
    }
    pos_ += n;
    return out_.data() + pos_ - n;
  }

  std::span<std::byte> out_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace pagerfs
