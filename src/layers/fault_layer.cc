#include "layers/fault_layer.h"

#include <chrono>
#include <new>
#include <string>
#include <thread>

namespace pagerfs {
namespace {

class FaultLayer final : public Layer {
 public:
  FaultLayer(std::shared_ptr<Layer> inner, std::shared_ptr<FaultConfig> config)
      : inner_(std::move(inner)), config_(std::move(config)),
        type_("fault(" + std::string(inner_->type()) + ")") {}

  std::string_view type() const noexcept override { return type_; }
  uint32_t sector_size() const noexcept override { return inner_->sector_size(); }
  bool is_logically_read_only() const noexcept override { return inner_->is_logically_read_only(); }
  bool is_read_cache() const noexcept override { return inner_->is_read_cache(); }
  bool is_complete() const noexcept override { return inner_->is_complete(); }
  bool is_trusted() const noexcept override { return inner_->is_trusted(); }

  Result<std::optional<uint64_t>> blob_size(const Digest& digest) override {
    return inner_->blob_size(digest);
  }

  Result<void> read(const BlobExtent& blob, std::span<std::byte> out, SectorMarker& marker) override {
    const uint64_t n = config_->reads_seen.fetch_add(1) + 1;
    if (config_->throw_bad_alloc.load()) throw std::bad_alloc();
    if (const uint64_t us = config_->latency_us.load(); us > 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(us));
    }
    const uint32_t every = config_->fail_every.load();
    if (config_->fail_reads.load() || (every > 0 && n % every == 0)) {
      return Error::from_errno(config_->error.load(), "injected read fault");
    }
    if (config_->short_reads.load() && marker.count() > 1) {
      // Serve only the first half through a narrower marker.
      const uint64_t half = marker.count() / 2;
      SectorMarker part(marker.first(), half);
      PAGERFS_TRYV(inner_->read(blob, out.first(half * inner_->sector_size()), part));
      for (const auto& run : part.runs(true)) marker.mark(run.first, run.count);
    } else {
      PAGERFS_TRYV(inner_->read(blob, out, marker));
    }
    if (config_->corrupt.load() && !out.empty()) out[out.size() / 2] ^= std::byte{0x01};
    return ok();
  }

  Result<void> write_no_overwrite(const BlobExtent& blob, uint64_t first_sector,
                                  std::span<const std::byte> data) override {
    if (config_->fail_fills.load()) return Error::from_errno(config_->error.load(), "injected fill fault");
    return inner_->write_no_overwrite(blob, first_sector, data);
  }

  Result<void> invalidate(const BlobExtent& blob, uint64_t first_sector, uint64_t count) override {
    return inner_->invalidate(blob, first_sector, count);
  }
  Result<void> sync() override { return inner_->sync(); }
  Result<void> drop() override { return inner_->drop(); }

 private:
  std::shared_ptr<Layer> inner_;
  std::shared_ptr<FaultConfig> config_;
  std::string type_;
};

}  // namespace

std::shared_ptr<Layer> make_fault_layer(std::shared_ptr<Layer> inner,
                                        std::shared_ptr<FaultConfig> config) {
  return std::make_shared<FaultLayer>(std::move(inner), std::move(config));
}

}  // namespace pagerfs
