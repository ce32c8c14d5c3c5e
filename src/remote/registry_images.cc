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
                                   RegistryBlobs& blobs) {
  for (const ImageRef& ref : images) {
    auto image = fetch_registry_image(client, ref.str());
    if (!image) return image.error().with_context("image '" + ref.name + "' from " + client.location().str());
    if (image.value().config) PAGERFS_TRYV(store.write_image_config(ref.name, *image.value().config));
    PAGERFS_TRYV(store.write_image(ref.name, image.value().manifest));
    blobs.add(image.value().blob_files());
  }
  return ok();
}

}  // namespace pagerfs::remote
