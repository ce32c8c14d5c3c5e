#include "pagerfs/util/digest.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace pagerfs {
namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Result<Digest> Digest::parse(std::string_view text) {
  std::string_view hex = text;
  if (hex.starts_with("sha256:")) hex.remove_prefix(7);
  if (hex.size() != kHexSize) {
    return Error(errc::invalid_argument,
                 "bad digest '" + std::string(text) + "': expected 64 hex digits");
  }
  std::array<uint8_t, kSize> bytes{};
  for (size_t i = 0; i < kSize; ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return Error(errc::invalid_argument,
                   "bad digest '" + std::string(text) + "': not a hex digit");
    }
    bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return Digest(bytes);
}

bool Digest::is_canonical_hex(std::string_view name) noexcept {
  if (name.size() != kHexSize) return false;
  for (char c : name) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string Digest::hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(kHexSize, '0');
  for (size_t i = 0; i < kSize; ++i) {
    out[2 * i] = kDigits[bytes_[i] >> 4];
    out[2 * i + 1] = kDigits[bytes_[i] & 0xf];
  }
  return out;
}

struct Sha256::State {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : state_(std::make_unique<State>()) {
  state_->ctx = EVP_MD_CTX_new();
  // Allocation failure of a 200-byte context is not recoverable here.
  if (state_->ctx == nullptr || EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr) != 1) {
    throw std::bad_alloc();
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(state_->ctx); }

void Sha256::update(std::span<const std::byte> data) {
  EVP_DigestUpdate(state_->ctx, data.data(), data.size());
}

Digest Sha256::finish() {
  std::array<uint8_t, Digest::kSize> out{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(state_->ctx, out.data(), &len);
  EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr);
  return Digest(out);
}

Digest Sha256::of(std::span<const std::byte> data) {
  Sha256 h;
  h.update(data);
  return h.finish();
}

}  // namespace pagerfs
