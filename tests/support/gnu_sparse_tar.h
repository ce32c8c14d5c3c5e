// Writing an old-GNU sparse tar member ('S' header) by hand, in tests: the
// sparse map is written as given, so a test can make maps GNU tar never
// would (blocks out of order, past the real size). libarchive's writer
// cannot: it drops map entries it does not like.
//
// Layout (GNU tar's "oldgnu" header): the usual name, mode, ids, size (the
// bytes stored: the sum of the map's lengths), mtime, checksum and type;
// magic "ustar  "; four map entries (12-byte octal offset and length) at
// 386; the real size (the file's) at 483. Only maps of up to four entries,
// no extension blocks.
//
// Thread safety: values and stateless functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace pagerfs::testing {

struct SparseBlock {
  uint64_t offset;
  uint64_t length;
};

namespace gnu_sparse_detail {

inline void put_octal(std::byte* field, size_t width, uint64_t value) {
  // width - 1 digits and a NUL, as tar writes them.
  std::string digits(width - 1, '0');
  for (size_t i = width - 1; i-- > 0 && value != 0; value >>= 3) {
    digits[i] = static_cast<char>('0' + (value & 7));
  }
  if (value != 0) throw std::invalid_argument("octal field overflow");
  std::memcpy(field, digits.data(), digits.size());
}

}  // namespace gnu_sparse_detail

// One sparse file `path` of `real_size` bytes whose `map` blocks hold
// `data` in order, then the end-of-archive blocks.
inline std::vector<std::byte> make_gnu_sparse_tar(const std::string& path, uint64_t real_size,
                                                  const std::vector<SparseBlock>& map,
                                                  const std::string& data) {
  using gnu_sparse_detail::put_octal;
  if (path.size() >= 100 || map.size() > 4) throw std::invalid_argument("not for this helper");
  std::vector<std::byte> out(512);
  std::byte* h = out.data();
  std::memcpy(h, path.data(), path.size());
  put_octal(h + 100, 8, 0644);
  put_octal(h + 108, 8, 0);
  put_octal(h + 116, 8, 0);
  put_octal(h + 124, 12, data.size());
  put_octal(h + 136, 12, 1700000000);
  h[156] = std::byte{'S'};
  std::memcpy(h + 257, "ustar  ", 8);  // with its NUL
  for (size_t i = 0; i < map.size(); ++i) {
    put_octal(h + 386 + i * 24, 12, map[i].offset);
    put_octal(h + 386 + i * 24 + 12, 12, map[i].length);
  }
  put_octal(h + 483, 12, real_size);
  unsigned sum = 0;
  std::memset(h + 148, ' ', 8);
  for (size_t i = 0; i < 512; ++i) sum += static_cast<uint8_t>(h[i]);
  char checksum[8];
  std::snprintf(checksum, sizeof checksum, "%06o", sum);
  std::memcpy(h + 148, checksum, 7);  // six digits, a NUL, and the space already there
  const auto* bytes = reinterpret_cast<const std::byte*>(data.data());
  out.insert(out.end(), bytes, bytes + data.size());
  out.resize((out.size() + 511) / 512 * 512 + 1024);  // padding, then two zero blocks
  return out;
}

}  // namespace pagerfs::testing
