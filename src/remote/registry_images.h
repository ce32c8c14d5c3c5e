// A registry as the remote of a store that is only remote (`pagerfs
// oci://HOST/REPO MNT -o image=NAME@sha256:HEX`): the images named, fetched
// and verified at mount (registry_client.h: HEX pins the OCI manifest, which
// pins the pagerfs manifest and lists every blob file), and the BlobLocator
// through which the remote layer then reads their blobs.
//
// Only the blobs of the images fetched are known: a blob of the blob view
// that none of them names is not found (ENOENT), since a registry has no
// path for a blob by the digest of its content.
//
// Thread safety: locate() may be called concurrently, also with add().
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "pagerfs/remote/remote_images.h"
#include "pagerfs/remote/remote_layer.h"
#include "remote/registry_client.h"
#include "util/mutex.h"

namespace pagerfs::remote {

class RegistryBlobs final : public BlobLocator {
 public:
  explicit RegistryBlobs(std::shared_ptr<RegistryClient> client) : client_(std::move(client)) {}

  Result<BlobLocation> locate(const Digest& digest) override;
  // Learns where the blobs of an image are (content digest -> file).
  void add(const std::map<Digest, RegistryBlob>& files);

 private:
  const std::shared_ptr<RegistryClient> client_;
  Mutex mu_;
  std::map<Digest, RegistryBlob> files_ GUARDED_BY(mu_);
};

// Writes each image's pagerfs manifest (and its OCI image config, if it has
// one) into `store`, from the registry, pinned by the digest of its OCI
// manifest (what `pagerfsctl push` prints), and tells `blobs` where their
// blob files are. With options.manifest_cache_dir, what was verified is kept
// there by digest and taken from there (checked again) by a later mount,
// which then needs no registry. With options.fetch_profiles, the profile the
// artifact names is written too (a hint: one that cannot be had or parsed
// is one line to options.warn, and left out). One line naming the image for
// anything that fails.
Result<void> fetch_registry_images(RegistryClient& client, const std::vector<ImageRef>& images, const Store& store,
                                   RegistryBlobs& blobs, const FetchImagesOptions& options = {});

}  // namespace pagerfs::remote
