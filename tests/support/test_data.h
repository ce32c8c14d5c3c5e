// Deterministic test content: random (incompressible) and text-like
// (compressible) bytes of any size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace pagerfs::testing {

inline std::vector<std::byte> random_bytes(size_t size, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::vector<std::byte> out(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<std::byte>(rng() >> 56);
  return out;
}

// Repetitive words with some randomness: compresses ~3-5x, like text or code.
inline std::vector<std::byte> compressible_bytes(size_t size, uint64_t seed = 2) {
  static const char* kWords[] = {"page ", "fault ", "chunk ", "zstd ", "blob ", "read-ahead ",
                                 "kernel ", "\n", "0x7f3a ", "mmap "};
  std::mt19937_64 rng(seed);
  std::vector<std::byte> out;
  out.reserve(size);
  while (out.size() < size) {
    const char* w = kWords[rng() % std::size(kWords)];
    for (const char* p = w; *p && out.size() < size; ++p) out.push_back(static_cast<std::byte>(*p));
  }
  return out;
}

// Random bytes as a string (for tests that compare files with strings).
inline std::string random_string(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(size, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

inline std::string to_string(const std::vector<std::byte>& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace pagerfs::testing
