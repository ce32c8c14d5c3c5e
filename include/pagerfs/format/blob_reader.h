// Reading a blob file: validated geometry and verified random access.
//
// open() reads and validates the header and the whole seek table (see
// blob_format.h); afterwards any chunk or byte range can be read, and every
// chunk is checked against its checksum before a byte of it is returned.
//
// Thread safety: after open(), all methods are const and may be called
// concurrently from any number of threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "pagerfs/format/blob_format.h"
#include "pagerfs/util/error.h"
#include "pagerfs/util/file.h"

namespace pagerfs {

class BlobReader {
 public:
  static Result<std::unique_ptr<BlobReader>> open(std::unique_ptr<RandomAccessFile> file);
  // Opens a blob file: a store's (the default refuses a symbolic link), or
  // one a user named (`Symlinks::follow`). Anything but a regular file is
  // refused without blocking (see open_random_access_file()).
  static Result<std::unique_ptr<BlobReader>> open(const std::string& path,
                                                  Symlinks symlinks = Symlinks::refuse);

  const format::BlobHeader& header() const noexcept { return header_; }
  const std::vector<format::ChunkEntry>& chunks() const noexcept { return chunks_; }
  uint64_t byte_size() const noexcept { return header_.byte_size; }
  uint32_t chunk_size() const noexcept { return header_.chunk_size; }
  uint64_t chunk_count() const noexcept { return header_.chunk_count; }
  uint64_t file_size() const noexcept { return file_->size(); }
  const std::string& name() const noexcept { return file_->name(); }
  // format::table_digest of this blob (computed at open from the bytes read).
  const Digest& table_digest() const noexcept { return table_digest_; }

  // Reads the compressed frame of chunk `index` (< chunk_count) unverified.
  Result<std::vector<std::byte>> read_frame(uint64_t index) const;
  // Reads the frames of chunks [first, end) in one read (they are contiguous).
  Result<std::vector<std::byte>> read_frames(uint64_t first, uint64_t end) const;
  // Decodes and verifies chunk `index` (XXH3 and, v2, SHA-256); `out` must
  // be header().chunk_length(index) bytes.
  Result<void> read_chunk(uint64_t index, std::span<std::byte> out) const;
  // Reads decompressed bytes at `offset`; returns how many, fewer only at the
  // end of the content (0 when offset >= byte_size).
  Result<size_t> read(uint64_t offset, std::span<std::byte> out) const;

 private:
  BlobReader(std::unique_ptr<RandomAccessFile> file, format::BlobHeader header,
             std::vector<format::ChunkEntry> chunks, const Digest& table_digest)
      : file_(std::move(file)), header_(header), chunks_(std::move(chunks)),
        table_digest_(table_digest) {}

  std::unique_ptr<RandomAccessFile> file_;
  format::BlobHeader header_;
  std::vector<format::ChunkEntry> chunks_;
  Digest table_digest_;
};

}  // namespace pagerfs
