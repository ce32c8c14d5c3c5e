// Fetches and decodes parts of images ahead of their readers, in the
// background: an image's prefetch profile (prefetch_profile.h) replayed in
// the order it was recorded, or a whole image (-o prefetch=all), when the
// image is first used.
//
// Bounded: at most `concurrency` ranges in flight (each at most 1 MiB of
// decoded bytes, through Pager::prewarm, whose fetches fill the cache disk),
// and, with `rate`, at most that many decoded bytes a second. It runs beside
// the readers' own requests and never holds them up: a part a reader has
// already read is in the caches, and prefetching it again costs a cache
// lookup. A range that fails (a remote out of reach, a damaged blob) is
// counted and skipped: a prefetch is only a hint, and the reader that needs
// those bytes gets the error itself.
//
// Thread safety: all methods may be called from any thread; the workers are
// its own.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "pagerfs/pager/pager.h"
#include "util/mutex.h"
#include "util/rate_limiter.h"

namespace spdlog {
class logger;
}

namespace pagerfs {

// What a mount prefetches of an image when it is first used.
enum class PrefetchMode { none, profile, all };

class Prefetcher {
 public:
  struct Options {
    unsigned concurrency = 2;
    uint64_t rate = 0;  // decoded bytes per second; 0: unbounded
  };
  // A range of a blob's decoded bytes, and the anchor to open the blob with.
  struct Task {
    Digest blob;
    std::optional<Digest> anchor;
    uint64_t offset = 0;
    uint64_t length = 0;
  };
  struct Stats {
    uint64_t images = 0;         // prefetches started
    uint64_t ranges_done = 0;    // ranges fetched (or found cached)
    uint64_t bytes_done = 0;     // their decoded bytes
    uint64_t ranges_failed = 0;  // ranges skipped after an error
    uint64_t ranges_queued = 0;  // still to do
  };

  Prefetcher(std::shared_ptr<Pager> pager, Options options, std::shared_ptr<spdlog::logger> logger);
  ~Prefetcher();  // stop()
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Queues the tasks of image `image`, once per image and mount (a second
  // call for the same image is ignored).
  void enqueue(const std::string& image, std::vector<Task> tasks);
  // Drops what is queued and waits for the ranges in flight.
  void stop();
  Stats stats() const;

 private:
  void work();
  // Waits until `bytes` more are allowed by the rate; false if stopping.
  bool pace(uint64_t bytes);

  const std::shared_ptr<Pager> pager_;
  const Options options_;
  const std::shared_ptr<spdlog::logger> logger_;
  mutable Mutex mu_;
  CondVar wake_;
  std::deque<Task> queue_ GUARDED_BY(mu_);
  std::unordered_set<std::string> images_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point next_allowed_ GUARDED_BY(mu_){};
  std::atomic<uint64_t> ranges_done_{0}, bytes_done_{0}, ranges_failed_{0};
  RateLimiter failure_log_{std::chrono::seconds(10)};
  std::vector<std::thread> workers_;
};

}  // namespace pagerfs
