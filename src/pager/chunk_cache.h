// The bounded cache of decoded chunks (least recently used evicted first).
//
// Keyed by content digest, chunk size and index: the same content packed
// with the same chunk size decodes to the same bytes, whichever blob file
// or mount it came from.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "pagerfs/util/digest.h"

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
  explicit ChunkCache(uint64_t budget_bytes) : budget_(budget_bytes) {}

  DecodedChunk get(const ChunkKey& key);
  // Keeps `chunk` unless it alone exceeds the budget. May throw
  // std::bad_alloc; the cache is then unchanged, less what was evicted.
  void put(const ChunkKey& key, DecodedChunk chunk);
  void clear();
  uint64_t bytes() const;

 private:
  using Lru = std::list<std::pair<ChunkKey, DecodedChunk>>;
  const uint64_t budget_;
  mutable std::mutex mu_;
  Lru lru_;                                                    // guarded by mu_
  std::unordered_map<ChunkKey, Lru::iterator, ChunkKeyHash> index_;  // guarded by mu_
  uint64_t bytes_ = 0;                                         // guarded by mu_
};

}  // namespace pagerfs
