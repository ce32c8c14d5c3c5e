// One blob in the cache layer's directory (cache_layer.h has the layout):
// its two files on disk and, in memory, its sector map.
//
//   <hex>.data   the blob file's bytes at their own offsets; holes where absent
//   <hex>.map    a 64-byte header (magic, version, sector size, blob size, its
//                checksum), then one 8-byte entry per sector: kAbsent, or the
//                sector_checksum() of the stored bytes
//
// The functions here do the file I/O of one blob; which blobs and extents
// the cache keeps, and its budget, are the cache layer's (cache_layer.cc).
//
// Thread safety: a CachedBlob's entries are atomics, changed by compare and
// exchange, so readers, fills and evictions of its sectors never lock each
// other out; extents_held is the cache layer's, under its mutex; the rest
// of it is immutable. The functions are safe to call
// concurrently for different sectors.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace pagerfs::cache_disk {

// DIR/VERSION holds this; a cache of another version is wiped.
inline constexpr char kVersionText[] = "pagerfs-cache 1\n";

// Sector entry values: kAbsent; kPending (in memory only) a fill in
// progress; else the checksum of the stored sector, never one of these two.
inline constexpr uint64_t kAbsent = 0;
inline constexpr uint64_t kPending = 1;

// The checksum of sector `sector` holding `data`: never kAbsent or kPending.
uint64_t sector_checksum(std::span<const std::byte> data, uint64_t sector) noexcept;

struct CachedBlob {
  CachedBlob(const Digest& d, uint64_t blob_size, uint64_t sector_count)
      : digest(d), size(blob_size), sectors(sector_count), entries(new std::atomic<uint64_t>[sector_count]()) {}

  const Digest digest;
  const uint64_t size;     // of the blob file
  const uint64_t sectors;  // sector_count(size)
  std::unique_ptr<std::atomic<uint64_t>[]> entries;  // one per sector; see kAbsent/kPending
  // Extents of this blob in the layer's eviction order (holding present or
  // pending sectors). When the last one goes, the layer forgets the blob:
  // its memory follows what is cached. Guarded by the cache layer's mutex.
  uint64_t extents_held = 0;
};

// Creates an empty data file and a map with its header for a blob of
// `blob_size` bytes: new files, whatever was under the names (stale files of
// this blob, or a FIFO or a link someone left there). Readers of the old
// files keep their own descriptors and checksums.
Result<void> create_blob_files(const std::string& map_path, const std::string& data_path, uint32_t sector_size,
                               uint64_t blob_size);

// Reads the map at `map_path` (of a blob `digest`, data file at `data_path`):
// the blob with the entries of its stored sectors set. An unreadable or
// inconsistent map, one of another sector size, or a data file that is not a
// regular file (it would fail every read and fill), is an error: the caller
// drops both files.
Result<std::shared_ptr<CachedBlob>> load_blob_map(const std::string& map_path, const std::string& data_path,
                                                  const Digest& digest, uint32_t sector_size);

// Stores the checksums `sums` of sectors [first_sector, first_sector + n).
Result<void> write_map_entries(int map_fd, uint64_t first_sector, std::span<const uint64_t> sums,
                               const std::string& what);

// Marks sector `sector` absent in the map file (best effort: an entry left
// behind fails its check when read).
void clear_map_entry(int map_fd, uint64_t sector);

// Evicts the stored sectors of [first, end): absent in memory first, then in
// the map, then a hole punched in the data (map before data, so no crash
// leaves an entry over a punched hole that would pass its check). Pending
// sectors stay. A descriptor of -1 skips its file. Returns the number of
// sectors evicted.
uint64_t evict_sectors(CachedBlob& blob, uint64_t first, uint64_t end, uint32_t sector_size, int map_fd,
                       int data_fd);

// Frees the space of sectors [first, first + count) of a data file.
void punch_sectors(int data_fd, uint64_t first, uint64_t count, uint32_t sector_size) noexcept;

}  // namespace pagerfs::cache_disk
