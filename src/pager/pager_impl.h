// Pager::Impl: the pager's state, shared by its public calls (pager.cc) and
// its chunk pipeline (chunk_pipeline.cc: coalescing, fetching and decoding
// the chunks a request needs).
//
// Thread safety: every member is safe to use from any thread: the counters
// are atomics, the chunk cache, histograms and rate limiter lock themselves,
// and the tables below are GUARDED_BY(mu).
#pragma once

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <boost/asio/thread_pool.hpp>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

#include "pagerfs/format/chunk_codec.h"
#include "pagerfs/pager/pager.h"
#include "pager/chunk_cache.h"
#include "pager/recording_file.h"
#include "util/lru_cache.h"
#include "util/mutex.h"
#include "util/rate_limiter.h"

namespace pagerfs {

using ChunkResult = Result<DecodedChunk>;
using ChunkFuture = std::shared_future<ChunkResult>;

inline Error shutdown_error() { return Error(errc::shutting_down, "the pager is shutting down"); }

// Bytes that decoded wrong: damaged where they were read from (a cache, or
// the store), unlike an I/O error or a lack of memory.
inline bool is_integrity_error(const Error& e) noexcept {
  const std::error_code& code = e.code();
  return code == errc::corrupt_blob || code == errc::checksum_mismatch || code == errc::digest_mismatch;
}

// A blob whose seek table is not the one its caller anchored (Pager::open).
inline Error anchor_mismatch(const Digest& digest, const Digest& expected, const Digest& actual) {
  return Error(errc::corrupt_blob, "blob " + digest.str() + ": its table digest " + actual.hex() +
                                       " is not the anchored " + expected.hex());
}

// The chunk cache's (and in-flight table's) key of chunk `index` of `blob`.
inline ChunkKey chunk_key(const PagedBlob& blob, uint64_t index) {
  return ChunkKey{blob.digest(), blob.table_digest(), index};
}

inline unsigned decode_thread_count(unsigned requested) {
  return requested != 0 ? requested : std::max(1u, std::thread::hardware_concurrency());
}

struct Pager::Impl {
  Impl(std::shared_ptr<const LayerStack> s, const PagerOptions& o, std::shared_ptr<spdlog::logger> l)
      : stack(std::move(s)), options(o), logger(std::move(l)), pool(decode_thread_count(o.threads)),
        cache(o.chunk_cache_bytes),
        recent(o.kept_blob_bytes) {}

  using Promise = std::shared_ptr<std::promise<ChunkResult>>;

  // Exception safety: a failure (std::bad_alloc included) anywhere between
  // registering a chunk in `in_flight` and fulfilling its promise becomes
  // that chunk's result; every promise is fulfilled and every in-flight
  // entry removed on every path, so waiters wake and the next request
  // retries. Pool tasks never throw (Boost.Asio would call std::terminate).

  // Decoded chunks [span.first, span.end) of `blob`: one result per chunk.
  // May throw std::bad_alloc, leaving no registered chunk behind.
  std::vector<ChunkResult> ensure_chunks(const PagedBlob& blob, range::ChunkSpan span) EXCLUDES(mu);
  // Reads the frames of chunks [first, first + promises.size()) in one layer
  // stack read and decodes them (on the pool, the last one on the caller),
  // fulfilling their promises.
  void fetch_and_decode(const PagedBlob& blob, uint64_t first, std::span<const Promise> promises) noexcept
      EXCLUDES(mu);
  struct RunFill;
  // Untrusted stacks: the whole sectors holding the frames of chunks
  // [first, end), read in one stack read; `*offset` is where they start.
  Result<std::vector<std::byte>> read_sectors_of_run(const BlobReader& reader, uint64_t first, uint64_t end,
                                                     uint64_t* offset) const;
  // Decodes and verifies chunk `c` from its frame.
  // `*first_try` (if given) tells whether `frame` itself was good, not only
  // the frame re-read from below the caches.
  ChunkResult decode_chunk(const PagedBlob& blob, uint64_t c, std::span<const std::byte> frame,
                           bool* first_try = nullptr) noexcept;
  // After chunk `c` failed its check: forgets its frame in every cache and
  // decodes it once more from the layers below them into `out`; caches the
  // frame if it verifies.
  Result<void> reread_below_caches(const PagedBlob& blob, uint64_t c, std::span<std::byte> out);
  // Caches a good result, leaves the in-flight table, fulfils the promise.
  void finish(const ChunkKey& key, const Promise& promise, ChunkResult result) noexcept EXCLUDES(mu);
  void fail(const ChunkKey& key, const Promise& promise, const Error& e) noexcept EXCLUDES(mu);
  void count_failure(const Error& e) noexcept EXCLUDES(mu);
  // Opens blob `digest` through the stack and checks its header against the
  // name. From an untrusted stack, a v1 blob (no chunk SHA-256) is refused
  // and `*recording` is set to the file the reader reads through.
  Result<std::unique_ptr<BlobReader>> open_reader(const Digest& digest, const RecordingFile** recording);
  // Reads and checks every chunk of the blob by SHA-256 and the whole
  // content against the blob's name (errc::digest_mismatch); then caches
  // what it read (up to a bound).
  Result<void> verify_whole(const BlobReader& reader);
  ChunkVerify verify() const noexcept {
    return options.verify_sha256 || untrusted ? ChunkVerify::sha256 : ChunkVerify::xxh3;
  }
  // The read-ahead window size for this request (see PagerOptions).
  uint64_t readahead_for(const PagedBlob& blob, uint64_t offset, uint64_t length) {
    const uint64_t full = std::max<uint64_t>(std::bit_ceil(options.readahead), blob.chunk_size());
    const uint64_t previous_end = blob.next_offset_.exchange(range::saturating_add(offset, length));
    // A continuation starts where the previous request ended, or inside its
    // last page: in a pack, the next file starts where the previous file
    // ended, and the kernel asked for that file's whole last page.
    const bool continues = offset <= previous_end && previous_end - offset < range::kPageSize;
    if (!options.adaptive_readahead || length >= kStreamingRequest || continues) return full;
    random_faults.fetch_add(1, std::memory_order_relaxed);
    return blob.chunk_size();
  }
  // The kernel's read-ahead and sequential read() calls ask for at least this.
  static constexpr uint64_t kStreamingRequest = 32 * 1024;

  const std::shared_ptr<const LayerStack> stack;
  // A layer may forge bytes (a remote): every chunk is checked by SHA-256,
  // and the pager, not the stack, caches what came from it once verified.
  const bool untrusted = stack->has_untrusted_layers();
  const PagerOptions options;
  const std::shared_ptr<spdlog::logger> logger;
  boost::asio::thread_pool pool;
  ChunkCache cache;

  // Lock order: mu first. With mu held, only the chunk cache (ensure_chunks,
  // dump) and the pool's post (fetch_and_decode: nothing is posted once
  // shutdown joined the pool) are called, which take only their own locks;
  // the layer stack, decoding and the pool's tasks run without mu.
  mutable Mutex mu;
  bool shutting_down GUARDED_BY(mu) = false;
  std::unordered_map<ChunkKey, ChunkFuture, ChunkKeyHash> in_flight GUARDED_BY(mu);
  std::unordered_map<Digest, std::weak_ptr<PagedBlob>, DigestHash> blobs GUARDED_BY(mu);
  // The blobs opened last stay open after their last holder is gone, up to
  // options.kept_blob_bytes of seek tables: a pack of small files is opened once
  // per file (open, read, release), and reading its header and seek table
  // again each time (and hashing the table against its anchor) cost as much
  // as the file's own bytes; and its sequential-read hint survives from one
  // file to the next, so a reader walking a pack in order gets read-ahead.
  // Dropped when a chunk of the blob stays bad after a re-read from below
  // the caches (the store's file may have been replaced).
  LruCache<Digest, std::shared_ptr<PagedBlob>, DigestHash> recent GUARDED_BY(mu);
  // Keeps `blob` in `recent`, as the most recently used. Returns what that
  // evicted, to be released after mu (a PagedBlob frees its seek table).
  std::vector<std::shared_ptr<PagedBlob>> keep_recent(const std::shared_ptr<PagedBlob>& blob) REQUIRES(mu);
  std::map<int, uint64_t> failures GUARDED_BY(mu);

  std::atomic<uint64_t> faults{0}, bytes_requested{0}, bytes_supplied{0}, chunks_decoded{0};
  std::atomic<uint64_t> readahead_chunks{0}, cache_hits{0}, cache_misses{0}, coalesced{0}, random_faults{0};
  std::atomic<uint64_t> fetches{0}, bytes_fetched{0};
  std::atomic<uint64_t> integrity_retries{0}, integrity_repairs{0}, after_reply_failures{0};
  std::atomic<uint64_t> anchor_mismatches{0};
  LatencyHistogram decode_latency, fault_latency;
  RateLimiter repair_log{std::chrono::seconds(5)};
};

}  // namespace pagerfs
