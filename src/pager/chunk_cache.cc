#include "pager/chunk_cache.h"

namespace pagerfs {

DecodedChunk ChunkCache::get(const ChunkKey& key) {
  MutexLock lock(mu_);
  const DecodedChunk* chunk = chunks_.get(key);
  return chunk ? *chunk : nullptr;
}

void ChunkCache::put(const ChunkKey& key, DecodedChunk chunk) {
  const uint64_t size = chunk->size();
  // Declared before the lock, so evicted chunks are freed after it is released.
  std::vector<DecodedChunk> evicted;
  MutexLock lock(mu_);
  if (chunks_.contains(key)) return;
  // Too large for the budget: not kept (insert() refuses it).
  chunks_.insert(key, std::move(chunk), size, [&](ChunkKey&&, DecodedChunk&& old, uint64_t) {
    try {
      evicted.push_back(std::move(old));
    } catch (...) {
      // No memory to move it out: `old` is freed here, under the lock.
    }
  });
}

void ChunkCache::clear() {
  MutexLock lock(mu_);
  chunks_.clear();
}

uint64_t ChunkCache::bytes() const {
  MutexLock lock(mu_);
  return chunks_.cost();
}

}  // namespace pagerfs
