#include "pagerfs/util/latency_histogram.h"

#include <bit>

namespace pagerfs {

void LatencyHistogram::record(std::chrono::nanoseconds elapsed) noexcept {
  const auto us = static_cast<uint64_t>(std::max<int64_t>(0, elapsed.count() / 1000));
  const size_t bucket = std::min<size_t>(kBuckets - 1, std::bit_width(us));
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  total_us_.fetch_add(us, std::memory_order_relaxed);
}

LatencyHistogram::Snapshot LatencyHistogram::snapshot() const noexcept {
  Snapshot s;
  for (size_t i = 0; i < kBuckets; ++i) s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
  s.count = count_.load(std::memory_order_relaxed);
  s.total_us = total_us_.load(std::memory_order_relaxed);
  return s;
}

uint64_t LatencyHistogram::Snapshot::quantile_us(double q) const noexcept {
  uint64_t total = 0;
  for (uint64_t b : buckets) total += b;
  if (total == 0) return 0;
  const auto rank = static_cast<uint64_t>(q * double(total - 1));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += buckets[i];
    if (seen > rank) return uint64_t{1} << i;
  }
  return uint64_t{1} << (kBuckets - 1);
}

}  // namespace pagerfs
