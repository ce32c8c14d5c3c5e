// Compressing and verified decompressing of single chunks (one zstd frame each).
//
// Thread safety: both functions may run concurrently on any threads; they
// borrow zstd contexts from a shared pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "pagerfs/format/blob_format.h"
#include "pagerfs/util/error.h"

namespace pagerfs {

inline constexpr int kDefaultCompressionLevel = 3;

// How a decoded chunk is checked. XXH3-64 is always checked (it catches
// damage); `sha256` also checks a v2 chunk against its seek entry's SHA-256,
// which is what makes a chunk as trustworthy as the table digest that
// anchors its seek table (a forger can match an XXH3, not a SHA-256). A v1
// chunk has no SHA-256: XXH3 only, whatever is asked.
enum class ChunkVerify { xxh3, sha256 };

// Compresses `data` into one zstd frame (content size recorded, no zstd
// checksum: the seek table holds one) and replaces `*out` with it.
Result<void> compress_chunk(std::span<const std::byte> data, int level, std::vector<std::byte>* out);

// Decodes chunk `index` of a blob from its frame into `out`, which must be
// exactly header.chunk_length(index) bytes. Fails with errc::corrupt_blob if
// the frame is not one zstd frame of that content size, and with
// errc::checksum_mismatch if the decoded bytes differ from the seek table's
// XXH3 checksum, errc::digest_mismatch if (verify == sha256, v2) from its
// SHA-256: no byte of a damaged or forged chunk is ever accepted.
Result<void> decompress_chunk(const format::BlobHeader& header, uint64_t index,
                              const format::ChunkEntry& entry, std::span<const std::byte> frame,
                              std::span<std::byte> out, ChunkVerify verify = ChunkVerify::sha256);

}  // namespace pagerfs
