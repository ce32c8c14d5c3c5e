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
// An outage is not waited out by every read: after a read found no mirror
// answering at all, reads fail at once (EIO) for `outage_hold`, and then
// while one read at a time probes the remote as usual, until a request is
// answered (RemoteLayerOptions). The kernel asks again, at once, for the
// page a failed read-ahead covered: that read must not wait a second
// deadline for the server that just failed the first.
//
// Counters of each mirror (requests, bytes, errors, retries, failovers,
// latency) are kept beside the layer's own (LayerStats): remote_stats().
//
// Thread safety: all methods and remote_stats() may be called concurrently;
// the counters are atomics, read without stopping the readers.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pagerfs/layers/layer.h"
#include "pagerfs/util/latency_histogram.h"
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
  // After a read found no mirror answering, reads fail at once this long;
  // then one read at a time probes the remote while the others fail at once.
  std::chrono::milliseconds outage_hold{1000};
};

// The counters of one mirror, as remote_stats() reads them.
struct RemoteMirrorStats {
  std::string url;          // credentials (userinfo) replaced by ***
  uint64_t requests = 0;    // HTTP requests sent to it
  uint64_t bytes = 0;       // body bytes of the blob files it sent (200 and 206 answers)
  uint64_t errors = 0;      // requests that failed: no answer, 5xx, 401/403, a malformed answer (not 404)
  uint64_t retries = 0;     // requests to it that followed a failed attempt of the same read
  uint64_t failovers = 0;   // times a read moved from it to another mirror
  bool cooling_down = false;  // skipped after a failure (mirror_cooldown), while another mirror works
  LatencyHistogram::Snapshot latency;  // of each request, failed ones included
};

// The counters of a remote layer beyond LayerStats.
struct RemoteStats {
  std::vector<RemoteMirrorStats> mirrors;  // in the order of RemoteLayerOptions::urls
  bool outage = false;       // the last read found no mirror answering, and no request was answered since
  uint64_t failed_fast = 0;  // reads failed at once during an outage, without a request
};

// Checks the options (URLs, bounds); errc::invalid_argument with the reason.
Result<void> validate(const RemoteLayerOptions& options);

Result<std::shared_ptr<Layer>> make_remote_layer(const RemoteLayerOptions& options,
                                                 std::shared_ptr<spdlog::logger> logger = nullptr);

// The counters of `layer` if make_remote_layer() made it; nullopt for any
// other layer.
std::optional<RemoteStats> remote_stats(const Layer& layer);

}  // namespace pagerfs
