// The daemon's command line: its own -o options (parsed by fuse_opt, then
// checked into a Config), its usage text, and what is left for libfuse.
//
// Thread safety: used once, from main, before any thread starts.
#pragma once

#include <fuse_lowlevel.h>
#include <spdlog/common.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fuse/prefetcher.h"
#include "pagerfs/pager/pager.h"
#include "pagerfs/remote/remote_images.h"
#include "pagerfs/remote/remote_layer.h"
#include "pagerfs/util/error.h"

namespace pagerfs {

// The daemon's own -o options; fuse_opt stores each value here.
struct RawOptions {
  char* cache = nullptr;
  char* cache_size = nullptr;
  char* memory_cache = nullptr;
  char* readahead = nullptr;
  char* chunk_cache = nullptr;
  char* threads = nullptr;
  char* log_level = nullptr;
  char* control = nullptr;
  char* verify = nullptr;
  char* remote_timeout = nullptr;
  char* request_timeout = nullptr;
  char* prefetch = nullptr;
  char* prefetch_rate = nullptr;
  char* registry_credentials = nullptr;
  char* passthrough = nullptr;
  char* passthrough_small = nullptr;
  std::vector<std::string> remotes;  // every -o remote=URL, in order
  std::vector<std::string> images;   // every -o image=NAME@sha256:HEX, in order
  std::string store;
  int extra_args = 0;
  bool help = false;
  bool version = false;
  // Set-user-ID bits and device nodes of images are honoured only when asked
  // for by these two, never by the generic suid/dev options (which
  // mount.fuse3 and fstab's "defaults" add unasked).
  // int, not bool: fuse_opt stores an int at a flag option's offset.
  int trust_suid = 0;
  int trust_dev = 0;
  int supervise = -1;  // -o supervise / nosupervise; -1: not given
  // A successor server (takeover): the live mount point it serves, from its
  // supervisor. Its MOUNTPOINT argument is then never looked at: a stat of
  // the mount would wait for this very process to answer.
  std::string takeover_mountpoint;
  bool asked_suid = false;  // "suid" or "dev" given (and ignored without trust_*)
  bool asked_dev = false;

  RawOptions() = default;
  RawOptions(const RawOptions&) = delete;
  RawOptions& operator=(const RawOptions&) = delete;
  ~RawOptions() {  // fuse_opt_parse strdup()s every value
    for (char* value : {cache, cache_size, memory_cache, readahead, chunk_cache, threads, log_level, control, verify,
                        remote_timeout, request_timeout, prefetch, prefetch_rate, registry_credentials,
                        passthrough, passthrough_small}) {
      std::free(value);
    }
  }
};

// Takes pagerfs's own options and STORE out of `args` into `raw` (the rest is
// libfuse's); returns fuse_opt_parse's status (non-zero: a message was printed).
int parse_pagerfs_options(fuse_args* args, RawOptions* raw);

// `pagerfs --help`: ours, then libfuse's.
void print_usage();

struct Config {
  // The store's directory; empty when the store is remote only (STORE was a
  // URL: the daemon makes a private directory for the images' manifests).
  std::string store;
  std::string store_url;      // STORE as given when it was a URL (redacted)
  std::vector<ImageRef> images;  // -o image: a remote-only store's images
  bool registry = false;         // STORE is an OCI registry: remote.urls[0], oci://
  std::string registry_credentials;  // -o registry_credentials, absolute; empty: none
  std::string mountpoint;  // absolute
  std::string cache_dir;
  uint64_t cache_size = uint64_t{1} << 30;
  uint64_t memory_cache = 0;
  PagerOptions pager;
  RemoteLayerOptions remote;  // urls empty: no remote layer
  PrefetchMode prefetch = PrefetchMode::none;
  Prefetcher::Options prefetch_options;
  std::string control_path;
  spdlog::level::level_enum log_level = spdlog::level::info;
  bool foreground = false;
  // A supervisor process holds the connection and restarts the server
  // (supervisor.h); default when not in the foreground.
  bool supervise = false;
  // Seconds a request may wait for its answer before the kernel aborts the
  // connection (session_io.h); 0: no limit.
  uint16_t request_timeout = 0;
  // -o passthrough=SIZE: the kernel reads and maps materialized files
  // itself (materializer.h, passthrough_opens.h); 0: off. Needs root and
  // kernel 6.9+, else logged and off.
  uint64_t passthrough_budget = 0;
  uint64_t passthrough_small = 256 * 1024;  // materialized at their first open
  bool debug = false;
  bool single_thread = false;
  bool clone_fd = false;
  unsigned max_threads = 0;
  // int, not bool: fuse_opt stores an int at a flag option's offset.
  int trust_suid = 0;
  int trust_dev = 0;
  bool ignored_suid = false;  // -o suid/dev given without trust_*: logged
  bool ignored_dev = false;
};


// Checks every option, the mount point and the paths (made absolute).
Result<Config> make_config(const RawOptions& raw, const fuse_cmdline_opts& cmd);

}  // namespace pagerfs
