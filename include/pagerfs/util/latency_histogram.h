// A lock-free latency histogram with power-of-two microsecond buckets.
//
// Thread safety: record() and snapshot() may run concurrently from any threads.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace pagerfs {

class LatencyHistogram {
 public:
  // Bucket i counts samples in [2^(i-1), 2^i) us; bucket 0 is < 1 us.
  static constexpr size_t kBuckets = 32;

  struct Snapshot {
    std::array<uint64_t, kBuckets> buckets{};
    uint64_t count = 0;
    uint64_t total_us = 0;
    // Upper bound (us) of the bucket holding quantile q in [0, 1]; 0 if empty.
    uint64_t quantile_us(double q) const noexcept;
    double mean_us() const noexcept { return count == 0 ? 0.0 : double(total_us) / double(count); }
  };

  void record(std::chrono::nanoseconds elapsed) noexcept;
  Snapshot snapshot() const noexcept;

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> total_us_{0};
};

}  // namespace pagerfs
