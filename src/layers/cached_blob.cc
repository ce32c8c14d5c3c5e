#include "layers/cached_blob.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include "pagerfs/layers/layer.h"
#include "layers/cache_map_header.h"
#include "util/posix_io.h"
#include "util/safe_open.h"
#include "util/unique_fd.h"

namespace pagerfs::cache_disk {

uint64_t sector_checksum(std::span<const std::byte> data, uint64_t sector) noexcept {
  const uint64_t h = XXH3_64bits_withSeed(data.data(), data.size(), sector);
  return h <= kPending ? h + 2 : h;
}

Result<void> create_blob_files(const std::string& map_path, const std::string& data_path, uint32_t sector_size,
                               uint64_t blob_size) {
  for (const std::string& path : {map_path, data_path}) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Error::from_errno(errno, "replace '" + path + "'");
  }
  if (auto d = open_regular_file(data_path, O_RDWR | O_CREAT | O_EXCL, 0600); !d) return d.error();
  PAGERFS_TRY(m, open_regular_file(map_path, O_RDWR | O_CREAT | O_EXCL, 0600));
  PAGERFS_TRYV(pwrite_all(m.get(), encode_map_header({sector_size, blob_size}), 0, "'" + map_path + "'"));
  const uint64_t sectors = BlobExtent{Digest(), blob_size}.sector_count(sector_size);
  if (::ftruncate(m.get(), static_cast<off_t>(kMapHeaderSize + 8 * sectors)) != 0) {
    return Error::from_errno(errno, "extend '" + map_path + "'");
  }
  return ok();
}

Result<std::shared_ptr<CachedBlob>> load_blob_map(const std::string& map_path, const std::string& data_path,
                                                  const Digest& digest, uint32_t sector_size) {
  PAGERFS_TRY(fd, open_regular_file(map_path, O_RDONLY));  // a FIFO or a link is dropped, not waited on
  // Its data file too: a map over a FIFO would fail every read and fill of
  // the blob until the next start; dropped now, the blob is cached afresh.
  if (struct stat st {}; ::lstat(data_path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    return Error(errc::not_a_regular_file,
                 "'" + data_path + "' is not a regular file (" + file_type_name(st.st_mode) + ")");
  }
  std::array<std::byte, kMapHeaderSize> h{};
  PAGERFS_TRY(n, pread_some(fd.get(), h, 0, "map"));
  PAGERFS_TRY(header, decode_map_header(std::span(h).first(n), sector_size));
  const uint64_t size = header.blob_size;
  const uint64_t sectors = BlobExtent{Digest(), size}.sector_count(sector_size);
  std::vector<uint64_t> entries(sectors);
  PAGERFS_TRY(got, pread_some(fd.get(), std::as_writable_bytes(std::span(entries)), kMapHeaderSize, "map"));
  if (got != sectors * 8) return Error(errc::corrupt_blob, "truncated map");
  auto blob = std::make_shared<CachedBlob>(digest, size, sectors);
  for (uint64_t s = 0; s < sectors; ++s) {
    if (entries[s] > kPending) blob->entries[s].store(entries[s], std::memory_order_relaxed);
  }
  return blob;
}

Result<void> write_map_entries(int map_fd, uint64_t first_sector, std::span<const uint64_t> sums,
                               const std::string& what) {
  return pwrite_all(map_fd, std::as_bytes(sums), kMapHeaderSize + 8 * first_sector, what);
}

void clear_map_entry(int map_fd, uint64_t sector) {
  const std::array<std::byte, 8> zero{};
  (void)pwrite_all(map_fd, zero, kMapHeaderSize + 8 * sector, "map");
}

uint64_t evict_sectors(CachedBlob& blob, uint64_t first, uint64_t end, uint32_t sector_size, int map_fd,
                       int data_fd) {
  uint64_t freed = 0;
  for (uint64_t s = first; s < end;) {
    uint64_t v = blob.entries[s].load(std::memory_order_acquire);
    if (v <= kPending || !blob.entries[s].compare_exchange_strong(v, kAbsent)) {
      ++s;
      continue;
    }
    // A run of present sectors, each made absent in memory as it is found.
    uint64_t run_end = s + 1;
    while (run_end < end) {
      uint64_t w = blob.entries[run_end].load(std::memory_order_acquire);
      if (w <= kPending || !blob.entries[run_end].compare_exchange_strong(w, kAbsent)) break;
      ++run_end;
    }
    const uint64_t n = run_end - s;
    if (map_fd >= 0) {
      std::vector<std::byte> zeros(n * 8);
      (void)pwrite_all(map_fd, zeros, kMapHeaderSize + 8 * s, "map");
    }
    if (data_fd >= 0) punch_sectors(data_fd, s, n, sector_size);
    freed += n;
    s = run_end;
  }
  return freed;
}

void punch_sectors(int data_fd, uint64_t first, uint64_t count, uint32_t sector_size) noexcept {
  const uint64_t ss = sector_size;
  ::fallocate(data_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(first * ss),
              static_cast<off_t>(count * ss));
}

}  // namespace pagerfs::cache_disk
