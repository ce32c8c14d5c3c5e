#include "pager/chunk_cache.h"

namespace pagerfs {

DecodedChunk ChunkCache::get(const ChunkKey& key) {
  std::lock_guard lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void ChunkCache::put(const ChunkKey& key, DecodedChunk chunk) {
  const uint64_t size = chunk->size();
  if (size > budget_) return;
  std::lock_guard lock(mu_);
  if (index_.contains(key)) return;
  while (bytes_ + size > budget_ && !lru_.empty()) {
    bytes_ -= lru_.back().second->size();
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  // A failed allocation leaves the cache as it was (the chunk is not kept).
  lru_.emplace_front(key, std::move(chunk));
  try {
    index_.emplace(key, lru_.begin());
  } catch (...) {
    lru_.pop_front();
    throw;
  }
  bytes_ += size;
}

void ChunkCache::clear() {
  std::lock_guard lock(mu_);
  lru_.clear();
  index_.clear();
  bytes_ = 0;
}

uint64_t ChunkCache::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

}  // namespace pagerfs
