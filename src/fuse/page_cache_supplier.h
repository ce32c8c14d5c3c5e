// Pushes decoded read-ahead data into the kernel page cache
// (fuse_lowlevel_notify_store) from a thread of its own.
//
// Why a thread: notify_store locks each page it fills. A page the kernel is
// reading (a READ request queued for us) stays locked until that READ is
// answered, so a session worker that called notify_store itself could wait
// for a request that no worker is left to answer: with every worker doing
// so, the mount deadlocks (seen with 4 threads of random mmap faults). The
// workers only queue; this thread may block, and the workers answering the
// READs unblock it. The queue is bounded; what does not fit is dropped
// (it is only read-ahead: the kernel will ask for it if it needs it).
//
// Thread safety: offer() may be called from any thread; start/stop from one.
#pragma once

#include <fuse_lowlevel.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <span>
#include <thread>
#include <vector>

#include "util/mutex.h"

namespace pagerfs {

class PageCacheSupplier {
 public:
  explicit PageCacheSupplier(uint64_t budget_bytes) : budget_(budget_bytes) {}
  ~PageCacheSupplier() { stop(); }

  void start(fuse_session* session);
  // Drops what is queued and joins the thread. Idempotent.
  void stop();

  // Queues a copy of `data` for inode `ino` at `offset`, unless the queue is
  // full. Never throws: it runs after the READ reply, when nothing may fail
  // the request any more; a copy that cannot be allocated is dropped and
  // counted (dropped and out_of_memory).
  void offer(fuse_ino_t ino, uint64_t offset, std::span<const std::byte> data) noexcept;

  struct Stats {
    uint64_t stored = 0, bytes = 0, dropped = 0, failed = 0, out_of_memory = 0;
  };
  Stats stats() const;

 private:
  struct Item {
    fuse_ino_t ino;
    uint64_t offset;
    std::vector<std::byte> data;
  };
  void run();

  const uint64_t budget_;
  fuse_session* session_ = nullptr;
  std::thread thread_;
  mutable Mutex mu_;
  CondVar wake_;  // queue_ got an item, or stopping_ was set
  std::deque<Item> queue_ GUARDED_BY(mu_);
  uint64_t queued_bytes_ GUARDED_BY(mu_) = 0;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> stored_{0}, bytes_{0}, dropped_{0}, failed_{0}, out_of_memory_{0};
};

}  // namespace pagerfs
