// A scriptable in-memory layer for layer stack tests: holds chosen sectors
// of chosen blobs and records every read and fill it sees.
//
// Thread safety: all methods lock one mutex.
#pragma once

#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "pagerfs/layers/layer.h"

namespace pagerfs::testing {

class FakeLayer : public Layer {
 public:
  struct Call {
    uint64_t first;
    uint64_t count;
    bool operator==(const Call&) const = default;
  };

  FakeLayer(std::string name, bool complete, bool read_cache, uint32_t sector_size = 4096)
      : name_(std::move(name)), complete_(complete), read_cache_(read_cache), sector_size_(sector_size) {}

  // Holds `content` as blob `digest`, with only `sectors` present (all if empty and complete).
  void add(const Digest& digest, std::vector<std::byte> content, std::set<uint64_t> sectors = {}) {
    std::lock_guard lock(mu_);
    if (sectors.empty() && complete_) {
      for (uint64_t s = 0; s * sector_size_ < content.size(); ++s) sectors.insert(s);
    }
    blobs_[digest] = {std::move(content), std::move(sectors)};
  }

  std::vector<Call> reads() const { std::lock_guard lock(mu_); return reads_; }
  std::vector<Call> fills() const { std::lock_guard lock(mu_); return fills_; }
  std::vector<Call> invalidations() const { std::lock_guard lock(mu_); return invalidations_; }
  // The bytes held for `d` (meaningful in the sectors present()).
  std::vector<std::byte> content(const Digest& d) const {
    std::lock_guard lock(mu_);
    auto it = blobs_.find(d);
    return it == blobs_.end() ? std::vector<std::byte>{} : it->second.content;
  }
  std::set<uint64_t> present(const Digest& d) const {
    std::lock_guard lock(mu_);
    auto it = blobs_.find(d);
    return it == blobs_.end() ? std::set<uint64_t>{} : it->second.present;
  }

  std::string_view type() const noexcept override { return name_; }
  uint32_t sector_size() const noexcept override { return sector_size_; }
  bool is_read_cache() const noexcept override { return read_cache_; }
  bool is_complete() const noexcept override { return complete_; }
  bool is_trusted() const noexcept override { return trusted_; }
  // An untrusted store: what a remote is (Layer::is_trusted).
  void set_trusted(bool trusted) noexcept { trusted_ = trusted; }

  Result<std::optional<uint64_t>> blob_size(const Digest& d) override {
    std::lock_guard lock(mu_);
    auto it = blobs_.find(d);
    if (it == blobs_.end()) {
      if (complete_) return Error::from_errno(ENOENT, "fake blob");
      return std::optional<uint64_t>();
    }
    return std::optional<uint64_t>(it->second.content.size());
  }

  Result<void> read(const BlobExtent& blob, std::span<std::byte> out, SectorMarker& marker) override {
    std::lock_guard lock(mu_);
    reads_.push_back({marker.first(), marker.count()});
    auto it = blobs_.find(blob.digest);
    if (it == blobs_.end()) return ok();
    for (uint64_t i = 0; i < marker.count(); ++i) {
      const uint64_t s = marker.first() + i;
      if (!it->second.present.contains(s)) continue;
      const uint64_t len = std::min<uint64_t>(sector_size_, out.size() - i * sector_size_);
      std::memcpy(out.data() + i * sector_size_, it->second.content.data() + s * sector_size_, len);
      marker.mark(s);
    }
    return ok();
  }

  Result<void> write_no_overwrite(const BlobExtent& blob, uint64_t first, std::span<const std::byte> data) override {
    std::lock_guard lock(mu_);
    const uint64_t count = (data.size() + sector_size_ - 1) / sector_size_;
    fills_.push_back({first, count});
    auto& b = blobs_[blob.digest];
    b.content.resize(blob.size);
    for (uint64_t i = 0; i < count; ++i) {
      if (!b.present.insert(first + i).second) continue;  // never overwrite
      const uint64_t len = std::min<uint64_t>(sector_size_, data.size() - i * sector_size_);
      std::memcpy(b.content.data() + (first + i) * sector_size_, data.data() + i * sector_size_, len);
    }
    return ok();
  }

  Result<void> invalidate(const BlobExtent& blob, uint64_t first, uint64_t count) override {
    std::lock_guard lock(mu_);
    invalidations_.push_back({first, count});
    if (!read_cache_) return ok();  // a store keeps its bytes
    auto it = blobs_.find(blob.digest);
    if (it == blobs_.end()) return ok();
    for (uint64_t s = first; s < first + count; ++s) it->second.present.erase(s);
    return ok();
  }

 private:
  struct Blob {
    std::vector<std::byte> content;
    std::set<uint64_t> present;
  };
  std::string name_;
  bool complete_, read_cache_;
  bool trusted_ = true;  // set before use: not locked
  uint32_t sector_size_;
  mutable std::mutex mu_;
  std::map<Digest, Blob> blobs_;
  std::vector<Call> reads_, fills_, invalidations_;
};

}  // namespace pagerfs::testing
