// Named fault-injection points, a testing aid: an armed point throws
// std::bad_alloc at every Nth time it is reached, so a test can prove that
// an allocation failure in that place stays local (the one request fails,
// or a read-ahead push is dropped; the daemon keeps serving).
//
//   decode   in a decode task of the pager (pool thread or inline)
//   supply   in the page cache supplier's copy of read-ahead data, after
//            the READ reply was sent
//
// The daemon arms points once at start from PAGERFS_INJECT_FAULTS
// ("decode:3,supply:1"; pagerfs(8), ENVIRONMENT); unit tests call arm().
// Unarmed, a point costs one relaxed atomic load.
//
// Thread safety: every function may be called from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "pagerfs/util/error.h"

namespace pagerfs::fault {

enum class Point : size_t { decode, supply };
inline constexpr size_t kPointCount = 2;

namespace detail {
extern std::atomic<uint64_t> g_every[kPointCount];
void hit(Point point);  // counts the visit; throws std::bad_alloc when it is due
}  // namespace detail

// Throws std::bad_alloc if `point` is armed and this visit is due.
inline void maybe_fail(Point point) {
  if (detail::g_every[static_cast<size_t>(point)].load(std::memory_order_relaxed) != 0) [[unlikely]] {
    detail::hit(point);
  }
}

// Every `every`th visit of `point` fails from now on; 0 disarms it. Resets
// its visit count.
void arm(Point point, uint64_t every) noexcept;
void disarm_all() noexcept;
// Failures thrown at `point` so far.
uint64_t injected(Point point) noexcept;

// Arms the points of `spec`, "POINT:N[,POINT:N...]"; errc::invalid_argument
// naming the bad item otherwise (nothing is armed then).
Result<void> arm_from_spec(std::string_view spec);
// Arms from PAGERFS_INJECT_FAULTS; returns the spec armed ("" if unset).
Result<std::string> arm_from_environment();

}  // namespace pagerfs::fault
