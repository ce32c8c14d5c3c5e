// Lets an event through at most once per interval and counts the rest, so a
// failing disk logs one line a few seconds rather than one per request.
//
// Thread safety: allow() may be called concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace pagerfs {

class RateLimiter {
 public:
  explicit RateLimiter(std::chrono::milliseconds interval) : interval_(interval) {}

  // True when the caller should log now; `suppressed` gets the number of
  // events swallowed since the last one let through.
  bool allow(uint64_t* suppressed) noexcept {
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    int64_t last = last_ms_.load(std::memory_order_relaxed);
    if (last != kNever && now - last < interval_.count()) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (!last_ms_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    *suppressed = dropped_.exchange(0, std::memory_order_relaxed);
    return true;
  }

 private:
  static constexpr int64_t kNever = INT64_MIN;
  std::chrono::milliseconds interval_;
  std::atomic<int64_t> last_ms_{kNever};
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace pagerfs
