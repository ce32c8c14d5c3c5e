// The bounded cache of decoded chunks (least recently used evicted first).
//
// Keyed by content digest, chunk size and index: the same content packed
// with the same chunk size decodes to the same bytes, whichever blob file
// or mount it came from.
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
  uint32_t chunk_size = 0;
  uint64_t index = 0;
  bool operator==(const ChunkKey&) const = default;
};

struct ChunkKeyHash {
  size_t operator()(const ChunkKey& k) const noexcept {
    return DigestHash{}(k.digest) ^ (k.index * 0x9e3779b97f4a7c15ull) ^ k.chunk_size;
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
