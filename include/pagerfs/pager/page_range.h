// Pure range arithmetic of the pager: alignment, the read-ahead window and
// the chunks a byte range touches.
//
// Precondition: byte_size <= kMaxByteSize (2^63; no file can be larger, and
// the pager rejects larger blobs). Guarantees, for every offset and length
// (up to 2^64 - 1):
//   * nothing overflows: sums that would wrap are clamped, never wrapped;
//   * a window never extends past the page-aligned size of the blob, and
//     never starts after it;
//   * chunk spans never name a chunk at or past chunk_count.
// Alignments must be powers of two (page, chunk and read-ahead sizes are).
//
// Thread safety: pure functions.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

namespace pagerfs::range {

inline constexpr uint64_t kPageSize = 4096;
inline constexpr uint64_t kMaxByteSize = uint64_t{1} << 63;

struct ByteRange {
  uint64_t begin = 0;
  uint64_t end = 0;  // exclusive; begin <= end
  constexpr bool empty() const noexcept { return begin >= end; }
  constexpr uint64_t size() const noexcept { return empty() ? 0 : end - begin; }
  bool operator==(const ByteRange&) const = default;
};

struct ChunkSpan {
  uint64_t first = 0;
  uint64_t end = 0;  // exclusive
  constexpr bool empty() const noexcept { return first >= end; }
  constexpr uint64_t count() const noexcept { return empty() ? 0 : end - first; }
  bool operator==(const ChunkSpan&) const = default;
};

constexpr uint64_t round_down(uint64_t x, uint64_t align) noexcept { return x & ~(align - 1); }

// Rounds up; values in the last partial block of the 64-bit space (where the
// true result would be 2^64) saturate to the largest aligned value.
constexpr uint64_t round_up(uint64_t x, uint64_t align) noexcept {
  const uint64_t down = round_down(x, align);
  if (down == x) return x;
  return down > std::numeric_limits<uint64_t>::max() - align ? down : down + align;
}

// x + y, clamped at 2^64 - 1.
constexpr uint64_t saturating_add(uint64_t x, uint64_t y) noexcept {
  return x > std::numeric_limits<uint64_t>::max() - y ? std::numeric_limits<uint64_t>::max() : x + y;
}

// byte_size rounded up to whole pages: where zero padding ends.
constexpr uint64_t page_aligned_size(uint64_t byte_size) noexcept { return round_up(byte_size, kPageSize); }

// The part of a request [offset, offset + length) the pager answers: clamped
// to the page-aligned size (empty at or past it).
constexpr ByteRange requested_range(uint64_t offset, uint64_t length, uint64_t byte_size) noexcept {
  const uint64_t limit = page_aligned_size(byte_size);
  if (offset >= limit) return {limit, limit};
  return {offset, std::min(saturating_add(offset, length), limit)};
}

// The read-ahead window of a request:
//   [round_down(offset, ra), min(round_up(offset + length, ra), page_aligned_size))
// `ra` is the read-ahead size (a power of two, a multiple of the chunk size).
constexpr ByteRange readahead_window(uint64_t offset, uint64_t length, uint64_t ra,
                                     uint64_t byte_size) noexcept {
  const ByteRange want = requested_range(offset, length, byte_size);
  if (want.empty()) return want;
  const uint64_t limit = page_aligned_size(byte_size);
  return {round_down(want.begin, ra), std::min(round_up(want.end, ra), limit)};
}

// The chunks holding bytes of `range` (bytes past byte_size belong to no chunk).
constexpr ChunkSpan chunks_for(ByteRange range, uint64_t chunk_size, uint64_t byte_size) noexcept {
  const uint64_t end = std::min(range.end, byte_size);
  if (range.begin >= end) return {};
  return {range.begin / chunk_size, (end - 1) / chunk_size + 1};
}

// The bytes of chunk `index`: [index * chunk_size, min(+chunk_size, byte_size)).
constexpr ByteRange chunk_bytes(uint64_t index, uint64_t chunk_size, uint64_t byte_size) noexcept {
  const uint64_t begin = index * chunk_size;
  return {begin, std::min(saturating_add(begin, chunk_size), byte_size)};
}

constexpr ByteRange intersect(ByteRange a, ByteRange b) noexcept {
  const uint64_t begin = std::max(a.begin, b.begin);
  const uint64_t end = std::min(a.end, b.end);
  return begin < end ? ByteRange{begin, end} : ByteRange{begin, begin};
}

}  // namespace pagerfs::range
