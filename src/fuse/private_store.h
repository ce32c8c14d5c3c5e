// The local directory of a remote-only store (`pagerfs URL MNT -o image=...`):
// a store of the mount's own, holding only the manifests of the images the
// command line names (verified by their digests, remote_images.h), with no
// blobs, over which the remote serves everything else.
//
// It lives in the cache directory when there is one (what was verified is
// then kept in its manifest cache, DIR/manifests/sha256/HEX, remote/
// manifest_cache.h, and a later mount needs no request for it), else in $TMPDIR (or /tmp); either way in
// a directory of its own, mode 0700, removed when the daemon stops. A daemon
// killed by SIGKILL leaves it behind (a few manifests, in mount-XXXXXX); the
// next daemon that makes one in the same place removes it (each directory is
// locked by its daemon while it lives: flock, released by the kernel at death).
//
// Thread safety: created and destroyed by main; root() may be read anywhere.
#pragma once

#include <memory>
#include <string>

#include "pagerfs/util/error.h"
#include "util/unique_fd.h"

namespace pagerfs {

class PrivateStore {
 public:
  // Makes the directory: in `cache_dir` if not empty, else in $TMPDIR or /tmp.
  static Result<std::unique_ptr<PrivateStore>> create(const std::string& cache_dir);
  ~PrivateStore();  // removes it, and what is in it
  PrivateStore(const PrivateStore&) = delete;
  PrivateStore& operator=(const PrivateStore&) = delete;

  const std::string& root() const noexcept { return root_; }
  // Where verified manifests are kept by digest across mounts; empty
  // without a cache directory.
  const std::string& manifest_cache_dir() const noexcept { return manifest_cache_dir_; }

 private:
  PrivateStore(std::string root, std::string manifest_cache_dir, UniqueFd lock)
      : root_(std::move(root)), manifest_cache_dir_(std::move(manifest_cache_dir)), lock_(std::move(lock)) {}
  const std::string root_;
  const std::string manifest_cache_dir_;
  const UniqueFd lock_;  // the directory, flock()ed while this daemon lives
};

}  // namespace pagerfs
