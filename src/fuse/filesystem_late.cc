// Images, loaded lazily (on lookup, and all of them when images/ is listed),
// each only if the catalog finds it usable. Nothing is loaded at mount.
#include <spdlog/spdlog.h>

#include "fuse/filesystem.h"

namespace pagerfs {

bool Filesystem::blob_present(const Digest& digest) const {
  return view_.has_blob(digest) || stack_->blob_size(digest).has_value();
}

Result<std::optional<fuse_ino_t>> Filesystem::load_late_image(std::string_view name) {
  PAGERFS_TRY(image, catalog_.load(name));
  if (!image) return std::optional<fuse_ino_t>{};
  view_.add_image(std::string(name), std::move(*image));
  return view_.lookup(MountView::kImagesDir, name);
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
