#include "remote/registry_images.h"

namespace pagerfs::remote {

Result<BlobLocation> RegistryBlobs::locate(const Digest& digest) {
  RegistryBlob file;
  {
    MutexLock lock(mu_);
    const auto it = files_.find(digest);
    if (it == files_.end()) {
      return Error::from_errno(ENOENT, "blob " + digest.str() + " is in none of the images fetched from " +
                                           client_->location().str());
    }
    file = it->second;
  }
  BlobAccess access = client_->pull_access(file.digest);
  return BlobLocation{std::move(access.url), std::move(access.headers), file.size};
}

void RegistryBlobs::add(const std::map<Digest, RegistryBlob>& files) {
  MutexLock lock(mu_);
  files_.insert(files.begin(), files.end());
}

Result<void> fetch_registry_images(RegistryClient& client, const std::vector<ImageRef>& images, const Store& store,
                                   RegistryBlobs& blobs, const FetchImagesOptions& options) {
  std::optional<ManifestCache> cache;
  if (!options.manifest_cache_dir.empty()) {
    PAGERFS_TRY(opened, ManifestCache::open(options.manifest_cache_dir));
    cache.emplace(std::move(opened));
  }
  const RegistryFetchOptions fetch{.cache = cache ? &*cache : nullptr, .profile = options.fetch_profiles};
  for (const ImageRef& ref : images) {
    const std::string where = "image '" + ref.name + "' from " + client.location().str();
    auto image = fetch_registry_image(client, ImageReference{ref.name, ref.manifest_digest}, fetch);
    if (!image) return image.error().with_context(where);
    if (image.value().config) PAGERFS_TRYV(store.write_image_config(ref.name, *image.value().config));
    // The profile is a hint (prefetch_profile.h): the prefetcher replays
    // only ranges of blobs the image names.
    auto warn = [&](const std::string& why) {
      if (options.warn) options.warn(where + ": prefetch profile ignored: " + why);
    };
    if (!image.value().profile_error.empty()) warn(image.value().profile_error);
    if (image.value().profile) {
      auto parsed = profile::parse(*image.value().profile);
      if (!parsed) {
        warn(parsed.error().message());
      } else if (auto written = store.write_profile(ref.name, parsed.value()); !written) {
        warn(written.error().message());
      }
    }
    PAGERFS_TRYV(store.write_image(ref.name, image.value().manifest));
    blobs.add(image.value().blob_files());
  }
  return ok();
}

}  // namespace pagerfs::remote
