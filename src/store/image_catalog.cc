#include "pagerfs/store/image_catalog.h"

#include <sys/stat.h>

#include <atomic>
#include <cerrno>

#include "util/mutex.h"

namespace pagerfs {
namespace {

// The manifest file is the one a failure was recorded for: same inode, size
// and modification time.
bool same_file(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

}  // namespace

// Thread safety: `mu` guards the map; the count is atomic.
struct ImageCatalog::Failures {
  struct Failed {
    struct stat file {};  // of the manifest, when it failed
    std::chrono::steady_clock::time_point when;
    Error error;
  };
  mutable Mutex mu;
  std::unordered_map<std::string, Failed> images GUARDED_BY(mu);
  std::atomic<uint64_t> loads_failed{0};
};

ImageCatalog::ImageCatalog(Store store) : ImageCatalog(std::move(store), Options{}) {}

ImageCatalog::ImageCatalog(Store store, Options options)
    : store_(std::move(store)), options_(std::move(options)), failures_(std::make_unique<Failures>()) {}

ImageCatalog::~ImageCatalog() = default;

Result<std::vector<std::string>> ImageCatalog::names() const { return store_.list_images(); }

Result<image::Manifest> ImageCatalog::manifest(std::string_view name) const { return store_.load_image(name); }

Result<std::optional<image::Manifest>> ImageCatalog::load(std::string_view name) {
  using Loaded = std::optional<image::Manifest>;
  if (!image::validate_image_name(name)) return Loaded{};
  const std::string key(name);
  const std::string path = store_.image_path(name);
  struct stat file {};
  if (::lstat(path.c_str(), &file) != 0) {
    if (errno == ENOENT) return Loaded{};
    return Error::from_errno(errno, "image '" + key + "'");
  }
  const auto now = std::chrono::steady_clock::now();
  {
    MutexLock lock(failures_->mu);
    if (auto it = failures_->images.find(key); it != failures_->images.end() && same_file(it->second.file, file) &&
                                               now - it->second.when < options_.retry_after) {
      return it->second.error;
    }
  }
  auto manifest = store_.load_image(name);
  if (!manifest) {
    // Removed since the lstat? Then there is no such image.
    if (::lstat(path.c_str(), &file) != 0 && errno == ENOENT) return Loaded{};
    failures_->loads_failed.fetch_add(1, std::memory_order_relaxed);
    if (options_.on_failure) options_.on_failure(manifest.error());
    MutexLock lock(failures_->mu);
    failures_->images.insert_or_assign(key, Failures::Failed{file, now, manifest.error()});
    return manifest.error();
  }
  {
    MutexLock lock(failures_->mu);
    failures_->images.erase(key);
  }
  return Loaded(std::move(manifest).value());
}

Result<void> ImageCatalog::verify(std::string_view name, const BlobSizes& whole, const BlobAnchors& anchors) const {
  PAGERFS_TRY(m, store_.load_image(name));
  const std::string context = "image '" + std::string(name) + "'";
  if (auto checked = m.verify(); !checked) return checked.error().with_context(context);
  // Every content's (offset, length) is inside its blob record's byte size
  // (Manifest::verify); each record must be the blob's.
  for (uint32_t k = 0; k < m.blob_count(); ++k) {
    PAGERFS_TRY(b, m.blob_at(k));
    auto it = whole.find(b.digest);
    if (it == whole.end()) {
      return Error(errc::corrupt_blob, context + ": blob " + b.digest.str() + " is missing from the store or damaged");
    }
    if (it->second != b.byte_size) {
      return Error(errc::corrupt_blob, context + ": blob " + b.digest.str() + " has " +
                                           std::to_string(it->second) + " bytes, the image says " +
                                           std::to_string(b.byte_size));
    }
    if (auto anchor = anchors.find(b.digest); anchor != anchors.end() && b.table_digest != Digest() &&
        anchor->second != b.table_digest) {
      return Error(errc::corrupt_blob, context + ": blob " + b.digest.str() + " has seek table digest " +
                                           anchor->second.str() + ", the image says " + b.table_digest.str());
    }
  }
  return ok();
}

ImageCatalog::Stats ImageCatalog::stats() const {
  Stats s;
  {
    MutexLock lock(failures_->mu);
    s.images_failed = failures_->images.size();
  }
  s.image_load_failures = failures_->loads_failed.load();
  return s;
}

}  // namespace pagerfs
