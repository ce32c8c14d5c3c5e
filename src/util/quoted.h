// A path or name in a one-line message: 'like this'.
//
// Names come from hostile input (tar headers, directory entries) and may hold
// any byte but NUL. A newline or a terminal escape in a name must not split
// a message into two lines or rewrite the user's terminal, so control bytes
// (0x00-0x1f, 0x7f) are written as \xNN; a backslash is doubled, so that the
// text of a name that really holds "\x0a" stays distinguishable from a newline.
// Everything else (UTF-8 included) is kept as it is. A name is cut after
// kMaxQuoted bytes ("..."): a hostile one may be megabytes long.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

namespace pagerfs {

inline constexpr size_t kMaxQuoted = 512;

// `s` with control bytes as \xNN and '\' as "\\": safe inside one line.
inline std::string escaped(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(s.size(), kMaxQuoted) + 3);
  for (const char c : s.substr(0, kMaxQuoted)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else if (c == '\\') {
      out += "\\\\";
    } else {
      out += c;
    }
  }
  if (s.size() > kMaxQuoted) out += "...";
  return out;
}

inline std::string quoted(std::string_view s) { return '\'' + escaped(s) + '\''; }

}  // namespace pagerfs
