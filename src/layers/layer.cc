#include "pagerfs/layers/layer.h"

namespace pagerfs {

LayerStats::Snapshot LayerStats::snapshot() const noexcept {
  Snapshot s;
  s.reads = reads.load(std::memory_order_relaxed);
  s.sectors_hit = sectors_hit.load(std::memory_order_relaxed);
  s.sectors_missed = sectors_missed.load(std::memory_order_relaxed);
  s.bytes_read = bytes_read.load(std::memory_order_relaxed);
  s.fills = fills.load(std::memory_order_relaxed);
  s.bytes_filled = bytes_filled.load(std::memory_order_relaxed);
  s.evictions = evictions.load(std::memory_order_relaxed);
  s.bytes_evicted = bytes_evicted.load(std::memory_order_relaxed);
  s.errors = errors.load(std::memory_order_relaxed);
  s.fill_errors = fill_errors.load(std::memory_order_relaxed);
  s.bytes_cached = bytes_cached.load(std::memory_order_relaxed);
  s.sectors_invalidated = sectors_invalidated.load(std::memory_order_relaxed);
  s.blobs_cached = blobs_cached.load(std::memory_order_relaxed);
  s.requests = requests.load(std::memory_order_relaxed);
  s.retries = retries.load(std::memory_order_relaxed);
  s.failovers = failovers.load(std::memory_order_relaxed);
  s.read_latency = read_latency.snapshot();
  return s;
}

Result<void> Layer::write_no_overwrite(const BlobExtent&, uint64_t, std::span<const std::byte>) {
  return Error(std::make_error_code(std::errc::operation_not_supported),
               std::string(type()) + " layer is not a read cache");
}

Result<void> Layer::invalidate(const BlobExtent&, uint64_t, uint64_t) { return ok(); }

}  // namespace pagerfs
