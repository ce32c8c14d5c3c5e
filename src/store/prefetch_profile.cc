#include "pagerfs/store/prefetch_profile.h"

#include <charconv>
#include <iterator>
#include <map>
#include <string_view>
#include <unordered_map>

namespace pagerfs::profile {
namespace {

constexpr std::string_view kVersionLine = "pagerfs-profile 1";

Error malformed(size_t line, const std::string& why) {
  return Error(errc::corrupt_blob, "prefetch profile, line " + std::to_string(line) + ": " + why);
}

// A decimal number that fills `text` exactly, without leading zeros (one
// spelling per number: a profile is canonical).
bool parse_number(std::string_view text, uint64_t* out) {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

// The parts of [begin, end) that `covered` (begin -> end, disjoint) lacks,
// in order; they are then added to it.
std::vector<std::pair<uint64_t, uint64_t>> take_uncovered(std::map<uint64_t, uint64_t>& covered, uint64_t begin,
                                                          uint64_t end) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  uint64_t at = begin;
  auto it = covered.upper_bound(begin);
  if (it != covered.begin() && std::prev(it)->second > begin) at = std::prev(it)->second;
  for (; at < end; ++it) {
    const uint64_t next = it == covered.end() ? end : std::min(end, it->first);
    if (at < next) out.emplace_back(at, next);
    if (it == covered.end()) break;
    at = std::max(at, it->second);
  }
  // Merge [begin, end) into the covered set.
  uint64_t lo = begin, hi = end;
  auto first = covered.upper_bound(begin);
  if (first != covered.begin() && std::prev(first)->second >= begin) --first;
  auto last = first;
  while (last != covered.end() && last->first <= end) {
    lo = std::min(lo, last->first);
    hi = std::max(hi, last->second);
    ++last;
  }
  covered.erase(first, last);
  covered.emplace(lo, hi);
  return out;
}

}  // namespace

Result<Profile> parse(std::span<const std::byte> bytes) {
  if (bytes.size() > kMaxProfileBytes) {
    return Error(errc::corrupt_blob, "prefetch profile: " + std::to_string(bytes.size()) + " bytes, more than " +
                                         std::to_string(kMaxProfileBytes));
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  Profile profile;
  size_t line_number = 0;
  for (size_t at = 0; at < text.size();) {
    const size_t newline = text.find('\n', at);
    if (newline == std::string_view::npos) return malformed(line_number + 1, "no newline at its end");
    const std::string_view line = text.substr(at, newline - at);
    at = newline + 1;
    ++line_number;
    if (line_number == 1) {
      if (line != kVersionLine) return malformed(1, "not \"" + std::string(kVersionLine) + "\"");
      continue;
    }
    if (profile.items.size() == kMaxProfileItems) {
      return malformed(line_number, "more than " + std::to_string(kMaxProfileItems) + " items");
    }
    const size_t space1 = line.find(' ');
    const size_t space2 = space1 == std::string_view::npos ? space1 : line.find(' ', space1 + 1);
    if (space2 == std::string_view::npos) return malformed(line_number, "not \"HEX OFFSET LENGTH\"");
    const std::string_view hex = line.substr(0, space1);
    Item item;
    if (!Digest::is_canonical_hex(hex)) return malformed(line_number, "not a blob digest (64 lowercase hex digits)");
    item.blob = Digest::parse(hex).value();
    if (!parse_number(line.substr(space1 + 1, space2 - space1 - 1), &item.offset) ||
        !parse_number(line.substr(space2 + 1), &item.length) || item.length == 0 ||
        item.offset > UINT64_MAX - item.length) {
      return malformed(line_number, "the offset and length are not numbers of a byte range");
    }
    profile.items.push_back(item);
  }
  if (line_number == 0) return malformed(1, "empty");
  return profile;
}

std::string encode(const Profile& profile) {
  std::string out = std::string(kVersionLine) + "\n";
  for (const Item& item : profile.items) {
    out += item.blob.hex() + " " + std::to_string(item.offset) + " " + std::to_string(item.length) + "\n";
  }
  return out;
}

Profile coalesce(const std::vector<Item>& reads) {
  Profile profile;
  std::unordered_map<Digest, std::map<uint64_t, uint64_t>, DigestHash> covered;
  for (const Item& read : reads) {
    if (read.length == 0 || read.offset > UINT64_MAX - read.length) continue;
    for (const auto& [begin, end] : take_uncovered(covered[read.blob], read.offset, read.offset + read.length)) {
      if (!profile.items.empty()) {
        Item& last = profile.items.back();
        if (last.blob == read.blob && last.offset + last.length == begin) {
          last.length += end - begin;
          continue;
        }
      }
      if (profile.items.size() == kMaxProfileItems) return profile;
      profile.items.push_back({read.blob, begin, end - begin});
    }
  }
  return profile;
}

}  // namespace pagerfs::profile
