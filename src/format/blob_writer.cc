#include "pagerfs/format/blob_writer.h"

#include <zstd.h>

#include <boost/asio/thread_pool.hpp>
#include <thread>
#include <vector>

#include "pagerfs/util/digest.h"
#include "util/ordered_pipeline.h"

namespace pagerfs {
namespace {

struct CompressedChunk {
  std::vector<std::byte> frame;
  uint64_t checksum = 0;
  Digest sha256;
};

// Reads until `buf` is full or the input ends; returns the bytes read.
Result<size_t> read_full(InputStream& input, std::span<std::byte> buf) {
  size_t done = 0;
  while (done < buf.size()) {
    PAGERFS_TRY(n, input.read_some(buf.subspan(done)));
    if (n == 0) break;
    done += n;
  }
  return done;
}

unsigned thread_count(const BlobWriterOptions& options) {
  if (options.threads != 0) return options.threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

Result<void> validate(const BlobWriterOptions& options) {
  if (!format::is_valid_chunk_size(options.chunk_size)) {
    return Error(errc::invalid_argument, "chunk size " + std::to_string(options.chunk_size) +
                                             " is not a power of two from 4K to 4M");
  }
  if (options.level < ZSTD_minCLevel() || options.level > ZSTD_maxCLevel() || options.level == 0) {
    return Error(errc::invalid_argument, "compression level " + std::to_string(options.level) +
                                             " is outside " + std::to_string(ZSTD_minCLevel()) +
                                             ".." + std::to_string(ZSTD_maxCLevel()) +
                                             " (0 excluded)");
  }
  if (options.threads > 1024) {
    return Error(errc::invalid_argument, "thread count " + std::to_string(options.threads) +
                                             " is more than 1024");
  }
  return ok();
}

Result<WrittenBlob> write_blob(InputStream& input, WritableFile& output,
                               const BlobWriterOptions& options) {
  PAGERFS_TRYV(validate(options));
  if (output.size() != 0) return Error(errc::invalid_argument, "blob output is not empty");

  format::BlobHeader header;
  header.chunk_size = options.chunk_size;
  // A placeholder header; the real one is written once the digest is known.
  PAGERFS_TRYV(output.append(format::encode_header(header)));

  const unsigned threads = thread_count(options);
  boost::asio::thread_pool pool(threads);
  std::vector<format::ChunkEntry> entries;
  auto write_frame = [&](Result<CompressedChunk>&& chunk) -> Result<void> {
    if (!chunk) return chunk.error();
    format::ChunkEntry entry;
    entry.offset = output.size();
    entry.compressed_size = static_cast<uint32_t>(chunk.value().frame.size());
    entry.checksum = chunk.value().checksum;
    entry.sha256 = chunk.value().sha256;
    PAGERFS_TRYV(output.append(chunk.value().frame));
    entries.push_back(entry);
    return ok();
  };

  Sha256 sha;
  uint64_t byte_size = 0;
  {
    // Two chunks per thread in flight: one compressing, one queued.
    OrderedPipeline<Result<CompressedChunk>> pipeline(pool, 2 * threads);
    for (;;) {
      auto buffer = std::make_shared<std::vector<std::byte>>(options.chunk_size);
      PAGERFS_TRY(n, read_full(input, *buffer));
      if (n == 0) break;
      buffer->resize(n);
      sha.update(*buffer);
      byte_size += n;
      const int level = options.level;
      PAGERFS_TRYV(pipeline.submit(
          [buffer, level]() -> Result<CompressedChunk> {
            CompressedChunk c;
            c.checksum = format::chunk_checksum(*buffer);
            c.sha256 = format::chunk_sha256(*buffer);
            PAGERFS_TRYV(compress_chunk(*buffer, level, &c.frame));
            return c;
          },
          write_frame));
      if (options.on_progress) options.on_progress(byte_size);
      if (n < options.chunk_size) break;
    }
    PAGERFS_TRYV(pipeline.drain(write_frame));
  }

  std::vector<std::byte> table;
  format::encode_seek_table(header.version, entries, &table);
  header.byte_size = byte_size;
  header.chunk_count = entries.size();
  header.seek_table_offset = output.size();
  header.seek_table_checksum = format::chunk_checksum(table);
  header.digest = sha.finish();
  PAGERFS_TRYV(output.append(table));
  PAGERFS_TRYV(output.write_at(0, format::encode_header(header)));
  return WrittenBlob{header, format::table_digest(header, table)};
}

}  // namespace pagerfs
