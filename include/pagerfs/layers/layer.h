// A storage layer: one tier of where a blob file's (compressed) bytes live.
//
// Layers are stacked (see layer_stack.h): a cache disk over the local store,
// later a remote store below. A read asks a layer for a run of sectors of one
// blob file; the layer fills the sectors it holds, marks them in the
// SectorMarker, and leaves the rest to the next layer. Compressed bytes are
// never implied zeros: a sector that no layer holds is an error.
//
// A read-cache layer is logically read-only but accepts write_no_overwrite():
// it stores sectors a lower layer returned and never replaces sectors it
// already holds (content is immutable, so a second copy adds nothing and a
// replacement could only introduce damage).
//
// Thread safety: every Layer implementation must allow concurrent calls of
// all its methods from any number of threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "pagerfs/util/latency_histogram.h"
#include "pagerfs/layers/sector_marker.h"

namespace pagerfs {

// A blob file as the layers see it: its name and its size in bytes.
struct BlobExtent {
  Digest digest;
  uint64_t size = 0;

  uint64_t sector_count(uint32_t sector_size) const noexcept {
    return size / sector_size + (size % sector_size != 0 ? 1 : 0);
  }
};

// Counters of one layer. The stack records reads, hits, misses, latency and
// errors around every call; layers record their own fills and evictions.
struct LayerStats {
  struct Snapshot {
    uint64_t reads = 0;           // read() calls
    uint64_t sectors_hit = 0;     // sectors this layer served
    uint64_t sectors_missed = 0;  // sectors asked for that fell through
    uint64_t bytes_read = 0;      // bytes of the sectors served
    uint64_t fills = 0;           // write_no_overwrite() calls that stored something
    uint64_t bytes_filled = 0;
    uint64_t evictions = 0;       // units (sectors or extents) dropped for the budget
    uint64_t bytes_evicted = 0;
    uint64_t errors = 0;          // failed reads
    uint64_t fill_errors = 0;     // failed fills (ENOSPC, EIO, ...)
    uint64_t bytes_cached = 0;    // current size, for caches
    uint64_t sectors_invalidated = 0;  // dropped by invalidate(): served, then found damaged
    uint64_t blobs_cached = 0;    // blobs the cache holds sectors of (its in-memory maps)
    uint64_t requests = 0;        // remote: HTTP requests made
    uint64_t retries = 0;         // remote: attempts after a failed one
    uint64_t failovers = 0;       // remote: attempts that moved to another mirror
    LatencyHistogram::Snapshot read_latency;
  };

  std::atomic<uint64_t> reads{0}, sectors_hit{0}, sectors_missed{0}, bytes_read{0};
  std::atomic<uint64_t> fills{0}, bytes_filled{0}, evictions{0}, bytes_evicted{0};
  std::atomic<uint64_t> errors{0}, fill_errors{0}, bytes_cached{0}, sectors_invalidated{0}, blobs_cached{0};
  std::atomic<uint64_t> requests{0}, retries{0}, failovers{0};
  LatencyHistogram read_latency;

  Snapshot snapshot() const noexcept;
};

class Layer {
 public:
  virtual ~Layer() = default;

  // "local", "cache", "memory", "fault(local)", ...: for logs and stats.
  virtual std::string_view type() const noexcept = 0;
  virtual uint32_t sector_size() const noexcept = 0;
  // True when the layer holds nothing to write: stores, and read caches
  // (which are filled only through write_no_overwrite).
  virtual bool is_logically_read_only() const noexcept { return true; }
  // True for read caches: write_no_overwrite() stores sectors.
  virtual bool is_read_cache() const noexcept { return false; }
  // True when the layer holds every sector of every blob it knows: the
  // bottom of a stack must be complete.
  virtual bool is_complete() const noexcept { return false; }
  // False for a layer whose bytes may be forged (a remote server): the stack
  // caches nothing it returns, and the pager checks every chunk by SHA-256
  // against the anchored chain before anything of it is served or cached.
  virtual bool is_trusted() const noexcept { return true; }

  // The blob file's size if this layer knows the blob; nullopt to ask the
  // next layer. A complete layer returns ENOENT for a blob it does not have.
  virtual Result<std::optional<uint64_t>> blob_size(const Digest& digest) = 0;

  // Reads what the layer holds of sectors [marker.first(), +marker.count())
  // of `blob` into `out` and marks them. `out` holds those sectors; its last
  // sector is short when the blob ends inside it. On error nothing is
  // trusted: the stack unmarks what this call marked.
  virtual Result<void> read(const BlobExtent& blob, std::span<std::byte> out,
                            SectorMarker& marker) = 0;

  // Read caches: stores the sectors `data` holds, starting at `first_sector`,
  // except those already held. `data` ends short only at the end of the blob.
  virtual Result<void> write_no_overwrite(const BlobExtent& blob, uint64_t first_sector,
                                          std::span<const std::byte> data);

  // Forgets what the layer remembers of sectors [first_sector, +count) of
  // `blob`: bytes served from them failed the pager's check. A read cache
  // drops them, so the next read fetches them from below; a store drops any
  // open handle of the blob file, so a file repaired by replacing it (a
  // rename) is read afresh. The default forgets nothing.
  virtual Result<void> invalidate(const BlobExtent& blob, uint64_t first_sector, uint64_t count);

  // Makes everything stored durable.
  virtual Result<void> sync() { return ok(); }

  // Drops everything cached (caches only; a no-op for stores).
  virtual Result<void> drop() { return ok(); }

  LayerStats& stats() noexcept { return stats_; }
  const LayerStats& stats() const noexcept { return stats_; }

 private:
  LayerStats stats_;
};

}  // namespace pagerfs
