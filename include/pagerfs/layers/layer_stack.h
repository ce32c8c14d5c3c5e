// An ordered stack of layers, top (fastest) first, that reads byte ranges of
// blob files.
//
// A read is widened to whole sectors and offered to each layer in turn; each
// layer serves what it holds and only the unmarked runs, coalesced, fall to
// the next. Whatever lower layers returned is then written into the read
// caches above them (write_no_overwrite). A failing layer that is not the
// bottom (a broken cache disk) is counted and logged, rate-limited, and its
// sectors fall through: a read that a lower layer can answer never fails
// because of a cache. Fill failures are likewise counted and ignored.
//
// Sectors from an untrusted layer (a remote store) are never cached here:
// the pager verifies them by SHA-256 and then fill()s them.
//
// The stack cannot tell good compressed bytes from bad: that is the pager's
// check (every chunk's XXH3). So the caches may be filled with bytes that
// later fail it (one bad read from the store). The pager then heals them:
// invalidate() drops those sectors from every cache (and stale handles of
// the store's file), read(below_caches) fetches them again from the layers
// below, and fill() caches them once they verified. Nothing damaged stays
// cached past the next read that needs it.
//
// Thread safety: immutable after create(); read() may run concurrently from
// any number of threads (layers are thread-safe by contract).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "pagerfs/format/blob_format.h"
#include "pagerfs/util/error.h"
#include "pagerfs/util/file.h"
#include "pagerfs/layers/layer.h"

namespace spdlog {
class logger;
}

namespace pagerfs {

class LayerStack {
 public:
  // Validates the stack: at least one layer, equal sector sizes, read caches
  // only above the bottom, and a complete bottom layer.
  static Result<std::shared_ptr<LayerStack>> create(std::vector<std::shared_ptr<Layer>> layers,
                                                    std::shared_ptr<spdlog::logger> logger);

  // The blob file's size, from the first store (top down) that knows the
  // blob; from a cache only if no store could answer.
  Result<uint64_t> blob_size(const Digest& digest) const;

  // True when a layer's bytes may be forged (Layer::is_trusted): the pager
  // then checks every chunk by SHA-256 and fills the caches itself.
  bool has_untrusted_layers() const noexcept;

  enum class ReadMode {
    normal,        // every layer, top first; fill the caches with what came from below
    below_caches,  // skip the read caches and fill nothing (a re-read after damage)
  };

  // Fills `out` with bytes [offset, offset + out.size()) of the blob file;
  // the range must lie inside blob.size.
  Result<void> read(const BlobExtent& blob, uint64_t offset, std::span<std::byte> out,
                    ReadMode mode = ReadMode::normal) const;

  // Reads the whole sectors that hold [offset, offset + length) of the blob
  // file (the range must lie inside blob.size; the blob's last sector is
  // short); `*start` gets where they begin. For a caller that will fill()
  // them once it checked them: fill() stores whole sectors only.
  Result<std::vector<std::byte>> read_whole_sectors(const BlobExtent& blob, uint64_t offset, uint64_t length,
                                                    uint64_t* start) const;

  // Drops every sector that overlaps [offset, offset + length) of the blob
  // file from every read cache, and lets every layer forget what it holds
  // of the blob file (Layer::invalidate). Failures are counted and logged
  // like fill failures (a cache that cannot forget is checked again).
  void invalidate(const BlobExtent& blob, uint64_t offset, uint64_t length) const;

  // Stores `data`, bytes [offset, offset + data.size()) of the blob file that
  // the caller verified, in every read cache: the whole sectors it covers
  // (and the blob's short last sector if it ends the blob); partial sectors
  // at either end are left out.
  void fill(const BlobExtent& blob, uint64_t offset, std::span<const std::byte> data) const;

  // Empties every cache layer.
  Result<void> drop_caches() const;

  const std::vector<std::shared_ptr<Layer>>& layers() const noexcept { return layers_; }
  uint32_t sector_size() const noexcept { return sector_size_; }

 private:
  LayerStack(std::vector<std::shared_ptr<Layer>> layers, std::shared_ptr<spdlog::logger> logger);

  Result<void> read_sectors(const BlobExtent& blob, uint64_t first_sector, std::span<std::byte> buf,
                            ReadMode mode) const;
  void fill_caches(const BlobExtent& blob, uint64_t first_sector, std::span<const std::byte> buf,
                   const std::vector<uint8_t>& source) const;
  void report_layer_fault(size_t layer, const char* what, const Error& error) const;

  std::vector<std::shared_ptr<Layer>> layers_;
  std::shared_ptr<spdlog::logger> logger_;
  uint32_t sector_size_;
  struct FaultLog;
  std::unique_ptr<FaultLog> fault_log_;
};

// The blob file `digest` read through `stack`, for BlobReader::open().
Result<std::unique_ptr<RandomAccessFile>> open_blob_through(std::shared_ptr<const LayerStack> stack,
                                                            const Digest& digest);

// The header of blob file `blob` (blob.size from LayerStack::blob_size), read
// through `stack` and validated against the file's size: a blob's geometry
// (byte size, chunk size) from its first format::kHeaderSize bytes, without
// its seek table. A header that does not validate is an error naming the
// digest.
Result<format::BlobHeader> read_blob_header(const LayerStack& stack, const BlobExtent& blob);

}  // namespace pagerfs
