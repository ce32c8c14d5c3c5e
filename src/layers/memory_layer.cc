#include "pagerfs/layers/memory_layer.h"

#include <cstring>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace pagerfs {
namespace {

struct SectorKey {
  Digest digest;
  uint64_t sector;
  bool operator==(const SectorKey&) const = default;
};

struct SectorKeyHash {
  size_t operator()(const SectorKey& k) const noexcept {
    return DigestHash{}(k.digest) ^ (k.sector * 0x9e3779b97f4a7c15ull);
  }
};

class MemoryLayer final : public Layer {
 public:
  MemoryLayer(uint64_t budget, uint32_t sector_size) : budget_(budget), sector_size_(sector_size) {}

  std::string_view type() const noexcept override { return "memory"; }
  uint32_t sector_size() const noexcept override { return sector_size_; }
  bool is_read_cache() const noexcept override { return true; }

  Result<std::optional<uint64_t>> blob_size(const Digest&) override { return std::optional<uint64_t>(); }

  Result<void> read(const BlobExtent& blob, std::span<std::byte> out, SectorMarker& marker) override {
    std::lock_guard lock(mu_);
    for (uint64_t i = 0; i < marker.count(); ++i) {
      auto it = index_.find({blob.digest, marker.first() + i});
      if (it == index_.end()) continue;
      const std::vector<std::byte>& data = it->second->second;
      const uint64_t from = i * sector_size_;
      const uint64_t len = std::min<uint64_t>(sector_size_, out.size() - from);
      if (data.size() != len) continue;  // stored for a blob of another size
      std::memcpy(out.data() + from, data.data(), len);
      lru_.splice(lru_.begin(), lru_, it->second);
      marker.mark(marker.first() + i);
    }
    return ok();
  }

  Result<void> write_no_overwrite(const BlobExtent& blob, uint64_t first_sector,
                                  std::span<const std::byte> data) override {
    std::lock_guard lock(mu_);
    bool stored = false;
    for (uint64_t from = 0; from < data.size(); from += sector_size_) {
      const SectorKey key{blob.digest, first_sector + from / sector_size_};
      if (index_.contains(key)) continue;
      const uint64_t len = std::min<uint64_t>(sector_size_, data.size() - from);
      if (len > budget_) break;
      while (used_ + len > budget_) evict_one();
      lru_.emplace_front(key, std::vector<std::byte>(data.begin() + static_cast<ptrdiff_t>(from),
                                                     data.begin() + static_cast<ptrdiff_t>(from + len)));
      index_[key] = lru_.begin();
      used_ += len;
      stats().bytes_filled.fetch_add(len, std::memory_order_relaxed);
      stored = true;
    }
    if (stored) stats().fills.fetch_add(1, std::memory_order_relaxed);
    stats().bytes_cached.store(used_, std::memory_order_relaxed);
    return ok();
  }

  Result<void> invalidate(const BlobExtent& blob, uint64_t first_sector, uint64_t count) override {
    std::lock_guard lock(mu_);
    uint64_t dropped = 0;
    for (uint64_t s = first_sector; s < first_sector + count; ++s) {
      auto it = index_.find({blob.digest, s});
      if (it == index_.end()) continue;
      used_ -= it->second->second.size();
      lru_.erase(it->second);
      index_.erase(it);
      ++dropped;
    }
    stats().sectors_invalidated.fetch_add(dropped, std::memory_order_relaxed);
    stats().bytes_cached.store(used_, std::memory_order_relaxed);
    return ok();
  }

  Result<void> drop() override {
    std::lock_guard lock(mu_);
    while (!lru_.empty()) evict_one();
    stats().bytes_cached.store(0, std::memory_order_relaxed);
    return ok();
  }

 private:
  using Lru = std::list<std::pair<SectorKey, std::vector<std::byte>>>;

  void evict_one() {  // requires mu_
    const uint64_t len = lru_.back().second.size();
    index_.erase(lru_.back().first);
    lru_.pop_back();
    used_ -= len;
    stats().evictions.fetch_add(1, std::memory_order_relaxed);
    stats().bytes_evicted.fetch_add(len, std::memory_order_relaxed);
  }

  const uint64_t budget_;
  const uint32_t sector_size_;
  std::mutex mu_;
  Lru lru_;                                                          // guarded by mu_
  std::unordered_map<SectorKey, Lru::iterator, SectorKeyHash> index_;  // guarded by mu_
  uint64_t used_ = 0;                                                // guarded by mu_
};

}  // namespace

std::shared_ptr<Layer> make_memory_layer(uint64_t budget_bytes, uint32_t sector_size) {
  return std::make_shared<MemoryLayer>(budget_bytes, sector_size);
}

}  // namespace pagerfs
