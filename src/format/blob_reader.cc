#include "pagerfs/format/blob_reader.h"

#include <algorithm>
#include <cstring>

#include "pagerfs/format/chunk_codec.h"

namespace pagerfs {

Result<std::unique_ptr<BlobReader>> BlobReader::open(std::unique_ptr<RandomAccessFile> file) {
  const std::string name = file->name();
  auto fail = [&](const Error& e) { return e.with_context("'" + name + "'"); };
  std::array<std::byte, format::kHeaderSize> header_bytes{};
  const size_t header_read = std::min<uint64_t>(file->size(), header_bytes.size());
  if (auto r = file->read_exact(0, std::span(header_bytes).first(header_read)); !r) {
    return fail(r.error());
  }
  auto header = format::decode_header(std::span(header_bytes).first(header_read), file->size());
  if (!header) return fail(header.error());

  // The table size equals the file's remaining size (checked by
  // decode_header), so this allocation is bounded by the file itself.
  std::vector<std::byte> table(header.value().seek_table_size());
  if (auto r = file->read_exact(header.value().seek_table_offset, table); !r) {
    return fail(r.error());
  }
  auto chunks = format::decode_seek_table(header.value(), table);
  if (!chunks) return fail(chunks.error());
  const Digest anchor = format::table_digest(header.value(), table);
  return std::unique_ptr<BlobReader>(
      new BlobReader(std::move(file), header.value(), std::move(chunks).value(), anchor));
}

Result<std::unique_ptr<BlobReader>> BlobReader::open(const std::string& path, Symlinks symlinks) {
  PAGERFS_TRY(file, open_random_access_file(path, symlinks));
  return open(std::move(file));
}

Result<std::vector<std::byte>> BlobReader::read_frame(uint64_t index) const {
  if (index >= chunks_.size()) {
    return Error(errc::invalid_argument, "chunk " + std::to_string(index) + " out of range");
  }
  const format::ChunkEntry& entry = chunks_[index];
  std::vector<std::byte> frame(entry.compressed_size);
  PAGERFS_TRYV(file_->read_exact(entry.offset, frame));
  return frame;
}

Result<std::vector<std::byte>> BlobReader::read_frames(uint64_t first, uint64_t end) const {
  if (first >= end || end > chunks_.size()) {
    return Error(errc::invalid_argument, "chunks " + std::to_string(first) + ".." +
                                             std::to_string(end) + " out of range");
  }
  const uint64_t begin = chunks_[first].offset;
  const uint64_t stop = chunks_[end - 1].offset + chunks_[end - 1].compressed_size;
  std::vector<std::byte> frames(stop - begin);
  PAGERFS_TRYV(file_->read_exact(begin, frames));
  return frames;
}

Result<void> BlobReader::read_chunk(uint64_t index, std::span<std::byte> out) const {
  PAGERFS_TRY(frame, read_frame(index));
  if (auto r = decompress_chunk(header_, index, chunks_[index], frame, out); !r) {
    return r.error().with_context("'" + name() + "'");
  }
  return ok();
}

Result<size_t> BlobReader::read(uint64_t offset, std::span<std::byte> out) const {
  if (offset >= header_.byte_size || out.empty()) return size_t{0};
  const uint64_t end = offset + std::min<uint64_t>(out.size(), header_.byte_size - offset);
  const uint64_t chunk_size = header_.chunk_size;
  std::vector<std::byte> chunk;
  size_t done = 0;
  for (uint64_t pos = offset; pos < end;) {
    const uint64_t index = pos / chunk_size;
    const uint64_t chunk_start = index * chunk_size;
    const uint32_t length = header_.chunk_length(index);
    const uint64_t take = std::min<uint64_t>(end, chunk_start + length) - pos;
    if (pos == chunk_start && take == length) {
      // A whole chunk decodes straight into the caller's buffer.
      PAGERFS_TRYV(read_chunk(index, out.subspan(done, length)));
    } else {
      chunk.resize(length);
      PAGERFS_TRYV(read_chunk(index, chunk));
      std::memcpy(out.data() + done, chunk.data() + (pos - chunk_start), take);
    }
    done += take;
    pos += take;
  }
  return done;
}

}  // namespace pagerfs
