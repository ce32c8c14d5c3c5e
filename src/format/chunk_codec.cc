#include "pagerfs/format/chunk_codec.h"

#include <zstd.h>

#include <string>

#include "format/zstd_context_pool.h"

namespace pagerfs {

ZstdContextPool<ZSTD_CCtx>& compression_context_pool() {
  static ZstdContextPool<ZSTD_CCtx> pool;
  return pool;
}

ZstdContextPool<ZSTD_DCtx>& decompression_context_pool() {
  static ZstdContextPool<ZSTD_DCtx> pool;
  return pool;
}

namespace {

Error zstd_error(const std::string& where, size_t code) {
  return Error(errc::corrupt_blob, where + ZSTD_getErrorName(code));
}

}  // namespace

Result<void> compress_chunk(std::span<const std::byte> data, int level, std::vector<std::byte>* out) {
  auto cctx = compression_context_pool().acquire();
  ZSTD_CCtx_reset(cctx.get(), ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_contentSizeFlag, 1);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 0);
  out->resize(ZSTD_compressBound(data.size()));
  const size_t n = ZSTD_compress2(cctx.get(), out->data(), out->size(), data.data(), data.size());
  if (ZSTD_isError(n)) {
    return Error(std::make_error_code(std::errc::io_error),
                 std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
  }
  out->resize(n);
  return ok();
}

Result<void> decompress_chunk(const format::BlobHeader& header, uint64_t index,
                              const format::ChunkEntry& entry, std::span<const std::byte> frame,
                              std::span<std::byte> out, ChunkVerify verify) {
  const std::string where = "chunk " + std::to_string(index) + ": ";
  const uint32_t expected = header.chunk_length(index);
  if (out.size() != expected || frame.size() != entry.compressed_size) {
    return Error(errc::invalid_argument, where + "buffer sizes do not match the seek table");
  }
  // One frame, exactly filling its slot, declaring exactly the chunk's length.
  const size_t frame_size = ZSTD_findFrameCompressedSize(frame.data(), frame.size());
  if (ZSTD_isError(frame_size)) return zstd_error(where + "bad zstd frame: ", frame_size);
  if (frame_size != frame.size()) {
    return Error(errc::corrupt_blob, where + "trailing bytes after the zstd frame");
  }
  const unsigned long long content = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (content != expected) {
    return Error(errc::corrupt_blob, where + "zstd frame declares " +
                                         (content == ZSTD_CONTENTSIZE_UNKNOWN ||
                                                  content == ZSTD_CONTENTSIZE_ERROR
                                              ? std::string("no valid size")
                                              : std::to_string(content) + " bytes") +
                                         ", expected " + std::to_string(expected));
  }
  auto dctx = decompression_context_pool().acquire();
  ZSTD_DCtx_reset(dctx.get(), ZSTD_reset_session_and_parameters);
  const size_t n = ZSTD_decompressDCtx(dctx.get(), out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(n)) return zstd_error(where + "zstd: ", n);
  if (n != expected) {
    return Error(errc::corrupt_blob, where + "decoded " + std::to_string(n) + " bytes, expected " +
                                         std::to_string(expected));
  }
  if (format::chunk_checksum(out) != entry.checksum) {
    return Error(errc::checksum_mismatch, where + "checksum mismatch in decoded bytes");
  }
  if (verify == ChunkVerify::sha256 && header.has_chunk_sha256() &&
      format::chunk_sha256(out) != entry.sha256) {
    // Its XXH3 matched: not damage but bytes made to pass the fast check.
    return Error(errc::digest_mismatch, where + "SHA-256 mismatch in decoded bytes (XXH3 matched)");
  }
  return ok();
}

}  // namespace pagerfs
