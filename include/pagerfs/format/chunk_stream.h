// Decoding a run of chunks on several threads, delivered in order.
//
// Thread safety: the reader is shared read-only by the worker threads; `sink`
// is called on the calling thread only, one chunk at a time, in index order.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/util/error.h"

namespace pagerfs {

using ChunkSink = std::function<Result<void>(uint64_t index, std::span<const std::byte> data)>;

// Decodes and verifies chunks [first, end) of `reader` on `threads` threads
// (0 = one per core) and passes each to `sink` in order. Stops at the first
// error, from a chunk or from the sink, and returns it.
Result<void> stream_chunks(const BlobReader& reader, uint64_t first, uint64_t end, unsigned threads,
                           const ChunkSink& sink);

}  // namespace pagerfs
