// Writing a blob: stream any input (file, pipe; any size, including 0 and
// more than 4 GiB) into a blob file in one pass.
//
// The input is cut into chunks that are compressed on a pool of threads
// while the calling thread reads ahead and hashes; frames are written in
// order, so memory stays bounded by ~2 chunks per thread whatever the input
// size. The header is finalised last (the digest is known only at the end).
//
// Thread safety: write_blob() may be called from several threads at once on
// distinct inputs and outputs; `on_progress` is called on the calling thread.
#pragma once

#include <cstdint>
#include <functional>

#include "pagerfs/format/blob_format.h"
#include "pagerfs/format/chunk_codec.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "pagerfs/util/file.h"

namespace pagerfs {

struct BlobWriterOptions {
  uint32_t chunk_size = format::kDefaultChunkSize;
  int level = kDefaultCompressionLevel;  // zstd level
  unsigned threads = 0;                  // compression threads; 0 = one per core
  // Called after each chunk is read with the input bytes consumed so far.
  std::function<void(uint64_t)> on_progress;
};

// Checks chunk size, level and threads; errc::invalid_argument with the reason.
Result<void> validate(const BlobWriterOptions& options);

// What write_blob() wrote: the final header, and the blob's table digest
// (format::table_digest), the anchor an image manifest records for it.
struct WrittenBlob {
  format::BlobHeader header;
  Digest table_digest;
};

// Reads `input` to its end and writes a complete blob (format v2) to
// `output` (which must be empty).
Result<WrittenBlob> write_blob(InputStream& input, WritableFile& output,
                               const BlobWriterOptions& options);

}  // namespace pagerfs
