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
// Thread safety: immutable after create(); read() may run concurrently from
// any number of threads (layers are thread-safe by contract).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "pagerfs/error.h"
#include "pagerfs/file.h"
#include "pagerfs/layer.h"

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

  // The blob file's size, from the first layer that knows the blob.
  Result<uint64_t> blob_size(const Digest& digest) const;

  // Fills `out` with bytes [offset, offset + out.size()) of the blob file;
  // the range must lie inside blob.size.
  Result<void> read(const BlobExtent& blob, uint64_t offset, std::span<std::byte> out) const;

  // Empties every cache layer.
  Result<void> drop_caches() const;

  const std::vector<std::shared_ptr<Layer>>& layers() const noexcept { return layers_; }
  uint32_t sector_size() const noexcept { return sector_size_; }

 private:
  LayerStack(std::vector<std::shared_ptr<Layer>> layers, std::shared_ptr<spdlog::logger> logger);

  Result<void> read_sectors(const BlobExtent& blob, uint64_t first_sector, std::span<std::byte> buf) const;
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

}  // namespace pagerfs
