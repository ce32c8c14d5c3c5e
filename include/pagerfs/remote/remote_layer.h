// The `remote` layer: a store published by a web server (any server that
// serves files and Range requests: nginx, a CDN, an object store), at the
// bottom of the layer stack, with mirrors tried in order.
//
// A read of a run of sectors is one Range GET of the blob file
// (URL/blobs/sha256/HEX); a 206 must carry exactly the range asked for, a
// 200 (a server that ignores Range) is read up to the range and cut off.
// The size of a blob file is learnt from the first request for it: a GET of
// its first 64 KiB, whose Content-Range gives the size and whose bytes serve
// the header and seek table reads that follow. Redirects are followed. Each attempt is bounded (RemoteLayerOptions), a
// failed attempt is retried with exponential backoff and jitter, and a
// mirror that failed is skipped for `mirror_cooldown` while another one
// works; a read that cannot be served by its deadline fails with EIO,
// never hangs. A 404 from every mirror is ENOENT; a 401 or 403 is not
// retried (the next mirror is asked; if none serves, EACCES).
//
// The remote is untrusted (is_trusted() is false): the layer stack caches
// nothing it returns, and the pager checks every byte by SHA-256 against
// the chain anchored in the local store's manifests before it reaches a
// reader or the cache disk (pager.h).
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "pagerfs/layers/layer.h"
#include "pagerfs/util/error.h"

namespace spdlog {
class logger;
}

namespace pagerfs {

// Where a remote that does not name blob files by path (an OCI registry:
// blobs by the digest of their file, behind a token) keeps a blob.
struct BlobLocation {
  std::string url;
  std::vector<std::string> headers;  // "Name: value", e.g. Authorization (never logged)
  uint64_t file_size = 0;
};
class BlobLocator {
 public:
  virtual ~BlobLocator() = default;
  // ENOENT if the remote has no such blob (for a registry: none of the
  // images loaded names it). Called for every request: a location may carry
  // a token that expires.
  virtual Result<BlobLocation> locate(const Digest& digest) = 0;
};

struct RemoteLayerOptions {
  std::vector<std::string> urls;  // http:// or https://, the store's root; mirrors in order
  // Set for a registry: it says where each blob is (urls then holds the
  // registry's one oci:// URL, for messages).
  std::shared_ptr<BlobLocator> locator;
  uint32_t sector_size = 4096;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds attempt_timeout{10000};  // one HTTP request
  std::chrono::milliseconds deadline{20000};         // one read, all attempts and waits
  unsigned attempts = 4;
  std::chrono::milliseconds backoff{100};            // before the 2nd attempt; doubles
  std::chrono::milliseconds mirror_cooldown{30000};  // a failed mirror is skipped this long
};

// Checks the options (URLs, bounds); errc::invalid_argument with the reason.
Result<void> validate(const RemoteLayerOptions& options);

Result<std::shared_ptr<Layer>> make_remote_layer(const RemoteLayerOptions& options,
                                                 std::shared_ptr<spdlog::logger> logger = nullptr);

}  // namespace pagerfs
