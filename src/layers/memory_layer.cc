#include "pagerfs/layers/memory_layer.h"

#include <cstring>
#include <vector>

#include "util/lru_cache.h"
#include "util/mutex.h"

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

// Thread safety: every Layer call may come from any thread; one mutex
// guards the sectors.
class MemoryLayer final : public Layer {
 public:
  MemoryLayer(uint64_t budget, uint32_t sector_size) : sector_size_(sector_size), sectors_(budget) {}

  std::string_view type() const noexcept override { return "memory"; }
  uint32_t sector_size() const noexcept override { return sector_size_; }
  bool is_read_cache() const noexcept override { return true; }

  Result<std::optional<uint64_t>> blob_size(const Digest&) override { return std::optional<uint64_t>(); }

  Result<void> read(const BlobExtent& blob, std::span<std::byte> out, SectorMarker& marker) override {
    MutexLock lock(mu_);
    for (uint64_t i = 0; i < marker.count(); ++i) {
      const SectorKey key{blob.digest, marker.first() + i};
      const std::vector<std::byte>* data = sectors_.get(key);  // now the most recently used
      if (!data) continue;
      const uint64_t from = i * sector_size_;
      const uint64_t len = std::min<uint64_t>(sector_size_, out.size() - from);
      if (data->size() != len) continue;  // stored for a blob of another size
      std::memcpy(out.data() + from, data->data(), len);
      marker.mark(marker.first() + i);
    }
    return ok();
  }

  Result<void> write_no_overwrite(const BlobExtent& blob, uint64_t first_sector,
                                  std::span<const std::byte> data) override {
    MutexLock lock(mu_);
    bool stored = false;
    for (uint64_t from = 0; from < data.size(); from += sector_size_) {
      const SectorKey key{blob.digest, first_sector + from / sector_size_};
      if (sectors_.contains(key)) continue;
      const uint64_t len = std::min<uint64_t>(sector_size_, data.size() - from);
      if (len > sectors_.capacity()) break;
      sectors_.insert(key,
                      std::vector<std::byte>(data.begin() + static_cast<ptrdiff_t>(from),
                                             data.begin() + static_cast<ptrdiff_t>(from + len)),
                      len, EvictionCounter{stats()});
      stats().bytes_filled.fetch_add(len, std::memory_order_relaxed);
      stored = true;
    }
    if (stored) stats().fills.fetch_add(1, std::memory_order_relaxed);
    stats().bytes_cached.store(sectors_.cost(), std::memory_order_relaxed);
    return ok();
  }

  Result<void> invalidate(const BlobExtent& blob, uint64_t first_sector, uint64_t count) override {
    MutexLock lock(mu_);
    uint64_t dropped = 0;
    for (uint64_t s = first_sector; s < first_sector + count; ++s) {
      if (sectors_.erase({blob.digest, s})) ++dropped;
    }
    stats().sectors_invalidated.fetch_add(dropped, std::memory_order_relaxed);
    stats().bytes_cached.store(sectors_.cost(), std::memory_order_relaxed);
    return ok();
  }

  Result<void> drop() override {
    MutexLock lock(mu_);
    while (sectors_.evict_oldest(EvictionCounter{stats()})) {
    }
    stats().bytes_cached.store(0, std::memory_order_relaxed);
    return ok();
  }

 private:
  // Counts what the LruCache evicts.
  struct EvictionCounter {
    LayerStats& stats;
    void operator()(SectorKey&&, std::vector<std::byte>&&, uint64_t bytes) const noexcept {
      stats.evictions.fetch_add(1, std::memory_order_relaxed);
      stats.bytes_evicted.fetch_add(bytes, std::memory_order_relaxed);
    }
  };

  const uint32_t sector_size_;
  Mutex mu_;
  // Cost: the sector's bytes, against the budget.
  LruCache<SectorKey, std::vector<std::byte>, SectorKeyHash> sectors_ GUARDED_BY(mu_);
};

}  // namespace

std::shared_ptr<Layer> make_memory_layer(uint64_t budget_bytes, uint32_t sector_size) {
  return std::make_shared<MemoryLayer>(budget_bytes, sector_size);
}

}  // namespace pagerfs
