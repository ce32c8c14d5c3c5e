// A path or name in a one-line message: 'like this'.
//
// Names come from hostile input (tar headers, directory entries) and may hold
// any byte but NUL. A newline or a terminal escape in a name must not split
// a message into two lines or rewrite the user's terminal, so control bytes
// (0x00-0x1f, 0x7f) are written as \xNN; a backslash is doubled, so that the
// text of a name that really holds "\x0a" stays distinguishable from a newline.
// Everything else (UTF-8 included) is kept as it is.
#pragma once

#include <string>
#include <string_view>

namespace pagerfs {

// `s` with control bytes as \xNN and '\' as "\\": safe inside one line.
inline std::string escaped(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
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
  return out;
}

inline std::string quoted(std::string_view s) { return '\'' + escaped(s) + '\''; }

}  // namespace pagerfs
