// libFuzzer target: the input is a whole blob file.
//
// Everything a reader does with an untrusted blob runs here: decode_header and
// decode_seek_table on the raw bytes, BlobReader::open, read_chunk on the
// first chunks, read() on a few ranges, and decompress_chunk on the raw bytes
// as a frame. Results are discarded; the fuzzer looks for crashes, leaks,
// out-of-bounds accesses and UB (build with -Db_sanitize=address,undefined).
//
// The header and the seek table carry XXH3 checksums, which random mutation
// rarely gets right. So each input is also parsed a second time with both
// checksums recomputed ("fixed up"), which lets the fuzzer reach the
// geometry checks and the chunk decoder. Seeds are plain blob files (see
// scripts/fuzz), written in format v2; each fixed-up input is parsed once
// more relabelled as the other version (v1 <-> v2), so both seek entry
// layouts (24 and 56 bytes) meet every input.
#include <xxhash.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "pagerfs/format/blob_format.h"
#include "pagerfs/format/blob_reader.h"
#include "pagerfs/format/chunk_codec.h"
#include "pagerfs/util/file.h"
#include "util/byte_codec.h"

namespace {

using pagerfs::BlobReader;
using pagerfs::load_le64;
using pagerfs::store_le64;
namespace format = pagerfs::format;

// Bounds on the work one input may cause.
constexpr uint64_t kMaxChunksDecoded = 64;
constexpr uint64_t kMaxChunkAllocation = format::kMaxChunkSize;  // 4 MiB
constexpr size_t kMaxReadSize = 256 * 1024;

// Header field offsets (man/pagerfs-store.5), for the checksum fix-up only.
constexpr size_t kOffVersion = 8;
constexpr size_t kOffSeekTableOffset = 40;
constexpr size_t kOffSeekTableChecksum = 48;
constexpr size_t kOffHeaderChecksum = 120;

// Recomputes the seek table and header checksums in place. Returns whether
// anything changed.
bool fix_up_checksums(std::vector<std::byte>& blob) {
  if (blob.size() < format::kHeaderSize) return false;
  const std::vector<std::byte> before(blob.begin(), blob.begin() + format::kHeaderSize);
  const uint64_t table_offset = load_le64(blob.data() + kOffSeekTableOffset);
  if (table_offset <= blob.size()) {
    store_le64(blob.data() + kOffSeekTableChecksum,
               XXH3_64bits(blob.data() + table_offset, blob.size() - table_offset));
  }
  store_le64(blob.data() + kOffHeaderChecksum, XXH3_64bits(blob.data(), kOffHeaderChecksum));
  return !std::equal(before.begin(), before.end(), blob.begin());
}

void check(bool condition) {
  if (!condition) __builtin_trap();
}

// decode_header / decode_seek_table straight on the bytes, without BlobReader.
void fuzz_decoders(std::span<const std::byte> bytes) {
  // A short span with a larger claimed file size, and the honest call.
  (void)format::decode_header(bytes.first(std::min<size_t>(bytes.size(), 64)), bytes.size());
  auto header = format::decode_header(bytes, bytes.size());
  if (!header) {
    (void)header.error().message();
    return;
  }
  const format::BlobHeader& h = header.value();
  check(h.seek_table_offset >= format::kHeaderSize && h.seek_table_offset <= bytes.size());
  check(bytes.size() - h.seek_table_offset == h.seek_table_size());
  auto table = format::decode_seek_table(h, bytes.subspan(h.seek_table_offset));
  if (table) {
    check(table.value().size() == h.chunk_count);
    for (const format::ChunkEntry& e : table.value()) {
      check(e.offset >= format::kHeaderSize && e.compressed_size > 0);
      check(e.offset + e.compressed_size <= h.seek_table_offset);
    }
  }
  // A table of the wrong size must be rejected, not read past.
  if (h.seek_table_offset < bytes.size()) {
    check(!format::decode_seek_table(h, bytes.subspan(h.seek_table_offset + 1)));
  }
}

void fuzz_reader(std::vector<std::byte> bytes) {
  auto opened = BlobReader::open(pagerfs::memory_random_access_file(std::move(bytes), "<fuzz>"));
  if (!opened) {
    (void)opened.error().message();
    return;
  }
  const BlobReader& reader = *opened.value();
  const format::BlobHeader& h = reader.header();
  check(reader.chunks().size() == h.chunk_count);
  check(h.version == format::kVersion1 || h.version == format::kVersion2);
  for (const format::ChunkEntry& e : reader.chunks()) check(h.has_chunk_sha256() || e.sha256 == pagerfs::Digest{});
  (void)reader.table_digest().hex();
  if (h.chunk_count > 0 && h.chunk_length(0) <= kMaxChunkAllocation) {
    // The XXH3-only check the daemon uses by default.
    auto frame = reader.read_frame(0);
    if (frame) {
      std::vector<std::byte> out(h.chunk_length(0));
      auto r = pagerfs::decompress_chunk(h, 0, reader.chunks()[0], frame.value(), out, pagerfs::ChunkVerify::xxh3);
      if (!r) (void)r.error().message();
    }
  }

  std::vector<std::byte> buffer;
  const uint64_t chunks = std::min<uint64_t>(h.chunk_count, kMaxChunksDecoded);
  for (uint64_t i = 0; i < chunks; ++i) {
    const uint32_t length = h.chunk_length(i);
    if (length > kMaxChunkAllocation) continue;
    check(length > 0 && length <= h.chunk_size);
    buffer.resize(length);
    auto r = reader.read_chunk(i, buffer);
    if (!r) (void)r.error().message();
  }
  // Out of range must fail cleanly.
  check(!reader.read_frame(h.chunk_count));

  // A few ranges: the start, across the first chunk boundary, the end, past
  // the end, and an empty read.
  struct Range {
    uint64_t offset;
    uint64_t length;
  };
  const uint64_t size = h.byte_size;
  const uint64_t cs = h.chunk_size;
  const Range ranges[] = {
      {0, 4096},
      {cs > 100 ? cs - 100 : 0, 200},
      {size > 10 ? size - 10 : 0, 64},
      {size, 16},
      {size + 1, 16},
      {size / 2, 0},
      {UINT64_MAX - 8, 16},
      {0, std::min<uint64_t>(size, kMaxReadSize)},
  };
  for (const Range& range : ranges) {
    const size_t length = static_cast<size_t>(std::min<uint64_t>(range.length, kMaxReadSize));
    buffer.assign(length, std::byte{0});
    auto r = reader.read(range.offset, buffer);
    if (!r) {
      (void)r.error().message();
      continue;
    }
    const uint64_t expected =
        range.offset >= size ? 0 : std::min<uint64_t>(length, size - range.offset);
    check(r.value() == expected);
  }
}

// The raw bytes as one chunk frame of a synthetic 4 KiB-chunk blob: exercises
// the frame validation in decompress_chunk without any checksum in the way.
void fuzz_frame(std::span<const std::byte> bytes) {
  if (bytes.empty()) return;
  format::BlobHeader h;
  h.chunk_size = format::kMinChunkSize;
  // The first byte picks the content size: a full chunk or a short last one.
  const uint8_t selector = static_cast<uint8_t>(bytes[0]);
  h.byte_size = selector & 1 ? format::kMinChunkSize : 1 + selector * 13u;
  h.chunk_count = format::chunk_count_for(h.byte_size, h.chunk_size);
  format::ChunkEntry entry;
  entry.offset = format::kHeaderSize;
  entry.compressed_size = static_cast<uint32_t>(bytes.size());
  std::vector<std::byte> out(h.chunk_length(0));
  auto r = pagerfs::decompress_chunk(h, 0, entry, bytes, out);
  if (!r) (void)r.error().message();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  std::vector<std::byte> blob(bytes.begin(), bytes.end());

  fuzz_decoders(bytes);
  fuzz_reader(blob);
  fuzz_frame(bytes);
  if (size > format::kHeaderSize) fuzz_frame(bytes.subspan(format::kHeaderSize));

  if (fix_up_checksums(blob)) {
    fuzz_decoders(blob);
    fuzz_reader(blob);
  }
  // The same bytes as the other version.
  if (blob.size() >= format::kHeaderSize) {
    const uint16_t version = pagerfs::load_le16(blob.data() + kOffVersion);
    pagerfs::store_le16(blob.data() + kOffVersion,
                        version == format::kVersion1 ? format::kVersion2 : format::kVersion1);
    fix_up_checksums(blob);
    fuzz_decoders(blob);
    fuzz_reader(std::move(blob));
  }
  return 0;
}
