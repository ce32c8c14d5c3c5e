#include "fuse/prefetcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace pagerfs {
namespace {

// The most decoded bytes one step fetches: a stop or the rate is heeded
// within one step.
constexpr uint64_t kStepBytes = 1 << 20;

}  // namespace

Prefetcher::Prefetcher(std::shared_ptr<Pager> pager, Options options, std::shared_ptr<spdlog::logger> logger)
    : pager_(std::move(pager)), options_(options), logger_(std::move(logger)) {
  for (unsigned i = 0; i < std::max(1u, options_.concurrency); ++i) workers_.emplace_back([this] { work(); });
}

Prefetcher::~Prefetcher() { stop(); }

void Prefetcher::enqueue(const std::string& image, std::vector<Task> tasks) {
  size_t steps = 0;
  {
    MutexLock lock(mu_);
    if (stopping_ || !images_.insert(image).second) return;
    // Cut into steps: several workers share one big range, and a stop waits
    // for one step at most.
    for (const Task& task : tasks) {
      for (uint64_t at = task.offset; at - task.offset < task.length; at += kStepBytes) {
        queue_.push_back({task.blob, task.anchor, at, std::min(kStepBytes, task.length - (at - task.offset))});
        ++steps;
      }
    }
  }
  wake_.notify_all();
  logger_->info("prefetching image {}: {} ranges", image, steps);
}

void Prefetcher::stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

Prefetcher::Stats Prefetcher::stats() const {
  Stats s;
  {
    MutexLock lock(mu_);
    s.images = images_.size();
    s.ranges_queued = queue_.size();
  }
  s.ranges_done = ranges_done_.load(std::memory_order_relaxed);
  s.bytes_done = bytes_done_.load(std::memory_order_relaxed);
  s.ranges_failed = ranges_failed_.load(std::memory_order_relaxed);
  return s;
}

bool Prefetcher::pace(uint64_t bytes) {
  using Clock = std::chrono::steady_clock;
  if (options_.rate == 0) return true;
  Clock::time_point start;
  {
    MutexLock lock(mu_);
    // Each step takes its share of the rate after the one before it.
    start = std::max(Clock::now(), next_allowed_);
    next_allowed_ = start + std::chrono::nanoseconds(bytes * 1'000'000'000 / options_.rate);
  }
  while (Clock::now() < start) {
    {
      MutexLock lock(mu_);
      if (stopping_) return false;
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(start - Clock::now(), std::chrono::milliseconds(100)));
  }
  return true;
}

void Prefetcher::work() {
  // The blob of the previous step, kept open for the next one (steps of one
  // range follow each other).
  std::shared_ptr<PagedBlob> blob;
  for (;;) {
    Task task;
    {
      MutexLock lock(mu_);
      wake_.wait(mu_, [&]() REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      task = queue_.front();
      queue_.pop_front();
    }
    if (!pace(task.length)) return;
    Result<void> done = ok();
    if (!blob || blob->digest() != task.blob) {
      auto opened = pager_->open(task.blob, task.anchor);
      if (opened) {
        blob = std::move(opened).value();
      } else {
        blob.reset();
        done = opened.error();
      }
    }
    if (done && task.offset < blob->byte_size()) {
      const uint64_t end = std::min(blob->byte_size(), task.offset + task.length);
      done = pager_->prewarm(*blob, {{task.offset, end}});
    }
    if (done) {
      ranges_done_.fetch_add(1, std::memory_order_relaxed);
      bytes_done_.fetch_add(task.length, std::memory_order_relaxed);
      continue;
    }
    ranges_failed_.fetch_add(1, std::memory_order_relaxed);
    uint64_t suppressed = 0;
    if (failure_log_.allow(&suppressed)) {
      logger_->warn("prefetch of {}: {}{}", task.blob.str(), done.error().message(),
                    suppressed ? fmt::format(" ({} more failures not logged)", suppressed) : "");
    }
  }
}

}  // namespace pagerfs
