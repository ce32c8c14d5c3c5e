#include "fuse/page_cache_supplier.h"

#include "util/fault_injection.h"

namespace pagerfs {

void PageCacheSupplier::start(fuse_session* session) {
  session_ = session;
  thread_ = std::thread([this] { run(); });
}

void PageCacheSupplier::stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
    queue_.clear();
    queued_bytes_ = 0;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PageCacheSupplier::offer(fuse_ino_t ino, uint64_t offset, std::span<const std::byte> data) noexcept {
  try {
    fault::maybe_fail(fault::Point::supply);  // as if the copy could not be allocated
    MutexLock lock(mu_);
    if (stopping_ || queued_bytes_ + data.size() > budget_) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    // A failed copy leaves the queue as it was (push_back's strong guarantee).
    queue_.push_back({ino, offset, std::vector<std::byte>(data.begin(), data.end())});
    queued_bytes_ += data.size();
  } catch (...) {
    // Only read-ahead is lost: the kernel asks for those pages if it needs them.
    dropped_.fetch_add(1, std::memory_order_relaxed);
    out_of_memory_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  wake_.notify_one();
}

void PageCacheSupplier::run() {
  for (;;) {
    Item item;
    {
      MutexLock lock(mu_);
      wake_.wait(mu_, [this]() REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      item = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= item.data.size();
    }
    fuse_bufvec buf{};  // FUSE_BUFVEC_INIT is a C compound literal
    buf.count = 1;
    buf.buf[0].size = item.data.size();
    buf.buf[0].fd = -1;
    buf.buf[0].mem = item.data.data();
    const int rc = fuse_lowlevel_notify_store(session_, item.ino, static_cast<off_t>(item.offset), &buf,
                                              static_cast<fuse_buf_copy_flags>(0));
    if (rc == 0) {
      stored_.fetch_add(1, std::memory_order_relaxed);
      bytes_.fetch_add(item.data.size(), std::memory_order_relaxed);
    } else {
      failed_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

PageCacheSupplier::Stats PageCacheSupplier::stats() const {
  return {stored_.load(), bytes_.load(), dropped_.load(), failed_.load(), out_of_memory_.load()};
}

}  // namespace pagerfs
