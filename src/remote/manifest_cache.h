// What a remote-only mount verified, kept on the cache disk by digest so a
// later mount of the same pinned image needs no request for it and works
// while the remote is down: DIR/sha256/HEX, HEX the SHA-256 of the file's
// bytes. Over http(s) it holds pagerfs manifests (remote_images.h); from a
// registry also the OCI manifest, the image config and the prefetch profile
// (registry_client.h, fetch_registry_image), all named by their digests in
// the OCI manifest the user pinned.
//
// Nothing read from it is trusted: get() hashes the bytes again, and a file
// that does not hash to its name is removed and reported absent. Files are
// written under a temporary name and renamed into place (store/temp_blob.h),
// read-only; the directories are the user's own (0700).
//
// Thread safety: the methods are const and may run concurrently (the
// directory is the only state; a rename makes each file appear whole).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace pagerfs {

class ManifestCache {
 public:
  // DIR (created, 0700, with DIR/sha256, if missing).
  static Result<ManifestCache> open(const std::string& dir);

  // The bytes kept as `digest`: nullopt if there are none, more than
  // `max_bytes`, or not hashing to it (the file is removed then).
  std::optional<std::vector<std::byte>> get(const Digest& digest, uint64_t max_bytes) const;
  // Keeps `bytes`, which the caller verified to hash to `digest`. A file
  // already there is left alone.
  Result<void> put(const Digest& digest, std::span<const std::byte> bytes) const;

  std::string path(const Digest& digest) const { return dir_ + "/" + digest.hex(); }

 private:
  explicit ManifestCache(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;  // DIR/sha256
};

}  // namespace pagerfs
