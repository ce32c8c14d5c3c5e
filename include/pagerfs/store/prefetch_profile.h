// Prefetch profiles: which parts of an image's blobs a run read, in the order
// it first read them, so that a later mount can fetch them ahead of the
// reader (REAP: the recorded working set, prefetched). Kept beside the image
// as STORE/profiles/NAME and published with it (pagerfs-store(5)).
//
// The text format, one item per line after a version line:
//
//   pagerfs-profile 1
//   <64 hex digits of the blob> <offset> <length>
//
// offset and length in the blob's decoded bytes, decimal. A profile is only
// ever a hint: it may come from a remote that is not trusted, so parsing is
// bounded (kMaxProfileBytes, kMaxProfileItems) and strict, and the mount
// prefetches only blobs the image itself names (the image anchors them).
//
// Thread safety: free functions and plain values.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace pagerfs::profile {

inline constexpr uint64_t kMaxProfileBytes = 32u << 20;  // kMaxProfileItems of up to ~100 bytes
inline constexpr size_t kMaxProfileItems = 1u << 18;

struct Item {
  Digest blob;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const Item&) const = default;
};

struct Profile {
  std::vector<Item> items;  // in the order a run first read them
  bool operator==(const Profile&) const = default;
};

// errc::corrupt_blob with the line at fault for anything malformed.
Result<Profile> parse(std::span<const std::byte> text);
std::string encode(const Profile& profile);

// The reads of a run (in the order they came, overlapping and repeating) as
// a profile: each byte once, where it was first read, and a read that
// continues the item before it (same blob, contiguous) merged into it.
// Stops at kMaxProfileItems items.
Profile coalesce(const std::vector<Item>& reads);

}  // namespace pagerfs::profile
