#include "pagerfs/util/units.h"

#include <cctype>
#include <charconv>
#include <cstdio>
#include <limits>

namespace pagerfs {

Result<uint64_t> parse_size(std::string_view text) {
  auto bad = [&](const char* why) {
    return Error(errc::invalid_argument, "bad size '" + std::string(text) + "': " + why);
  };
  uint64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  const auto [rest, ec] = std::from_chars(begin, end, value);
  if (ec == std::errc::result_out_of_range) return bad("too large");
  if (ec != std::errc() || rest == begin) return bad("expected a number with an optional K/M/G/T suffix");
  std::string_view suffix(rest, static_cast<size_t>(end - rest));
  unsigned shift = 0;
  if (!suffix.empty()) {
    switch (std::tolower(static_cast<unsigned char>(suffix.front()))) {
      case 'k': shift = 10; break;
      case 'm': shift = 20; break;
      case 'g': shift = 30; break;
      case 't': shift = 40; break;
      default: return bad("unknown suffix (use K, M, G or T)");
    }
    suffix.remove_prefix(1);
    if (!(suffix.empty() || suffix == "B" || suffix == "iB" || suffix == "b" || suffix == "ib")) {
      return bad("unknown suffix (use K, M, G or T)");
    }
  }
  if (shift != 0 && value > (std::numeric_limits<uint64_t>::max() >> shift)) return bad("too large");
  return value << shift;
}

std::string format_size(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", value, kUnits[unit]);
  return buf;
}

}  // namespace pagerfs
