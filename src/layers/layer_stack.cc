#include "pagerfs/layers/layer_stack.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>

#include "util/rate_limiter.h"

namespace pagerfs {

struct LayerStack::FaultLog {
  RateLimiter limiter{std::chrono::seconds(5)};
};

Result<std::shared_ptr<LayerStack>> LayerStack::create(std::vector<std::shared_ptr<Layer>> layers,
                                                       std::shared_ptr<spdlog::logger> logger) {
  if (layers.empty()) return Error(errc::invalid_argument, "a layer stack needs at least one layer");
  if (layers.size() > 255) return Error(errc::invalid_argument, "too many layers");
  const uint32_t sector_size = layers.front()->sector_size();
  if (sector_size == 0 || (sector_size & (sector_size - 1)) != 0) {
    return Error(errc::invalid_argument, "sector size " + std::to_string(sector_size) +
                                             " is not a power of two");
  }
  for (const auto& layer : layers) {
    if (layer->sector_size() != sector_size) {
      return Error(errc::invalid_argument,
                   std::string(layer->type()) + " layer has " + std::to_string(layer->sector_size()) +
                       "-byte sectors, the stack " + std::to_string(sector_size));
    }
  }
  const Layer& bottom = *layers.back();
  if (bottom.is_read_cache() || !bottom.is_complete()) {
    return Error(errc::invalid_argument, "the bottom layer (" + std::string(bottom.type()) +
                                             ") must be a complete store, not a cache");
  }
  if (!logger) logger = spdlog::default_logger();
  return std::shared_ptr<LayerStack>(new LayerStack(std::move(layers), std::move(logger)));
}

LayerStack::LayerStack(std::vector<std::shared_ptr<Layer>> layers,
                       std::shared_ptr<spdlog::logger> logger)
    : layers_(std::move(layers)),
      logger_(std::move(logger)),
      sector_size_(layers_.front()->sector_size()),
      fault_log_(std::make_unique<FaultLog>()) {}

Result<uint64_t> LayerStack::blob_size(const Digest& digest) const {
  // The stores are the truth about which blobs exist and their size, asked
  // top down (a partial local copy before the remote below it); caches
  // answer only when no store can (an I/O error, a remote out of reach), so
  // a blob that was repacked or removed is never served from stale cached
  // sectors.
  std::optional<Error> failure;
  for (const auto& layer : layers_) {
    if (layer->is_read_cache()) continue;
    auto size = layer->blob_size(digest);
    if (size && size.value()) return *size.value();
    if (size) continue;  // not in this store: ask the next
    if (layer->is_complete() && size.error().code() == std::errc::no_such_file_or_directory) {
      return size.error();  // a complete store that lacks it: no such blob
    }
    if (!failure) failure = size.error();
  }
  for (const auto& layer : layers_) {
    if (!layer->is_read_cache()) continue;
    auto cached = layer->blob_size(digest);
    if (cached && cached.value()) return *cached.value();
  }
  if (failure) return *failure;
  return Error::from_errno(ENOENT, "blob " + digest.str());
}

bool LayerStack::has_untrusted_layers() const noexcept {
  return std::any_of(layers_.begin(), layers_.end(), [](const auto& layer) { return !layer->is_trusted(); });
}

void LayerStack::report_layer_fault(size_t layer, const char* what, const Error& error) const {
  uint64_t suppressed = 0;
  if (fault_log_->limiter.allow(&suppressed)) {
    logger_->warn("{} layer: {} failed, serving from below: {}{}", layers_[layer]->type(), what,
                  error.message(),
                  suppressed ? fmt::format(" ({} similar faults not logged)", suppressed) : "");
  }
}

Result<void> LayerStack::read(const BlobExtent& blob, uint64_t offset, std::span<std::byte> out,
                              ReadMode mode) const {
  if (offset > blob.size || out.size() > blob.size - offset) {
    return Error(errc::invalid_argument, "read of " + std::to_string(out.size()) + " bytes at " +
                                             std::to_string(offset) + " is past the end of " +
                                             blob.digest.str());
  }
  if (out.empty()) return ok();
  const uint64_t ss = sector_size_;
  const uint64_t first_sector = offset / ss;
  const uint64_t end = offset + out.size();
  const uint64_t aligned_end = std::min(blob.size, (end + ss - 1) / ss * ss);
  const uint64_t aligned_start = first_sector * ss;
  if (aligned_start == offset && aligned_end == end) return read_sectors(blob, first_sector, out, mode);
  std::vector<std::byte> buf(aligned_end - aligned_start);
  PAGERFS_TRYV(read_sectors(blob, first_sector, buf, mode));
  std::memcpy(out.data(), buf.data() + (offset - aligned_start), out.size());
  return ok();
}

Result<std::vector<std::byte>> LayerStack::read_whole_sectors(const BlobExtent& blob, uint64_t offset,
                                                              uint64_t length, uint64_t* start) const {
  if (offset > blob.size || length > blob.size - offset) {
    return Error(errc::invalid_argument, "read of " + std::to_string(length) + " bytes at " +
                                             std::to_string(offset) + " is past the end of " + blob.digest.str());
  }
  const uint64_t ss = sector_size_;
  const uint64_t begin = offset / ss * ss;
  const uint64_t end = std::min(blob.size, (offset + length + ss - 1) / ss * ss);
  std::vector<std::byte> sectors(end - begin);
  PAGERFS_TRYV(read(blob, begin, sectors));
  *start = begin;
  return sectors;
}

Result<void> LayerStack::read_sectors(const BlobExtent& blob, uint64_t first_sector,
                                      std::span<std::byte> buf, ReadMode mode) const {
  const uint64_t ss = sector_size_;
  const uint64_t count = (buf.size() + ss - 1) / ss;
  SectorMarker marker(first_sector, count);
  constexpr uint8_t kNobody = 0xff;
  std::vector<uint8_t> source(count, kNobody);  // which layer served each sector
  std::optional<Error> last_error;

  for (size_t i = 0; i < layers_.size() && !marker.all(); ++i) {
    Layer& layer = *layers_[i];
    if (mode == ReadMode::below_caches && layer.is_read_cache()) continue;
    for (const SectorMarker::Run& run : marker.runs(false)) {
      const uint64_t from = (run.first - first_sector) * ss;
      const uint64_t to = std::min<uint64_t>(buf.size(), from + run.count * ss);
      SectorMarker part(run.first, run.count);
      const auto start = std::chrono::steady_clock::now();
      auto result = layer.read(blob, buf.subspan(from, to - from), part);
      LayerStats& stats = layer.stats();
      stats.read_latency.record(std::chrono::steady_clock::now() - start);
      stats.reads.fetch_add(1, std::memory_order_relaxed);
      if (!result) {
        stats.errors.fetch_add(1, std::memory_order_relaxed);
        stats.sectors_missed.fetch_add(run.count, std::memory_order_relaxed);
        if (i + 1 < layers_.size()) report_layer_fault(i, "read", result.error());
        last_error = result.error();
        continue;  // nothing this call marked is trusted
      }
      stats.sectors_hit.fetch_add(part.marked_count(), std::memory_order_relaxed);
      stats.sectors_missed.fetch_add(run.count - part.marked_count(), std::memory_order_relaxed);
      for (const SectorMarker::Run& hit : part.runs(true)) {
        marker.mark(hit.first, hit.count);
        std::fill_n(source.begin() + static_cast<ptrdiff_t>(hit.first - first_sector), hit.count,
                    static_cast<uint8_t>(i));
        const uint64_t hit_end = std::min<uint64_t>(buf.size(), (hit.first - first_sector + hit.count) * ss);
        stats.bytes_read.fetch_add(hit_end - (hit.first - first_sector) * ss, std::memory_order_relaxed);
      }
    }
  }
  if (!marker.all()) {
    const auto missing = marker.runs(false).front();
    if (last_error) return last_error->with_context("blob " + blob.digest.str());
    return Error(std::make_error_code(std::errc::io_error),
                 "blob " + blob.digest.str() + ": no layer holds sectors " +
                     std::to_string(missing.first) + ".." +
                     std::to_string(missing.first + missing.count - 1));
  }
  if (mode == ReadMode::normal) fill_caches(blob, first_sector, buf, source);
  return ok();
}

void LayerStack::fill_caches(const BlobExtent& blob, uint64_t first_sector,
                             std::span<const std::byte> buf, const std::vector<uint8_t>& source) const {
  const uint64_t ss = sector_size_;
  for (size_t k = 0; k + 1 < layers_.size(); ++k) {
    Layer& cache = *layers_[k];
    if (!cache.is_read_cache()) continue;
    // Runs of sectors that came from below this cache, from a trusted
    // layer: an untrusted layer's sectors are cached by the pager once it
    // verified them (fill()).
    auto wanted = [&](uint64_t i) { return source[i] > k && layers_[source[i]]->is_trusted(); };
    for (uint64_t i = 0; i < source.size();) {
      if (!wanted(i)) {
        ++i;
        continue;
      }
      const uint64_t start = i;
      while (i < source.size() && wanted(i)) ++i;
      const uint64_t from = start * ss;
      const uint64_t to = std::min<uint64_t>(buf.size(), i * ss);
      auto filled = cache.write_no_overwrite(blob, first_sector + start, buf.subspan(from, to - from));
      if (!filled) {
        cache.stats().fill_errors.fetch_add(1, std::memory_order_relaxed);
        report_layer_fault(k, "fill", filled.error());
      }
    }
  }
}

void LayerStack::invalidate(const BlobExtent& blob, uint64_t offset, uint64_t length) const {
  if (length == 0 || offset >= blob.size) return;
  const uint64_t ss = sector_size_;
  const uint64_t end = offset + std::min(length, blob.size - offset);
  const uint64_t first = offset / ss;
  const uint64_t count = (end + ss - 1) / ss - first;
  for (size_t k = 0; k < layers_.size(); ++k) {
    Layer& layer = *layers_[k];
    if (auto dropped = layer.invalidate(blob, first, count); !dropped) {
      if (layer.is_read_cache()) layer.stats().fill_errors.fetch_add(1, std::memory_order_relaxed);
      report_layer_fault(k, "invalidate", dropped.error());
    }
  }
}

void LayerStack::fill(const BlobExtent& blob, uint64_t offset, std::span<const std::byte> data) const {
  if (offset > blob.size || data.size() > blob.size - offset) return;
  const uint64_t ss = sector_size_;
  const uint64_t end = offset + data.size();
  const uint64_t first = (offset + ss - 1) / ss;               // first whole sector
  const uint64_t last = end == blob.size ? (end + ss - 1) / ss  // the short last sector ends the blob
                                         : end / ss;
  if (last <= first) return;
  const uint64_t from = first * ss - offset;
  const uint64_t to = std::min(end, last * ss) - offset;
  const std::span<const std::byte> sectors = data.subspan(from, to - from);
  for (size_t k = 0; k < layers_.size(); ++k) {
    Layer& cache = *layers_[k];
    if (!cache.is_read_cache()) continue;
    if (auto filled = cache.write_no_overwrite(blob, first, sectors); !filled) {
      cache.stats().fill_errors.fetch_add(1, std::memory_order_relaxed);
      report_layer_fault(k, "fill", filled.error());
    }
  }
}

Result<void> LayerStack::drop_caches() const {
  for (const auto& layer : layers_) {
    if (layer->is_read_cache()) PAGERFS_TRYV(layer->drop());
  }
  return ok();
}

namespace {

class StackFile final : public RandomAccessFile {
 public:
  StackFile(std::shared_ptr<const LayerStack> stack, BlobExtent blob)
      : stack_(std::move(stack)), blob_(blob), name_(blob.digest.str()) {}

  Result<void> read_exact(uint64_t offset, std::span<std::byte> out) const override {
    return stack_->read(blob_, offset, out);
  }
  uint64_t size() const noexcept override { return blob_.size; }
  const std::string& name() const noexcept override { return name_; }

 private:
  std::shared_ptr<const LayerStack> stack_;
  BlobExtent blob_;
  std::string name_;
};

}  // namespace

Result<std::unique_ptr<RandomAccessFile>> open_blob_through(std::shared_ptr<const LayerStack> stack,
                                                            const Digest& digest) {
  PAGERFS_TRY(size, stack->blob_size(digest));
  return std::unique_ptr<RandomAccessFile>(new StackFile(std::move(stack), BlobExtent{digest, size}));
}

Result<format::BlobHeader> read_blob_header(const LayerStack& stack, const BlobExtent& blob) {
  std::array<std::byte, format::kHeaderSize> bytes{};
  const size_t n = static_cast<size_t>(std::min<uint64_t>(blob.size, bytes.size()));
  PAGERFS_TRYV(stack.read(blob, 0, std::span(bytes).first(n)));
  auto header = format::decode_header(std::span(bytes).first(n), blob.size);
  if (!header) return header.error().with_context(blob.digest.str());
  return header;
}

}  // namespace pagerfs
