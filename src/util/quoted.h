// A path or name in a one-line message: 'like this'.
#pragma once

#include <string>
#include <string_view>

namespace pagerfs {

inline std::string quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '\'';
  out += s;
  out += '\'';
  return out;
}

}  // namespace pagerfs
