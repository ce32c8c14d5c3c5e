// The `cache` layer: a bounded, crash-safe read cache of blob file sectors
// in a directory on a (fast) cache disk. It persists across mounts.
//
//   DIR/VERSION                 "pagerfs-cache 1"; another version is wiped
//   DIR/blobs/<hex>.data        sparse copy of the blob file's cached sectors
//   DIR/blobs/<hex>.map         header + one 8-byte entry per sector:
//                               0 = absent, else the XXH3-64 of the sector
//
// Crash safety: a fill writes the data before its map entries, and every
// sector read back is checked against its entry, so a kill -9 (or power
// loss) at any point can leave at worst sectors that are re-fetched from
// below, never bytes that were not completely stored. A sector whose check
// fails is dropped and refetched.
//
// The budget is enforced in extents of `extent_sectors` sectors, least
// recently used first, by punching holes in the data files; ENOSPC, EIO or a
// vanished directory fail the fill (the stack counts and ignores it).
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "pagerfs/util/error.h"
#include "pagerfs/layers/layer.h"

namespace spdlog {
class logger;
}

namespace pagerfs {

struct CacheLayerOptions {
  uint64_t budget_bytes = uint64_t{1} << 30;
  uint32_t sector_size = 4096;
  uint32_t extent_sectors = 64;  // eviction unit: 256 KiB with 4 KiB sectors
  size_t max_open_files = 256;
};

// Opens (creating if needed) the cache in `dir` and indexes what it holds.
// Fails with a one-line reason if the directory cannot be used.
Result<std::shared_ptr<Layer>> make_cache_layer(const std::string& dir,
                                                const CacheLayerOptions& options,
                                                std::shared_ptr<spdlog::logger> logger = nullptr);

}  // namespace pagerfs
