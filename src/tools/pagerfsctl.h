// pagerfsctl's subcommands, one file each (pagerfsctl_*.cc); pagerfsctl.cc
// parses the command line and calls them. Each prints its output and returns
// the exit status: 0 success; 1 failure (for verify: corruption found); 2
// usage or I/O error. Errors are one line on stderr: "pagerfsctl: error: ...".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pagerfs/control/control.h"
#include "pagerfs/format/blob_writer.h"
#include "pagerfs/store/image_packer.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/error.h"

namespace pagerfs::ctl {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// "pagerfsctl: error: MESSAGE" on stderr.
void print_error(const std::string& message);

// Validates a size option given as text ("64K").
Result<uint64_t> size_option(const std::string& name, const std::string& text);

// pack (pagerfsctl_pack.cc)
struct PackArgs {
  std::string store;
  std::string chunk_size = "128K";
  int level = kDefaultCompressionLevel;
  unsigned threads = 0;
  std::string image;  // pack one directory as this image
  std::optional<std::string> pack_threshold;  // with --image; unset: kDefaultPackThreshold
  std::string pack_max = "64M";               // with --image
  std::vector<std::string> inputs;
};
int run_pack(const PackArgs& args);
// The options --chunk-size, --level and --threads give, checked.
Result<BlobWriterOptions> blob_options(const std::string& chunk_size, int level, unsigned threads);
// --pack-threshold (unset: the default) and --pack-max, checked together.
struct PackSizes {
  uint64_t threshold = kDefaultPackThreshold;
  uint64_t max = kDefaultPackMax;
};
Result<PackSizes> pack_sizes(const std::optional<std::string>& threshold, const std::string& max);
// Warns, once, when the store's directories are open to group or others.
void warn_if_loose(const Store& store);

// import (pagerfsctl_import.cc)
struct ImportArgs {
  std::string store;
  std::string image;
  std::string chunk_size = "128K";
  int level = kDefaultCompressionLevel;
  unsigned threads = 0;
  std::optional<std::string> pack_threshold;
  std::string pack_max = "64M";
  std::string source;
};
int run_import(const ImportArgs& args);

// bundle (pagerfsctl_bundle.cc)
struct BundleArgs {
  std::string store;
  std::string image;
  std::string mount;   // the image's root is MOUNT/images/NAME ...
  std::string rootfs;  // ... or this directory (an overlay over it)
  bool writable = false;
  bool terminal = false;
  std::string hostname;
  std::optional<std::string> user;  // replaces the image's User
  std::string dir;
  std::vector<std::string> command;  // replaces the image's Cmd
};
int run_bundle(const BundleArgs& args);

// inspect, cat (pagerfsctl_blob.cc)
int run_inspect(const std::string& path, bool json);
int run_cat(const std::string& path, const std::string& offset_text, const std::optional<std::string>& length_text,
            unsigned threads);

// verify, images (pagerfsctl_store.cc)
int run_verify(const std::string& store_path, const std::vector<std::string>& digests, unsigned threads);
int run_images(const std::string& store_path, const std::optional<std::string>& name, bool json);

// push, pull (pagerfsctl_registry.cc)
struct PushArgs {
  std::string store;
  std::string destination;  // oci://HOST[:PORT]/REPO
  std::vector<std::string> images;  // none: every image of the store
  std::optional<std::string> credentials;
  bool plain_http = false;
  unsigned threads = 0;  // verification
};
int run_push(const PushArgs& args);
struct PullArgs {
  std::string source;  // oci://HOST[:PORT]/REPO or http(s)://...
  std::string image;   // NAME or NAME@sha256:HEX
  std::string store;
  std::optional<std::string> credentials;
  bool plain_http = false;
  unsigned parallel = 4;
};
int run_pull(const PullArgs& args);

// stats, dump, prewarm, drop-caches: the control socket of a mount
// (pagerfsctl_control.cc). Where to send a request: the socket a mount names
// (checked: a pagerfs mount, a socket of the mount's owner), or one given
// with --control (checked: a socket of the caller's or root's).
struct ControlTarget {
  std::string mountpoint;           // empty with --control only
  std::string socket;               // --control, or empty
  std::optional<double> timeout_s;  // --timeout; 0: none
};
// Sends `request` and prints the daemon's answer as it is.
int run_control(const ControlTarget& target, const control::Request& request);
int run_stats(const ControlTarget& target, bool json);
// Asks the mount's supervisor for a live upgrade to `binary` (empty: the
// installed pagerfs) and waits until the new server serves.
int run_upgrade(const ControlTarget& target, const std::string& binary);
// `items`: FILE or FILE:OFFSET:LENGTH, FILE under the mount point or relative to it.
int run_prewarm(const ControlTarget& target, const std::vector<std::string>& items);
// Records the reads of image `image` while `command` runs: a prefetch
// profile, written to `output` or (empty) into the mount's store.
int run_record(const ControlTarget& target, const std::string& image, const std::string& output,
               const std::vector<std::string>& command);

}  // namespace pagerfs::ctl
