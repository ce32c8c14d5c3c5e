// Images, loaded lazily (on lookup, and all of them when images/ is listed),
// each only if the catalog finds it usable. Nothing is loaded at mount.
#include <spdlog/spdlog.h>

#include "fuse/filesystem.h"

#include <unordered_map>

namespace pagerfs {

bool Filesystem::blob_present(const Digest& digest) const {
  return view_.has_blob(digest) || stack_->blob_size(digest).has_value();
}

Result<std::optional<fuse_ino_t>> Filesystem::load_late_image(std::string_view name) {
  PAGERFS_TRY(image, catalog_.load(name));
  if (!image) return std::optional<fuse_ino_t>{};
  // Its first use starts its prefetch (once: the prefetcher ignores a repeat).
  std::vector<Prefetcher::Task> tasks;
  if (prefetcher_) tasks = prefetch_tasks(name, *image);
  view_.add_image(std::string(name), std::move(*image));
  if (!tasks.empty()) prefetcher_->enqueue(std::string(name), std::move(tasks));
  return view_.lookup(MountView::kImagesDir, name);
}

std::vector<Prefetcher::Task> Filesystem::prefetch_tasks(std::string_view name, const image::Manifest& manifest) {
  // The image's blobs and their anchors: a profile may name nothing else.
  std::unordered_map<Digest, image::BlobRecord, DigestHash> blobs;
  for (uint32_t k = 0; k < manifest.blob_count(); ++k) {
    auto record = manifest.blob_at(k);
    if (!record) continue;  // a malformed record: that blob is not prefetched
    blobs.emplace(record.value().digest, record.value());
  }
  const auto task = [](const image::BlobRecord& b, uint64_t offset, uint64_t length) {
    const std::optional<Digest> anchor = b.table_digest == Digest() ? std::nullopt : std::optional(b.table_digest);
    return Prefetcher::Task{b.digest, anchor, offset, length};
  };
  std::vector<Prefetcher::Task> tasks;
  if (prefetch_mode_ == PrefetchMode::all) {
    for (const auto& [digest, record] : blobs) tasks.push_back(task(record, 0, record.byte_size));
    return tasks;
  }
  auto loaded = store_.load_profile(name);
  if (!loaded) {
    logger_->warn("image {}: {}; not prefetched", name, loaded.error().message());
    return tasks;
  }
  if (!loaded.value()) return tasks;
  size_t foreign = 0;
  for (const profile::Item& item : loaded.value()->items) {
    const auto b = blobs.find(item.blob);
    if (b == blobs.end() || item.offset >= b->second.byte_size) {
      ++foreign;
      continue;
    }
    tasks.push_back(task(b->second, item.offset, std::min(item.length, b->second.byte_size - item.offset)));
  }
  if (foreign > 0) logger_->warn("image {}: {} ranges of its prefetch profile are not of its blobs; skipped", name, foreign);
  return tasks;
}

void Filesystem::load_images() {
  auto names = catalog_.names();
  if (!names) {
    logger_->warn("list images: {}", names.error().message());
    return;
  }
  for (const std::string& name : names.value()) {
    if (auto known = view_.lookup(MountView::kImagesDir, name); known && known.value()) continue;
    // A broken image stays out of the listing (logged); looking it up says EIO.
    (void)load_late_image(name);
  }
}

}  // namespace pagerfs
