#include "fuse/read_recorder.h"

#include <new>

namespace pagerfs {

void ReadRecorder::start() {
  MutexLock lock(mu_);
  reads_.clear();
  dropped_.store(0, std::memory_order_relaxed);
  active_.store(true, std::memory_order_release);
}

void ReadRecorder::record(const Digest& blob, uint64_t offset, uint64_t length) noexcept {
  if (!active_.load(std::memory_order_relaxed)) return;
  MutexLock lock(mu_);
  if (!active_.load(std::memory_order_relaxed)) return;  // stopped meanwhile
  try {
    if (reads_.size() < kMaxReads) {
      reads_.push_back({blob, offset, length});
      return;
    }
  } catch (const std::bad_alloc&) {
  }
  dropped_.fetch_add(1, std::memory_order_relaxed);
}

std::optional<std::vector<profile::Item>> ReadRecorder::stop() {
  MutexLock lock(mu_);
  if (!active_.exchange(false)) return std::nullopt;
  return std::exchange(reads_, {});
}

}  // namespace pagerfs
