#include "pagerfs/pager/pager.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <sstream>

#include "pager/pager_impl.h"

namespace pagerfs {

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

Pager::Pager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Pager::~Pager() { request_shutdown(); }

Result<std::shared_ptr<Pager>> Pager::create(std::shared_ptr<const LayerStack> stack,
                                             const PagerOptions& options,
                                             std::shared_ptr<spdlog::logger> logger) {
  PAGERFS_TRYV(validate(options));
  if (!logger) logger = spdlog::default_logger();
  return std::shared_ptr<Pager>(new Pager(std::make_unique<Impl>(std::move(stack), options, std::move(logger))));
}

Result<std::shared_ptr<PagedBlob>> Pager::open(const Digest& digest,
                                               const std::optional<Digest>& expected_table_digest) noexcept {
  try {
    // An open blob is shared only with a caller that anchors the same seek
    // table (or none); a caller anchoring another reads the store afresh.
    auto acceptable = [&](const PagedBlob& blob) {
      return !expected_table_digest || blob.table_digest() == *expected_table_digest;
    };
    std::vector<std::shared_ptr<PagedBlob>> evicted;  // released after the lock, in this order
    {
      MutexLock lock(impl_->mu);
      if (impl_->shutting_down) return shutdown_error();
      if (auto it = impl_->blobs.find(digest); it != impl_->blobs.end()) {
        if (auto blob = it->second.lock(); blob && acceptable(*blob)) {
          evicted = impl_->keep_recent(blob);
          return blob;
        }
      }
    }
    // Reads header and seek table through the stack (outside the lock: I/O).
    bool anchor_failed = false;
    auto attempt = [&]() -> Result<std::unique_ptr<BlobReader>> {
      anchor_failed = false;
      const RecordingFile* recording = nullptr;
      auto reader = impl_->open_reader(digest, &recording);
      if (!reader) return reader;
      if (expected_table_digest && reader.value()->table_digest() != *expected_table_digest) {
        anchor_failed = true;
        return anchor_mismatch(digest, *expected_table_digest, reader.value()->table_digest());
      }
      if (recording != nullptr) {
        // From an untrusted stack: the seek table is trusted once it is the
        // anchored one, or, with no anchor (the blobs view), once the whole
        // content it describes hashes to the blob's name.
        if (!expected_table_digest) {
          auto whole = impl_->verify_whole(*reader.value());
          if (!whole) {
            anchor_failed = is_integrity_error(whole.error());
            return whole.error();
          }
        }
        recording->fill_recorded();
      }
      return reader;
    };
    auto reader = attempt();
    if (!reader && is_integrity_error(reader.error())) {
      // Perhaps damaged bytes in a cache (see reread_below_caches): forget
      // the blob's cached sectors and read it once more, from below them.
      if (auto size = impl_->stack->blob_size(digest)) {
        impl_->integrity_retries.fetch_add(1, std::memory_order_relaxed);
        impl_->stack->invalidate(BlobExtent{digest, size.value()}, 0, size.value());
        reader = attempt();
        if (reader) impl_->integrity_repairs.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (!reader) {
      if (anchor_failed) impl_->anchor_mismatches.fetch_add(1, std::memory_order_relaxed);
      return reader.error();
    }
    auto blob = std::shared_ptr<PagedBlob>(new PagedBlob(std::move(reader).value()));
    MutexLock lock(impl_->mu);
    auto& slot = impl_->blobs[digest];
    if (auto existing = slot.lock()) {
      if (existing->table_digest() == blob->table_digest()) return existing;  // another open won the race
      // Another table under the same name stays open for its holders; this
      // one is served uncached in the map (its chunks are keyed apart).
      if (expected_table_digest) return blob;
    }
    slot = blob;
    evicted = impl_->keep_recent(blob);
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
  s.anchor_mismatches = p.anchor_mismatches.load();
  s.chunk_cache_bytes = p.cache.bytes();
  s.decode_latency = p.decode_latency.snapshot();
  s.fault_latency = p.fault_latency.snapshot();
  MutexLock lock(p.mu);
  s.failures = p.failures;
  for (const auto& [digest, weak] : p.blobs) {
    // Held by a caller: a reference beyond the one `recent` keeps.
    const auto* kept = p.recent.peek(digest);
    const long own = kept != nullptr && !weak.owner_before(*kept) && !kept->owner_before(weak) ? 1 : 0;
    s.open_blobs += weak.use_count() > own ? 1 : 0;
  }
  s.kept_blobs = p.recent.size();
  return s;
}

std::string Pager::dump() const {
  const Impl& p = *impl_;
  std::ostringstream out;
  MutexLock lock(p.mu);
  out << "pager: " << (p.shutting_down ? "shutting down" : "running") << ", chunk cache "
      << p.cache.bytes() << "/" << p.options.chunk_cache_bytes << " bytes, " << p.in_flight.size()
      << " chunk(s) in flight\n";
  for (const auto& [key, future] : p.in_flight) {
    out << "  in flight: " << key.digest.str() << " chunk " << key.index << " (table "
        << key.table_digest.hex().substr(0, 16) << ")\n";
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
    MutexLock lock(impl_->mu);
    if (impl_->shutting_down) return;
    impl_->shutting_down = true;
  }
  // Queued decode tasks see the flag and fail their chunks; running ones finish.
  impl_->pool.join();
}

}  // namespace pagerfs
