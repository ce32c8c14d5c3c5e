// libFuzzer target: the text parsers that see user input on command lines and
// in store directory listings: parse_size, format_size, Digest::parse and
// Digest::is_canonical_hex; and what the control socket reads from a peer
// (requests, answers) and from /proc/self/mountinfo; prefetch profiles, which
// a remote serves. Besides "never crash", it checks round trips:
// a parsed digest prints back to text that parses to the same digest, and a
// plain decimal size parses to itself.
#include <cstddef>
#include <span>
#include <cstdint>
#include <string>
#include <string_view>

#include "pagerfs/control/control.h"
#include "pagerfs/store/prefetch_profile.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/units.h"

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  auto parsed_size = pagerfs::parse_size(text);
  if (parsed_size) {
    (void)pagerfs::format_size(parsed_size.value());
    // Only digits: the value is the number itself, leading zeros aside.
    if (text.find_first_not_of("0123456789") == std::string_view::npos) {
      const size_t first = text.find_first_not_of('0');
      const std::string_view digits =
          first == std::string_view::npos ? text.substr(text.size() - 1) : text.substr(first);
      check(std::to_string(parsed_size.value()) == digits);
    }
  } else {
    (void)parsed_size.error().message();
  }
  if (size >= 8) {
    uint64_t bytes = 0;
    for (size_t i = 0; i < 8; ++i) bytes = (bytes << 8) | data[i];
    check(!pagerfs::format_size(bytes).empty());
  }

  auto digest = pagerfs::Digest::parse(text);
  if (digest) {
    const pagerfs::Digest& d = digest.value();
    check(pagerfs::Digest::is_canonical_hex(d.hex()));
    auto again = pagerfs::Digest::parse(d.str());
    check(again && again.value() == d);
    auto bare = pagerfs::Digest::parse(d.hex());
    check(bare && bare.value() == d);
  } else {
    (void)digest.error().message();
  }
  if (pagerfs::Digest::is_canonical_hex(text)) {
    auto canonical = pagerfs::Digest::parse(text);
    check(canonical && canonical.value().hex() == text);
  }
  // A request that parses encodes back to one that parses the same.
  auto request = pagerfs::control::parse_request(text);
  if (request) {
    auto again = pagerfs::control::parse_request(pagerfs::control::encode_request(request.value()));
    check(again && again.value().command == request.value().command &&
          again.value().items.size() == request.value().items.size() &&
          again.value().image == request.value().image && again.value().save == request.value().save);
    for (size_t i = 0; i < request.value().items.size(); ++i) {
      const auto& a = request.value().items[i];
      const auto& b = again.value().items[i];
      check(a.path == b.path && a.offset == b.offset && a.length == b.length);
    }
  }
  // A profile that parses encodes back to the same text, and coalescing it
  // keeps every item inside what it named.
  auto profile = pagerfs::profile::parse(std::as_bytes(std::span(text.data(), text.size())));
  if (profile) {
    check(pagerfs::profile::encode(profile.value()) == text);
    for (const auto& item : pagerfs::profile::coalesce(profile.value().items).items) check(item.length > 0);
  }
  (void)pagerfs::control::parse_answer(text);
  (void)pagerfs::control::pagerfs_mount_owner(text, "/mnt");
  return 0;
}
