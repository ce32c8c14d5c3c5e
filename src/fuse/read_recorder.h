// Records the reads a mount serves while asked to (`pagerfsctl record`):
// the blob, offset and length of every READ and of every read-ahead window
// pushed into the page cache (read there later without a READ), in the
// order they came, for a prefetch profile (prefetch_profile.h). Reads the
// kernel serves from what it cached before never reach the daemon, so a
// recording is of a cold run.
//
// Not recording costs one relaxed atomic load per READ.
//
// Thread safety: record() from any worker thread, start() and stop() from
// the control thread; all may run concurrently.
#pragma once

#include <atomic>
#include <optional>
#include <vector>

#include "pagerfs/store/prefetch_profile.h"
#include "util/mutex.h"

namespace pagerfs {

class ReadRecorder {
 public:
  // At most this many reads are kept; later ones are dropped (counted).
  static constexpr size_t kMaxReads = 1u << 20;

  // Starts a recording (dropping one in progress).
  void start();
  // Never throws (it runs after a reply): a read that cannot be kept is dropped.
  void record(const Digest& blob, uint64_t offset, uint64_t length) noexcept;
  // Ends the recording and returns its reads; nullopt if none was started.
  std::optional<std::vector<profile::Item>> stop();
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> active_{false};
  std::atomic<uint64_t> dropped_{0};
  Mutex mu_;
  std::vector<profile::Item> reads_ GUARDED_BY(mu_);
};

}  // namespace pagerfs
