// The pager: every read() and mmap fault of every file goes through here.
//
// A page-in request (blob, offset, length) is widened to the read-ahead
// window (page_range.h), mapped to chunks, and answered from decoded chunks:
//   * a chunk already decoded (the bounded chunk cache) or being decoded (the
//     in-flight table) is joined, never decoded twice;
//   * missing chunks' frames come from the layer stack, one read per run of
//     adjacent chunks, and are decoded and verified on a worker pool;
//   * the requested bytes go to `reply` (zero-padded past byte_size to the
//     page end); the rest of the window, clamped to byte_size, goes to
//     `supply` (the FUSE layer pushes it into the page cache);
//   * a failed chunk fails only the requests that need it, and is not
//     remembered: the next request retries it.
//
// Failures map to errno through to_errno() (error.h): integrity and I/O
// errors are EIO, allocation failure ENOMEM, shutdown ESHUTDOWN. No
// exception leaves the pager: the public calls are noexcept and a decode
// task that fails (std::bad_alloc included) fails only its chunk.
//
// A blob may be opened with the table digest its image manifest records
// (format::table_digest): its seek table must then be exactly that one, and
// with verify_sha256 every v2 chunk is checked against the SHA-256 in that
// table, so the bytes served are those the manifest's digest names. The
// chunk cache is keyed by the table digest too (pager/chunk_cache.h).
//
// Over a stack with an untrusted layer (a remote store), every chunk is
// checked by SHA-256 whatever verify_sha256 says; a blob's seek table must
// match its anchor, or, opened without one, the whole content must hash to
// the blob's name (read and checked at open); v1 blobs are refused. The
// stack caches nothing the untrusted layer returns: the pager caches the
// sectors of a run of chunks once every chunk of it verified, and a blob's
// header and seek table once they did (recording_file.h).
//
// Caches below hold what the store returned, unchecked: a chunk that fails
// its check is re-read once from below the caches (after its sectors are
// dropped from them), and the good bytes cached again, so a damaged cache or
// one bad read of the store never outlives a repaired store.
//
// Thread safety: all methods may be called concurrently from any threads;
// callbacks run on the calling thread before page_in() returns.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "pagerfs/util/latency_histogram.h"
#include "pagerfs/layers/layer_stack.h"
#include "pagerfs/pager/page_range.h"

namespace spdlog {
class logger;
}

namespace pagerfs {

struct PagerOptions {
  // Read-ahead window; rounded up to a power of two and to each blob's chunk
  // size. Chosen by measurement (README, "Tuning").
  uint64_t readahead = 512 * 1024;
  uint64_t chunk_cache_bytes = 64 * 1024 * 1024;  // decoded chunks kept
  unsigned threads = 0;                           // decode workers; 0 = one per core
  // Widen only streaming requests to the full window: a small request that
  // does not continue the previous one on its blob (a random fault) gets
  // just the chunks it touches, so random readers do not pay for read-ahead
  // they never use. Off: every request gets the full window.
  bool adaptive_readahead = true;
  // Check each decoded v2 chunk against its seek entry's SHA-256, not only
  // its XXH3-64 (chunk_codec.h, ChunkVerify). Off by default, by the 10%
  // rule of issue 14: measured, it cost 22% of cold sequential throughput
  // (1 GiB blob, 2 cores: 207 against 266 MB/s) and 33% more daemon CPU
  // time (pagerfs(8), "verify"). Without it a forged chunk whose XXH3 was
  // made to match is served; the anchor still checks the seek table.
  bool verify_sha256 = false;
  // Blobs stay open after their last holder closes them, the most recently
  // used up to this many bytes of seek tables (56 bytes per chunk): a pack of
  // small files is opened once per file. 0: none are kept.
  uint64_t kept_blob_bytes = 16u << 20;
};

// Validates options; errc::invalid_argument with the reason.
Result<void> validate(const PagerOptions& options);

// One blob's pager state: its geometry and seek table. Released when the
// last holder drops it (on_zero_children) and the pager no longer keeps it
// among the recently used (a small LRU, by seek-table bytes).
class PagedBlob {
 public:
  const Digest& digest() const noexcept { return reader_->header().digest; }
  const Digest& table_digest() const noexcept { return reader_->table_digest(); }
  uint64_t byte_size() const noexcept { return reader_->byte_size(); }
  uint32_t chunk_size() const noexcept { return reader_->chunk_size(); }
  const BlobReader& reader() const noexcept { return *reader_; }

 private:
  friend class Pager;
  explicit PagedBlob(std::unique_ptr<BlobReader> reader) : reader_(std::move(reader)) {}
  std::unique_ptr<BlobReader> reader_;
  // Where a sequential reader asks next: an access-pattern hint, not state.
  mutable std::atomic<uint64_t> next_offset_{0};
};

struct PagerStats {
  uint64_t faults = 0;             // page_in() calls
  uint64_t bytes_requested = 0;    // bytes asked for (after clamping)
  uint64_t bytes_supplied = 0;     // bytes handed to supply() beyond the request
  uint64_t chunks_decoded = 0;
  uint64_t readahead_chunks = 0;   // chunks decoded only for the read-ahead part
  uint64_t random_faults = 0;      // requests served without read-ahead (adaptive)
  uint64_t chunk_cache_hits = 0;
  uint64_t chunk_cache_misses = 0;
  uint64_t coalesced_waits = 0;    // chunks joined while another request decoded them
  uint64_t fetches = 0;            // layer stack reads of frame runs
  uint64_t bytes_fetched = 0;
  uint64_t chunk_cache_bytes = 0;
  uint64_t open_blobs = 0;         // blobs a caller holds open
  uint64_t kept_blobs = 0;         // blobs kept open after their last holder (recently used)
  uint64_t integrity_retries = 0;    // chunks (and headers) re-read from below the caches after a failed check
  uint64_t integrity_repairs = 0;    // ... that were good from below: a cache held damaged bytes
  uint64_t after_reply_failures = 0;  // failures after the reply was sent (read-ahead lost, request answered)
  uint64_t anchor_mismatches = 0;    // opens refused: the blob's table digest was not the anchored one
  std::map<int, uint64_t> failures;  // by errno
  LatencyHistogram::Snapshot decode_latency;
  LatencyHistogram::Snapshot fault_latency;
};

class Pager {
 public:
  // The requested bytes, in order, as pieces: views into decoded chunks, and
  // zeros for the padding past byte_size. Valid only during the call.
  using Pieces = std::span<const std::span<const std::byte>>;
  using ReplyFn = std::function<void(Pieces pieces)>;
  using SupplyFn = std::function<void(uint64_t offset, std::span<const std::byte> data)>;

  static Result<std::shared_ptr<Pager>> create(std::shared_ptr<const LayerStack> stack,
                                               const PagerOptions& options,
                                               std::shared_ptr<spdlog::logger> logger = nullptr);
  ~Pager();
  Pager(const Pager&) = delete;
  Pager& operator=(const Pager&) = delete;

  // The pager state of blob `digest`, shared with other holders. With
  // `expected_table_digest` (the anchor an image manifest records), a blob
  // whose table digest differs is refused with errc::corrupt_blob (EIO,
  // counted in anchor_mismatches) after one re-read from below the caches,
  // and is not kept open.
  Result<std::shared_ptr<PagedBlob>> open(const Digest& digest,
                                          const std::optional<Digest>& expected_table_digest = std::nullopt) noexcept;

  // Serves [offset, offset + length) of `blob`: calls `reply` once with the
  // requested bytes and returns success, or returns the error and does not
  // call it. No pieces (or only empty ones) mean offset is at or past the end.
  // The pieces are not copied: a FUSE reply gathers them (fuse_reply_iov).
  // If `reply` throws, page_in returns that failure (ENOMEM for bad_alloc)
  // as if it had not been called: a reply that can throw after answering
  // must track that itself (the FUSE layer's ReplyGuard does). After a
  // successful reply, nothing fails the call: a throwing `supply` only loses
  // read-ahead (counted in after_reply_failures).
  Result<void> page_in(const PagedBlob& blob, uint64_t offset, uint64_t length,
                       const ReplyFn& reply, const SupplyFn& supply = nullptr) noexcept;

  // Convenience: the requested bytes as a vector (tests, tools).
  Result<std::vector<std::byte>> read(const PagedBlob& blob, uint64_t offset, uint64_t length) noexcept;

  // Fetches and decodes the chunks of `ranges` ahead of need.
  Result<void> prewarm(const PagedBlob& blob, const std::vector<range::ByteRange>& ranges) noexcept;

  PagerStats stats() const;

  // A one-line-per-item description of the pager's state (in-flight chunks,
  // open blobs, cache use), like PageSource::Dump.
  std::string dump() const;

  // Drops every decoded chunk (not in-flight ones).
  void drop_chunk_cache();

  // Stops accepting work: new and waiting requests fail with ESHUTDOWN;
  // workers are joined. Idempotent; also run by the destructor.
  void request_shutdown();

 private:
  struct Impl;
  explicit Pager(std::unique_ptr<Impl> impl);
  // page_in without the exception boundary; sets `replied` once `reply` returned.
  Result<void> serve(const PagedBlob& blob, uint64_t offset, uint64_t length, const ReplyFn& reply,
                     const SupplyFn& supply, bool& replied);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pagerfs
