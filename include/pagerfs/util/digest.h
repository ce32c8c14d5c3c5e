// SHA-256 content digests: the names of blobs.
//
// A blob is named by the SHA-256 of its decompressed content, written as 64
// lowercase hex digits (optionally prefixed with "sha256:", as in OCI content
// stores).
//
// Thread safety: `Digest` is a value. A `Sha256` hasher is used by one thread
// at a time.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "pagerfs/util/error.h"

namespace pagerfs {

class Digest {
 public:
  static constexpr size_t kSize = 32;
  static constexpr size_t kHexSize = 2 * kSize;

  Digest() = default;  // all zero
  explicit Digest(const std::array<uint8_t, kSize>& bytes) : bytes_(bytes) {}

  // Parses 64 hex digits, with or without a leading "sha256:". Upper case is
  // accepted; anything else is errc::invalid_argument.
  static Result<Digest> parse(std::string_view text);
  // True when `name` is exactly 64 lowercase hex digits (a blob file name).
  static bool is_canonical_hex(std::string_view name) noexcept;

  const std::array<uint8_t, kSize>& bytes() const noexcept { return bytes_; }
  std::string hex() const;                              // 64 lowercase hex digits
  std::string str() const { return "sha256:" + hex(); }  // "sha256:<hex>"

  auto operator<=>(const Digest&) const = default;

 private:
  std::array<uint8_t, kSize> bytes_{};
};

// For unordered containers: the digest's first 8 bytes are already uniform.
struct DigestHash {
  size_t operator()(const Digest& d) const noexcept {
    size_t h = 0;
    for (size_t i = 0; i < sizeof h; ++i) h = h << 8 | d.bytes()[i];
    return h;
  }
};

// Streaming SHA-256 (OpenSSL libcrypto underneath).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::span<const std::byte> data);
  // Returns the digest of everything updated so far; the hasher is then reset.
  Digest finish();

  static Digest of(std::span<const std::byte> data);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace pagerfs
