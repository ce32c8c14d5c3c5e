// The control protocol between pagerfsctl and a running pagerfs daemon.
//
// A Unix stream socket (mode 0600). The client sends one command line;
// the daemon answers with "ok\n" or "error <message>\n", then the body, and
// closes. Commands: stats, dump, prewarm PATH[:OFFSET:LENGTH]..., drop-caches.
//
// The socket's path is ${XDG_RUNTIME_DIR:-/run}/pagerfs/<mount point with
// '/' replaced by '-'>.sock unless `-o control=PATH` says otherwise; the
// mount root's extended attribute user.pagerfs.control names it either way.
//
// Thread safety: pure functions and a blocking client; no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "pagerfs/error.h"

namespace pagerfs::control {

// The default socket path for an absolute mount point path.
std::string default_socket_path(const std::string& mountpoint);

// The control socket of the pagerfs mounted at `mountpoint`.
Result<std::string> socket_for_mount(const std::string& mountpoint);

// One argument of `prewarm`: PATH or PATH:OFFSET:LENGTH (sizes with suffixes).
struct PrewarmItem {
  std::string path;
  uint64_t offset = 0;
  uint64_t length = UINT64_MAX;  // to the end
  std::string range;             // ":OFFSET:LENGTH" as given, or empty
};
// A path whose last two ':'-separated fields are not sizes is all path.
PrewarmItem parse_prewarm_item(std::string_view item);

// Sends `command`, returns the body of an "ok" answer or the error.
Result<std::string> request(const std::string& socket_path, const std::string& command);

}  // namespace pagerfs::control
