// The pager's chunk pipeline: the decoded chunks of a span, each joined if
// cached or in flight, else fetched (one layer stack read per run of missing
// chunks), decoded on the pool and verified, with one re-read from below the
// caches for a chunk that fails its check.
#include <boost/asio/post.hpp>
#include <chrono>

#include "pagerfs/format/chunk_codec.h"
#include "pager/pager_impl.h"
#include "util/fault_injection.h"

namespace pagerfs {
namespace {

// `e` as a chunk's result; if copying its message fails, ENOMEM (whose
// message needs no allocation) instead.
ChunkResult chunk_error(const Error& e) noexcept {
  try {
    return ChunkResult(e);
  } catch (...) {
    return ChunkResult(current_exception_error());
  }
}

}  // namespace

// The chunks of one fetched run, counted down as they decode: the last one
// tells whether all were good at the first try, so the run's sectors (read
// from an untrusted stack, which does not cache them) may now be cached.
struct Pager::Impl::RunFill {
  explicit RunFill(size_t chunks) : remaining(chunks) {}
  // True for the last chunk of a run whose chunks all verified.
  bool chunk_done(bool good) noexcept {
    if (!good) failed.store(true, std::memory_order_relaxed);
    return remaining.fetch_sub(1, std::memory_order_acq_rel) == 1 && !failed.load(std::memory_order_relaxed);
  }
  std::atomic<size_t> remaining;
  std::atomic<bool> failed{false};
};

void Pager::Impl::count_failure(const Error& e) noexcept {
  try {
    MutexLock lock(mu);
    ++failures[to_errno(e)];
  } catch (...) {
    // Out of memory for a new map node: this failure goes uncounted.
  }
}

void Pager::Impl::fail(const ChunkKey& key, const Promise& promise, const Error& e) noexcept {
  finish(key, promise, chunk_error(e));
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
    MutexLock lock(mu);
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
    MutexLock lock(mu);
    if (shutting_down) return results;
    uint64_t i = 0;
    try {
      for (; i < span.count(); ++i) {
        const ChunkKey key = chunk_key(blob, span.first + i);
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
        if (owned[k]) in_flight.erase(chunk_key(blob, span.first + k));
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
  auto key_of = [&](uint64_t index) { return chunk_key(blob, index); };
  uint64_t settled = first;  // chunks [first, settled) are finished or handed to a pool task
  try {
    fetches.fetch_add(1, std::memory_order_relaxed);
    // From an untrusted stack the run is read in whole sectors (what the
    // stack reads anyway), so that once every chunk of it verified, its
    // sectors can be cached whole (RunFill).
    uint64_t frames_offset = blob.reader().chunks()[first].offset;
    auto fetched = untrusted ? read_sectors_of_run(blob.reader(), first, end, &frames_offset) : blob.reader().read_frames(first, end);
    if (!fetched) {
      for (; settled < end; ++settled) fail(key_of(settled), promises[settled - first], fetched.error());
      return;
    }
    bytes_fetched.fetch_add(fetched.value().size(), std::memory_order_relaxed);
    auto frames = std::make_shared<const std::vector<std::byte>>(std::move(fetched).value());
    auto run = untrusted ? std::make_shared<RunFill>(promises.size()) : nullptr;
    const BlobExtent extent{blob.digest(), blob.reader().file_size()};
    // Decodes chunk c and fulfils its promise (on a pool thread or inline).
    auto decode = [this, &blob, frames, frames_offset, run, extent](uint64_t c, const Promise& promise) noexcept {
      const format::ChunkEntry& entry = blob.reader().chunks()[c];
      bool first_try = false;
      ChunkResult result =
          decode_chunk(blob, c, std::span(*frames).subspan(entry.offset - frames_offset, entry.compressed_size), &first_try);
      const bool last_good_of_run = run && run->chunk_done(result.has_value() && first_try);
      finish(chunk_key(blob, c), promise, std::move(result));  // `blob` may be freed from here on
      if (last_good_of_run) {
        try {
          stack->fill(extent, frames_offset, *frames);
        } catch (...) {
          // Out of memory in a cache: the run is served, just not cached.
        }
      }
    };
    // All but the last chunk go to the pool, to decode in parallel; the
    // calling thread decodes the last one itself rather than sleep: a
    // single-chunk fault pays no thread hand-off.
    {
      MutexLock lock(mu);  // no posting once shutdown has joined the pool
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
              MutexLock stop_lock(mu);
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

ChunkResult Pager::Impl::decode_chunk(const PagedBlob& blob, uint64_t c, std::span<const std::byte> frame,
                                      bool* first_try) noexcept {
  if (first_try != nullptr) *first_try = false;
  try {
    fault::maybe_fail(fault::Point::decode);
    const format::ChunkEntry& entry = blob.reader().chunks()[c];
    const auto start = std::chrono::steady_clock::now();
    auto data = std::make_shared<std::vector<std::byte>>(blob.reader().header().chunk_length(c));
    auto decoded = decompress_chunk(blob.reader().header(), c, entry, frame, *data, verify());
    decode_latency.record(std::chrono::steady_clock::now() - start);
    chunks_decoded.fetch_add(1, std::memory_order_relaxed);
    if (decoded && first_try != nullptr) *first_try = true;
    if (!decoded && is_integrity_error(decoded.error())) {
      decoded = reread_below_caches(blob, c, *data);
      if (!decoded) {
        // Perhaps the store's file was replaced under a seek table kept open:
        // the next open reads it afresh.
        std::shared_ptr<PagedBlob> dropped;
        MutexLock lock(mu);
        if (auto* kept = recent.peek(blob.digest()); kept && kept->get() == &blob) {
          dropped = std::move(*kept);
          recent.erase(blob.digest());
        }
      }
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
  PAGERFS_TRYV(decompress_chunk(blob.reader().header(), c, entry, frame, out, verify()));
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

std::vector<std::shared_ptr<PagedBlob>> Pager::Impl::keep_recent(const std::shared_ptr<PagedBlob>& blob) {
  std::vector<std::shared_ptr<PagedBlob>> evicted;
  if (auto* kept = recent.get(blob->digest()); kept && *kept == blob) return evicted;
  // The seek table and the rest of the blob's state.
  const uint64_t cost = blob->reader().header().seek_table_size() + sizeof(PagedBlob) + sizeof(BlobReader);
  recent.insert(blob->digest(), blob, cost,
                [&](Digest&&, std::shared_ptr<PagedBlob>&& old, uint64_t) { evicted.push_back(std::move(old)); });
  return evicted;
}

Result<std::vector<std::byte>> Pager::Impl::read_sectors_of_run(const BlobReader& reader, uint64_t first, uint64_t end,
                                                                uint64_t* offset) const {
  const auto& chunks = reader.chunks();
  const uint64_t run_end = chunks[end - 1].offset + chunks[end - 1].compressed_size;
  return stack->read_whole_sectors(BlobExtent{reader.header().digest, reader.file_size()}, chunks[first].offset,
                                   run_end - chunks[first].offset, offset);
}

Result<void> Pager::Impl::verify_whole(const BlobReader& reader) {
  // Runs of chunks of about this many frame bytes are read and checked at a
  // time: bounded memory for a blob of any size. What was read is cached
  // only once the whole content matched the name (before that the seek
  // table is not trusted), and only up to kFillBytes: a larger blob's
  // sectors are fetched again when read.
  constexpr uint64_t kRunBytes = 4u << 20;
  constexpr uint64_t kFillBytes = 64u << 20;
  const auto& chunks = reader.chunks();
  const format::BlobHeader& header = reader.header();
  const BlobExtent extent{header.digest, reader.file_size()};
  Sha256 content;
  std::vector<std::byte> data;
  struct Run {
    uint64_t offset;
    std::vector<std::byte> sectors;
  };
  std::vector<Run> to_fill;
  uint64_t fill_bytes = 0;
  for (uint64_t first = 0; first < chunks.size();) {
    uint64_t end = first + 1;
    while (end < chunks.size() && chunks[end].offset + chunks[end].compressed_size - chunks[first].offset <= kRunBytes) ++end;
    uint64_t begin = 0;
    PAGERFS_TRY(sectors, read_sectors_of_run(reader, first, end, &begin));
    for (uint64_t c = first; c < end; ++c) {
      data.resize(header.chunk_length(c));
      const auto frame = std::span(sectors).subspan(chunks[c].offset - begin, chunks[c].compressed_size);
      auto decoded = decompress_chunk(header, c, chunks[c], frame, data, ChunkVerify::sha256);
      if (!decoded) return decoded.error().with_context(header.digest.str());
      content.update(data);
    }
    if (fill_bytes + sectors.size() <= kFillBytes) {
      fill_bytes += sectors.size();
      to_fill.push_back({begin, std::move(sectors)});
    }
    first = end;
  }
  if (const Digest got = content.finish(); got != header.digest) {
    return Error(errc::digest_mismatch, "blob " + header.digest.str() + ": its content hashes to " + got.str());
  }
  for (const Run& run : to_fill) stack->fill(extent, run.offset, run.sectors);
  return ok();
}

Result<std::unique_ptr<BlobReader>> Pager::Impl::open_reader(const Digest& digest, const RecordingFile** recording) {
  PAGERFS_TRY(size, stack->blob_size(digest));
  std::unique_ptr<RandomAccessFile> file;
  if (untrusted) {
    auto recorder = std::make_unique<RecordingFile>(stack, BlobExtent{digest, size});
    *recording = recorder.get();  // owned by the reader from here on
    file = std::move(recorder);
  } else {
    PAGERFS_TRY(through, open_blob_through(stack, digest));
    file = std::move(through);
  }
  PAGERFS_TRY(reader, BlobReader::open(std::move(file)));
  if (untrusted && !reader->header().has_chunk_sha256()) {
    return Error(errc::unsupported_format, "blob " + digest.str() +
                                               " is format v1 (no SHA-256 per chunk): it cannot be checked when read "
                                               "over a remote store; repack it");
  }
  if (reader->header().digest != digest) {
    return Error(errc::digest_mismatch, "blob " + digest.str() + " has the header of " +
                                            reader->header().digest.str());
  }
  if (reader->byte_size() > range::kMaxByteSize) {
    return Error(errc::corrupt_blob, "blob " + digest.str() + " is larger than 2^63 bytes");
  }
  return reader;
}

}  // namespace pagerfs
