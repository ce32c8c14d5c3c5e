// The bounded cache of decoded chunks (least recently used evicted first).
//
// Keyed by content digest, table digest and index. The table digest
// (format::table_digest) covers the chunk size and every chunk's checksums,
// so the same content packed the same way shares its chunks whichever blob
// file or mount it came from, and two blobs that claim one content digest
// but differ in their seek tables (a forged or damaged copy, a v1 and a v2
// blob) never share decoded chunks: a chunk verified against one table is
// never served to a reader that anchored another.
//
// Thread safety: all methods may be called concurrently (one internal
// mutex; evicted chunks are freed after it is released).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "pagerfs/util/digest.h"
#include "util/lru_cache.h"
#include "util/mutex.h"

namespace pagerfs {

using DecodedChunk = std::shared_ptr<const std::vector<std::byte>>;

struct ChunkKey {
  Digest digest;
  Digest table_digest;
  uint64_t index = 0;
  bool operator==(const ChunkKey&) const = default;
};

struct ChunkKeyHash {
  size_t operator()(const ChunkKey& k) const noexcept {
    return DigestHash{}(k.digest) ^ (DigestHash{}(k.table_digest) * 31) ^
           (k.index * 0x9e3779b97f4a7c15ull);
  }
};

class ChunkCache {
 public:
  explicit ChunkCache(uint64_t budget_bytes) : chunks_(budget_bytes) {}

  DecodedChunk get(const ChunkKey& key) EXCLUDES(mu_);
  // Keeps `chunk` unless it alone exceeds the budget. May throw
  // std::bad_alloc; the cache is then unchanged, less what was evicted.
  void put(const ChunkKey& key, DecodedChunk chunk) EXCLUDES(mu_);
  void clear() EXCLUDES(mu_);
  uint64_t bytes() const EXCLUDES(mu_);

 private:
  mutable Mutex mu_;
  // Cost: the decoded size in bytes, against the budget.
  LruCache<ChunkKey, DecodedChunk, ChunkKeyHash> chunks_ GUARDED_BY(mu_);
};

}  // namespace pagerfs
