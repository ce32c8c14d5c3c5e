#include "pagerfs/pager/pager.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstring>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "pagerfs/format/chunk_codec.h"
#include "pager/chunk_cache.h"
#include "util/fault_injection.h"
#include "util/rate_limiter.h"

namespace pagerfs {
namespace {

using ChunkResult = Result<DecodedChunk>;
using ChunkFuture = std::shared_future<ChunkResult>;

Error shutdown_error() { return Error(errc::shutting_down, "the pager is shutting down"); }

// Bytes that decoded wrong: damaged where they were read from (a cache, or
// the store), unlike an I/O error or a lack of memory.
bool is_integrity_error(const Error& e) noexcept {
  const std::error_code& code = e.code();
  return code == errc::corrupt_blob || code == errc::checksum_mismatch || code == errc::digest_mismatch;
}

// `e` as a chunk's result; if copying its message fails, ENOMEM (whose
// message needs no allocation) instead.
ChunkResult chunk_error(const Error& e) noexcept {
  try {
    return ChunkResult(e);
  } catch (...) {
    return ChunkResult(current_exception_error());
  }
}

unsigned thread_count(unsigned requested) {
  return requested != 0 ? requested : std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

Result<void> validate(const PagerOptions& options) {
  if (options.readahead < range::kPageSize || options.readahead > (uint64_t{64} << 20)) {
    return Error(errc::invalid_argument, "readahead " + std::to_string(options.readahead) +
                                             " is outside 4K..64M");
  }
  if (options.threads > 256) {
    return Error(errc::invalid_argument, "threads " + std::to_string(options.threads) + " is more than 256");
  }
  return ok();
}

struct Pager::Impl {
  Impl(std::shared_ptr<const LayerStack> s, const PagerOptions& o, std::shared_ptr<spdlog::logger> l)
      : stack(std::move(s)), options(o), logger(std::move(l)), pool(thread_count(o.threads)),
        cache(o.chunk_cache_bytes) {}

  using Promise = std::shared_ptr<std::promise<ChunkResult>>;

  // Exception safety: a failure (std::bad_alloc included) anywhere between
  // registering a chunk in `in_flight` and fulfilling its promise becomes
  // that chunk's result; every promise is fulfilled and every in-flight
  // entry removed on every path, so waiters wake and the next request
  // retries. Pool tasks never throw (Boost.Asio would call std::terminate).

  // Decoded chunks [span.first, span.end) of `blob`: one result per chunk.
  // May throw std::bad_alloc, leaving no registered chunk behind.
  std::vector<ChunkResult> ensure_chunks(const PagedBlob& blob, range::ChunkSpan span);
  // Reads the frames of chunks [first, first + promises.size()) in one layer
  // stack read and decodes them (on the pool, the last one on the caller),
  // fulfilling their promises.
  void fetch_and_decode(const PagedBlob& blob, uint64_t first, std::span<const Promise> promises) noexcept;
  // Decodes and verifies chunk `c` from its frame.
  ChunkResult decode_chunk(const PagedBlob& blob, uint64_t c, std::span<const std::byte> frame) noexcept;
  // After chunk `c` failed its check: forgets its frame in every cache and
  // decodes it once more from the layers below them into `out`; caches the
  // frame if it verifies.
  Result<void> reread_below_caches(const PagedBlob& blob, uint64_t c, std::span<std::byte> out);
  // Caches a good result, leaves the in-flight table, fulfils the promise.
  void finish(const ChunkKey& key, const Promise& promise, ChunkResult result) noexcept;
  void fail(const ChunkKey& key, const Promise& promise, const Error& e) noexcept {
    finish(key, promise, chunk_error(e));
  }
  void count_failure(const Error& e) noexcept;
  Result<std::unique_ptr<BlobReader>> open_reader(const Digest& digest);
  // The read-ahead window size for this request (see PagerOptions).
  uint64_t readahead_for(const PagedBlob& blob, uint64_t offset, uint64_t length) {
    const uint64_t full = std::max<uint64_t>(std::bit_ceil(options.readahead), blob.chunk_size());
    const uint64_t previous_end = blob.next_offset_.exchange(range::saturating_add(offset, length));
    if (!options.adaptive_readahead || length >= kStreamingRequest || offset == previous_end) return full;
    random_faults.fetch_add(1, std::memory_order_relaxed);
    return blob.chunk_size();
  }
  // The kernel's read-ahead and sequential read() calls ask for at least this.
  static constexpr uint64_t kStreamingRequest = 32 * 1024;

  const std::shared_ptr<const LayerStack> stack;
  const PagerOptions options;
  const std::shared_ptr<spdlog::logger> logger;
  boost::asio::thread_pool pool;
  ChunkCache cache;

  mutable std::mutex mu;
  bool shutting_down = false;                                         // guarded by mu
  std::unordered_map<ChunkKey, ChunkFuture, ChunkKeyHash> in_flight;  // guarded by mu
  std::unordered_map<Digest, std::weak_ptr<PagedBlob>, DigestHash> blobs;  // guarded by mu
  std::map<int, uint64_t> failures;                                   // guarded by mu

  std::atomic<uint64_t> faults{0}, bytes_requested{0}, bytes_supplied{0}, chunks_decoded{0};
  std::atomic<uint64_t> readahead_chunks{0}, cache_hits{0}, cache_misses{0}, coalesced{0}, random_faults{0};
  std::atomic<uint64_t> fetches{0}, bytes_fetched{0};
  std::atomic<uint64_t> integrity_retries{0}, integrity_repairs{0}, after_reply_failures{0};
  LatencyHistogram decode_latency, fault_latency;
  RateLimiter repair_log{std::chrono::seconds(5)};
};

void Pager::Impl::count_failure(const Error& e) noexcept {
  try {
    std::lock_guard lock(mu);
    ++failures[to_errno(e)];
  } catch (...) {
    // Out of memory for a new map node: this failure goes uncounted.
  }
}

void Pager::Impl::finish(const ChunkKey& key, const Promise& promise, ChunkResult result) noexcept {
  // Cached before leaving the in-flight table, so no request decodes it again;
  // a failure is not remembered, so the next request retries.
  if (result) {
    try {
      cache.put(key, result.value());
    } catch (...) {
      // Out of memory: the chunk is served, just not kept.
    }
  }
  {
    std::lock_guard lock(mu);
    in_flight.erase(key);
  }
  try {
    promise->set_value(std::move(result));
  } catch (...) {
    // std::future_error: already satisfied. Each promise has one owner, so
    // this cannot happen; nothing else can throw here.
  }
}

std::vector<ChunkResult> Pager::Impl::ensure_chunks(const PagedBlob& blob, range::ChunkSpan span) {
  std::vector<ChunkResult> results(span.count(), ChunkResult(shutdown_error()));
  std::vector<ChunkFuture> waits(span.count());
  // A promise is shared with the task that fulfils it, so it outlives set_value().
  std::vector<Promise> owned(span.count());
  {
    std::lock_guard lock(mu);
    if (shutting_down) return results;
    uint64_t i = 0;
    try {
      for (; i < span.count(); ++i) {
        const ChunkKey key{blob.digest(), blob.chunk_size(), span.first + i};
        if (DecodedChunk hit = cache.get(key)) {
          cache_hits.fetch_add(1, std::memory_order_relaxed);
          results[i] = hit;
        } else if (auto it = in_flight.find(key); it != in_flight.end()) {
          coalesced.fetch_add(1, std::memory_order_relaxed);
          waits[i] = it->second;
        } else {
          cache_misses.fetch_add(1, std::memory_order_relaxed);
          owned[i] = std::make_shared<std::promise<ChunkResult>>();
          waits[i] = owned[i]->get_future().share();
          in_flight.emplace(key, waits[i]);
        }
      }
    } catch (...) {
      // Out of memory while registering: withdraw this request's entries
      // before anyone (all behind this lock) could join them.
      for (uint64_t k = 0; k <= i && k < span.count(); ++k) {
        if (owned[k]) in_flight.erase(ChunkKey{blob.digest(), blob.chunk_size(), span.first + k});
      }
      throw;
    }
  }
  // Fetch each run of chunks this request owns with one layer stack read.
  for (uint64_t i = 0; i < span.count();) {
    if (!owned[i]) {
      ++i;
      continue;
    }
    uint64_t j = i + 1;
    while (j < span.count() && owned[j]) ++j;
    fetch_and_decode(blob, span.first + i, std::span(owned).subspan(i, j - i));
    i = j;
  }
  // Every task is waited for before anything here can throw (copying a
  // result allocates): pool tasks use `blob`, which the caller may free as
  // soon as this returns.
  for (uint64_t i = 0; i < span.count(); ++i) {
    if (waits[i].valid()) waits[i].wait();
  }
  for (uint64_t i = 0; i < span.count(); ++i) {
    if (waits[i].valid()) results[i] = waits[i].get();
  }
  return results;
}

void Pager::Impl::fetch_and_decode(const PagedBlob& blob, uint64_t first,
                                   std::span<const Promise> promises) noexcept {
  const uint64_t end = first + promises.size();
  auto key_of = [&](uint64_t index) { return ChunkKey{blob.digest(), blob.chunk_size(), index}; };
  uint64_t settled = first;  // chunks [first, settled) are finished or handed to a pool task
  try {
    fetches.fetch_add(1, std::memory_order_relaxed);
    auto fetched = blob.reader().read_frames(first, end);
    if (!fetched) {
      for (; settled < end; ++settled) fail(key_of(settled), promises[settled - first], fetched.error());
      return;
    }
    bytes_fetched.fetch_add(fetched.value().size(), std::memory_order_relaxed);
    auto frames = std::make_shared<const std::vector<std::byte>>(std::move(fetched).value());
    const uint64_t frames_offset = blob.reader().chunks()[first].offset;
    // Decodes chunk c and fulfils its promise (on a pool thread or inline).
    auto decode = [this, &blob, frames, frames_offset](uint64_t c, const Promise& promise) noexcept {
      const format::ChunkEntry& entry = blob.reader().chunks()[c];
      finish(ChunkKey{blob.digest(), blob.chunk_size(), c}, promise,
             decode_chunk(blob, c, std::span(*frames).subspan(entry.offset - frames_offset, entry.compressed_size)));
    };
    // All but the last chunk go to the pool, to decode in parallel; the
    // calling thread decodes the last one itself rather than sleep: a
    // single-chunk fault pays no thread hand-off.
    {
      std::lock_guard lock(mu);  // no posting once shutdown has joined the pool
      for (uint64_t c = first; c + 1 < end; ++c) {
        const Promise& promise = promises[c - first];
        if (shutting_down) {
          in_flight.erase(key_of(c));
          promise->set_value(shutdown_error());
        } else {
          // noexcept: an exception leaving a task would terminate the daemon.
          boost::asio::post(pool, [this, decode, c, promise, key = key_of(c)]() noexcept {
            bool stop = false;
            {
              std::lock_guard stop_lock(mu);
              stop = shutting_down;
            }
            if (stop) {
              try {
                fail(key, promise, shutdown_error());
              } catch (...) {  // building the message failed: fail() was not called
                fail(key, promise, current_exception_error());
              }
              return;
            }
            decode(c, promise);
          });
        }
        settled = c + 1;
      }
    }
    decode(end - 1, promises[end - first - 1]);
  } catch (...) {
    // Out of memory for the frames or for posting a task: the chunks not
    // yet handed on fail; the next request retries them.
    const Error error = current_exception_error();
    for (uint64_t c = settled; c < end; ++c) fail(key_of(c), promises[c - first], error);
  }
}

ChunkResult Pager::Impl::decode_chunk(const PagedBlob& blob, uint64_t c, std::span<const std::byte> frame) noexcept {
  try {
    fault::maybe_fail(fault::Point::decode);
    const format::ChunkEntry& entry = blob.reader().chunks()[c];
    const auto start = std::chrono::steady_clock::now();
    auto data = std::make_shared<std::vector<std::byte>>(blob.reader().header().chunk_length(c));
    auto decoded = decompress_chunk(blob.reader().header(), c, entry, frame, *data);
    decode_latency.record(std::chrono::steady_clock::now() - start);
    chunks_decoded.fetch_add(1, std::memory_order_relaxed);
    if (!decoded && is_integrity_error(decoded.error())) {
      decoded = reread_below_caches(blob, c, *data);
    }
    if (!decoded) return decoded.error().with_context(blob.digest().str());
    return DecodedChunk(std::move(data));
  } catch (...) {
    return current_exception_error();
  }
}

Result<void> Pager::Impl::reread_below_caches(const PagedBlob& blob, uint64_t c, std::span<std::byte> out) {
  // The frame may have come from a cache that one bad read of the store
  // filled, or that was damaged in place: caches hold what the layers below
  // returned, before any check. Or the store's file was repaired by
  // replacing it while we held the old one open. Forget it in every layer
  // and ask below the caches, once.
  integrity_retries.fetch_add(1, std::memory_order_relaxed);
  const format::ChunkEntry& entry = blob.reader().chunks()[c];
  const BlobExtent extent{blob.digest(), blob.reader().file_size()};
  stack->invalidate(extent, entry.offset, entry.compressed_size);
  std::vector<std::byte> frame(entry.compressed_size);
  PAGERFS_TRYV(stack->read(extent, entry.offset, frame, LayerStack::ReadMode::below_caches));
  PAGERFS_TRYV(decompress_chunk(blob.reader().header(), c, entry, frame, out));
  stack->fill(extent, entry.offset, frame);  // verified: now it may be cached
  integrity_repairs.fetch_add(1, std::memory_order_relaxed);
  uint64_t suppressed = 0;
  if (repair_log.allow(&suppressed)) {
    logger->warn("{} chunk {}: failed its check, and was good when read again from the store (damaged "
                 "cached bytes dropped){}",
                 blob.digest().str(), c,
                 suppressed ? fmt::format(" ({} more not logged)", suppressed) : std::string());
  }
  return ok();
}

Pager::Pager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Pager::~Pager() { request_shutdown(); }

Result<std::shared_ptr<Pager>> Pager::create(std::shared_ptr<const LayerStack> stack,
                                             const PagerOptions& options,
                                             std::shared_ptr<spdlog::logger> logger) {
  PAGERFS_TRYV(validate(options));
  if (!logger) logger = spdlog::default_logger();
  return std::shared_ptr<Pager>(new Pager(std::make_unique<Impl>(std::move(stack), options, std::move(logger))));
}

Result<std::unique_ptr<BlobReader>> Pager::Impl::open_reader(const Digest& digest) {
  PAGERFS_TRY(file, open_blob_through(stack, digest));
  PAGERFS_TRY(reader, BlobReader::open(std::move(file)));
  if (reader->header().digest != digest) {
    return Error(errc::digest_mismatch, "blob " + digest.str() + " has the header of " +
                                            reader->header().digest.str());
  }
  if (reader->byte_size() > range::kMaxByteSize) {
    return Error(errc::corrupt_blob, "blob " + digest.str() + " is larger than 2^63 bytes");
  }
  return reader;
}

Result<std::shared_ptr<PagedBlob>> Pager::open(const Digest& digest) noexcept {
  try {
    {
      std::lock_guard lock(impl_->mu);
      if (impl_->shutting_down) return shutdown_error();
      if (auto it = impl_->blobs.find(digest); it != impl_->blobs.end()) {
        if (auto blob = it->second.lock()) return blob;
      }
    }
    // Reads header and seek table through the stack (outside the lock: I/O).
    auto reader = impl_->open_reader(digest);
    if (!reader && is_integrity_error(reader.error())) {
      // Perhaps damaged bytes in a cache (see reread_below_caches): forget
      // the blob's cached sectors and read it once more, from below them.
      if (auto size = impl_->stack->blob_size(digest)) {
        impl_->integrity_retries.fetch_add(1, std::memory_order_relaxed);
        impl_->stack->invalidate(BlobExtent{digest, size.value()}, 0, size.value());
        reader = impl_->open_reader(digest);
        if (reader) impl_->integrity_repairs.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (!reader) return reader.error();
    auto blob = std::shared_ptr<PagedBlob>(new PagedBlob(std::move(reader).value()));
    std::lock_guard lock(impl_->mu);
    auto& slot = impl_->blobs[digest];
    if (auto existing = slot.lock()) return existing;  // another open won the race
    slot = blob;
    std::erase_if(impl_->blobs, [](const auto& entry) { return entry.second.expired(); });
    return blob;
  } catch (...) {
    return current_exception_error();
  }
}

Result<void> Pager::page_in(const PagedBlob& blob, uint64_t offset, uint64_t length,
                            const ReplyFn& reply, const SupplyFn& supply) noexcept {
  Impl& p = *impl_;
  bool replied = false;
  try {
    return serve(blob, offset, length, reply, supply, replied);
  } catch (...) {
    Error error = current_exception_error();
    if (replied) {
      // The request has its answer; what failed was read-ahead only.
      p.after_reply_failures.fetch_add(1, std::memory_order_relaxed);
      return ok();
    }
    p.count_failure(error);
    return error;
  }
}

Result<void> Pager::serve(const PagedBlob& blob, uint64_t offset, uint64_t length, const ReplyFn& reply,
                          const SupplyFn& supply, bool& replied) {
  const auto start = std::chrono::steady_clock::now();
  Impl& p = *impl_;
  p.faults.fetch_add(1, std::memory_order_relaxed);
  const uint64_t byte_size = blob.byte_size();
  const uint64_t chunk_size = blob.chunk_size();
  const range::ByteRange want = range::requested_range(offset, length, byte_size);
  if (want.empty()) {
    reply({});
    replied = true;
    return ok();
  }
  p.bytes_requested.fetch_add(want.size(), std::memory_order_relaxed);
  const range::ByteRange window =
      range::readahead_window(offset, length, p.readahead_for(blob, offset, length), byte_size);
  const range::ChunkSpan span = range::chunks_for(window, chunk_size, byte_size);
  const range::ChunkSpan required = range::chunks_for(want, chunk_size, byte_size);
  std::vector<ChunkResult> chunks = p.ensure_chunks(blob, span);

  for (uint64_t c = required.first; c < required.end; ++c) {
    const ChunkResult& r = chunks[c - span.first];
    if (!r) {
      p.count_failure(r.error());
      return r.error();
    }
  }
  // The reply: views into the chunks, then the zeros past byte_size (less
  // than a page: `want` ends at the page-aligned size).
  static constexpr std::array<std::byte, range::kPageSize> kZeros{};
  std::vector<std::span<const std::byte>> pieces;
  pieces.reserve(required.count() + 1);
  for (uint64_t c = required.first; c < required.end; ++c) {
    const range::ByteRange part = range::intersect(range::chunk_bytes(c, chunk_size, byte_size), want);
    if (part.empty()) continue;
    const std::vector<std::byte>& chunk = *chunks[c - span.first].value();
    pieces.push_back(std::span(chunk).subspan(part.begin - c * chunk_size, part.size()));
  }
  if (want.end > byte_size) pieces.push_back(std::span(kZeros).first(want.end - std::max(want.begin, byte_size)));
  reply(pieces);
  replied = true;
  // The rest of the window, chunk by chunk, never past byte_size.
  uint64_t supplied = 0;
  for (uint64_t c = span.first; c < span.end; ++c) {
    const ChunkResult& r = chunks[c - span.first];
    if (!r) continue;  // read-ahead only: the request did not need it
    if (c < required.first || c >= required.end) p.readahead_chunks.fetch_add(1, std::memory_order_relaxed);
    if (!supply) continue;
    const range::ByteRange part = range::intersect(range::chunk_bytes(c, chunk_size, byte_size), window);
    const std::vector<std::byte>& chunk = *r.value();
    for (const range::ByteRange piece : {range::ByteRange{part.begin, std::min(part.end, want.begin)},
                                         range::ByteRange{std::max(part.begin, want.end), part.end}}) {
      if (piece.empty()) continue;
      supply(piece.begin, std::span(chunk).subspan(piece.begin - c * chunk_size, piece.size()));
      supplied += piece.size();
    }
  }
  p.bytes_supplied.fetch_add(supplied, std::memory_order_relaxed);
  p.fault_latency.record(std::chrono::steady_clock::now() - start);
  return ok();
}

Result<std::vector<std::byte>> Pager::read(const PagedBlob& blob, uint64_t offset, uint64_t length) noexcept {
  try {
    std::vector<std::byte> out;
    PAGERFS_TRYV(page_in(blob, offset, length, [&](Pieces pieces) {
      for (const auto piece : pieces) out.insert(out.end(), piece.begin(), piece.end());
    }));
    return out;
  } catch (...) {  // making the std::function
    return current_exception_error();
  }
}

Result<void> Pager::prewarm(const PagedBlob& blob, const std::vector<range::ByteRange>& ranges) noexcept {
  constexpr uint64_t kBatch = 64;  // chunks per round: bounded memory in flight
  try {
    for (const range::ByteRange& r : ranges) {
      const range::ChunkSpan span = range::chunks_for(r, blob.chunk_size(), blob.byte_size());
      for (uint64_t c = span.first; c < span.end; c += kBatch) {
        const auto results = impl_->ensure_chunks(blob, {c, std::min(span.end, c + kBatch)});
        for (const ChunkResult& result : results) {
          if (!result) {
            impl_->count_failure(result.error());
            return result.error();
          }
        }
      }
    }
    return ok();
  } catch (...) {
    Error error = current_exception_error();
    impl_->count_failure(error);
    return error;
  }
}

PagerStats Pager::stats() const {
  const Impl& p = *impl_;
  PagerStats s;
  s.faults = p.faults.load();
  s.bytes_requested = p.bytes_requested.load();
  s.bytes_supplied = p.bytes_supplied.load();
  s.chunks_decoded = p.chunks_decoded.load();
  s.readahead_chunks = p.readahead_chunks.load();
  s.random_faults = p.random_faults.load();
  s.chunk_cache_hits = p.cache_hits.load();
  s.chunk_cache_misses = p.cache_misses.load();
  s.coalesced_waits = p.coalesced.load();
  s.fetches = p.fetches.load();
  s.bytes_fetched = p.bytes_fetched.load();
  s.integrity_retries = p.integrity_retries.load();
  s.integrity_repairs = p.integrity_repairs.load();
  s.after_reply_failures = p.after_reply_failures.load();
  s.chunk_cache_bytes = p.cache.bytes();
  s.decode_latency = p.decode_latency.snapshot();
  s.fault_latency = p.fault_latency.snapshot();
  std::lock_guard lock(p.mu);
  s.failures = p.failures;
  for (const auto& [digest, weak] : p.blobs) s.open_blobs += weak.expired() ? 0 : 1;
  return s;
}

std::string Pager::dump() const {
  const Impl& p = *impl_;
  std::ostringstream out;
  std::lock_guard lock(p.mu);
  out << "pager: " << (p.shutting_down ? "shutting down" : "running") << ", chunk cache "
      << p.cache.bytes() << "/" << p.options.chunk_cache_bytes << " bytes, " << p.in_flight.size()
      << " chunk(s) in flight\n";
  for (const auto& [key, future] : p.in_flight) {
    out << "  in flight: " << key.digest.str() << " chunk " << key.index << " ("
        << key.chunk_size << "-byte chunks)\n";
  }
  for (const auto& [digest, weak] : p.blobs) {
    if (auto blob = weak.lock()) {
      out << "  open: " << digest.str() << " " << blob->byte_size() << " bytes, "
          << blob->reader().chunk_count() << " x " << blob->chunk_size() << "\n";
    }
  }
  return out.str();
}

void Pager::drop_chunk_cache() { impl_->cache.clear(); }

void Pager::request_shutdown() {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->shutting_down) return;
    impl_->shutting_down = true;
  }
  // Queued decode tasks see the flag and fail their chunks; running ones finish.
  impl_->pool.join();
}

}  // namespace pagerfs
