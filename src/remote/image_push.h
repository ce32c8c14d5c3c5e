// Pushing one image of a store to an OCI registry as the artifact of
// pagerfs-store(5) (IMAGES IN AN OCI REGISTRY; remote/registry_artifact.h).
//
// The store's blobs are verified before anything is sent (StoreVerifier:
// every blob the image names, whole, then the image against them): a damaged
// local blob is refused, never published. Then every blob file the registry
// lacks is uploaded (a HEAD first; streamed from the file), then the pagerfs
// manifest, the config and the prefetch profile (STORE/profiles/NAME, if the
// image has one; a malformed one is refused), and last the OCI manifest under the image's name
// as its tag: a reader never sees a tag whose blobs are not all there.
//
// Thread safety: push_image() runs on the caller's thread; distinct calls
// may run concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "pagerfs/store/store.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "remote/registry_client.h"

namespace pagerfs::remote {

struct PushOptions {
  unsigned verify_threads = 0;  // decoding threads for the verification (0: one per core)
  // Told the bytes uploaded so far, and the bytes to upload in all.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct PushResult {
  Digest digest;           // of the OCI manifest: what NAME@sha256:... pins
  size_t uploaded = 0;     // blobs uploaded (pagerfs manifest, config and profile included)
  size_t present = 0;      // blobs the registry had
  uint64_t bytes = 0;      // uploaded
};

Result<PushResult> push_image(const Store& store, RegistryClient& client, std::string_view name,
                              const PushOptions& options = {});

}  // namespace pagerfs::remote
