#include "pagerfs/layers/local_layer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "util/fd_cache.h"
#include "util/posix_io.h"

namespace pagerfs {
namespace {

class LocalLayer final : public Layer {
 public:
  LocalLayer(const Store& store, const LocalLayerOptions& options)
      : store_(store), sector_size_(options.sector_size), complete_(options.complete), fds_(options.max_open_files) {}

  std::string_view type() const noexcept override { return "local"; }
  uint32_t sector_size() const noexcept override { return sector_size_; }
  bool is_complete() const noexcept override { return complete_; }

  Result<std::optional<uint64_t>> blob_size(const Digest& digest) override {
    auto opened = fds_.open(store_.blob_path(digest), O_RDONLY);
    if (!complete_ && !opened && is_absent(opened.error())) return std::optional<uint64_t>();
    PAGERFS_TRY(fd, std::move(opened));
    struct stat st {};
    if (::fstat(fd->get(), &st) != 0) return Error::from_errno(errno, "stat " + digest.str());
    return std::optional<uint64_t>(static_cast<uint64_t>(st.st_size));
  }

  Result<void> read(const BlobExtent& blob, std::span<std::byte> out, SectorMarker& marker) override {
    const std::string path = store_.blob_path(blob.digest);
    auto opened = fds_.open(path, O_RDONLY);
    if (!complete_ && !opened && is_absent(opened.error())) return ok();  // for the layer below
    PAGERFS_TRY(fd, std::move(opened));
    PAGERFS_TRY(got, pread_some(fd->get(), out, marker.first() * sector_size_, "'" + path + "'"));
    if (got < out.size()) {
      // The file is shorter than the size the blob was opened with: it was
      // truncated or replaced under us.
      fds_.forget(path);
      return Error(std::make_error_code(std::errc::io_error),
                   "'" + path + "' is shorter than " + std::to_string(blob.size) + " bytes");
    }
    marker.mark(marker.first(), marker.count());
    return ok();
  }

  // The bytes read failed their check: reopen the file at the next read, in
  // case it was repaired by replacing it.
  Result<void> invalidate(const BlobExtent& blob, uint64_t, uint64_t) override {
    fds_.forget(store_.blob_path(blob.digest));
    return ok();
  }

 private:
  static bool is_absent(const Error& e) noexcept {
    return e.code() == std::errc::no_such_file_or_directory;
  }

  const Store store_;
  const uint32_t sector_size_;
  const bool complete_;
  FdCache fds_;
};

}  // namespace

std::shared_ptr<Layer> make_local_layer(const Store& store, const LocalLayerOptions& options) {
  return std::make_shared<LocalLayer>(store, options);
}

}  // namespace pagerfs
