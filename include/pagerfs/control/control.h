// The control protocol between pagerfsctl and a running pagerfs daemon.
//
// Transport: a Unix stream socket, mode 0600, in a directory that is ours
// (0700 when we create it). Only root and the uid that runs the daemon may
// talk to it: the daemon checks every connection's peer credentials
// (SO_PEERCRED), whatever the socket file's mode says.
//
// Request: one JSON object on one line, at most kMaxRequest bytes with its
// '\n', sent within 5 s of connecting:
//   {"command":"stats"}            counters (the body is a JSON document)
//   {"command":"dump"}             requests in flight, open blobs (text)
//   {"command":"drop-caches"}
//   {"command":"prewarm","items":[{"path":"images/a/x y","offset":0,"length":4096}]}
// A prewarm path is relative to the mount root and may hold any byte but
// NUL (spaces, newlines); offset (default 0) and length (default: to the
// end) are optional.
// Answer: one JSON object on one line, then the daemon closes:
//   {"ok":true,"body":"..."}  or  {"ok":false,"error":"one line"}
// The daemon serves one command at a time, at most kMaxSessions connections
// at once (a new one closes the oldest that has not sent its request yet),
// and closes a connection that sends nothing for 5 s.
//
// The socket's path is ${XDG_RUNTIME_DIR:-/run}/pagerfs/<first 32 hex digits
// of the SHA-256 of the absolute mount point>.sock (root: always /run) unless
// `-o control=PATH` says otherwise; the mount root's extended attribute
// user.pagerfs.control names it either way.
//
// Thread safety: pure functions and a blocking client; no shared state.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/util/error.h"

namespace pagerfs::control {

constexpr size_t kMaxRequest = 64 * 1024;  // bytes, with the '\n'
constexpr size_t kMaxSessions = 64;
constexpr std::chrono::seconds kRequestTimeout{5};   // server: connect to a whole request
constexpr std::chrono::seconds kClientTimeout{30};   // client: connect to the whole answer (not prewarm)

// The default socket path for an absolute mount point path.
std::string default_socket_path(const std::string& mountpoint);

// ---- requests and answers ---------------------------------------------------

struct PrewarmItem {
  std::string path;
  uint64_t offset = 0;
  uint64_t length = UINT64_MAX;  // to the end
  std::string range;             // ":OFFSET:LENGTH" as given on a command line, or empty
};

struct Request {
  std::string command;             // stats, dump, prewarm, drop-caches, record-start, record-stop, upgrade
  std::vector<PrewarmItem> items;  // prewarm only
  std::string image;               // record-stop: the image the profile is of
  bool save = false;               // record-stop: also write it into the mount's store
  std::string binary;              // upgrade: the new server's binary (empty: the installed one)
};

// A request with no items, image or save.
inline Request make_request(std::string command) {
  Request request;
  request.command = std::move(command);
  return request;
}

// One line of JSON with its '\n'.
std::string encode_request(const Request& request);
// Parses one request line (without its '\n'); a clear error for anything else.
Result<Request> parse_request(std::string_view line);
// One answer line with its '\n'.
std::string encode_answer(const Result<std::string>& answer);
// The body of an "ok" answer, or its error.
Result<std::string> parse_answer(std::string_view text);

// A command-line argument of `prewarm`: PATH or PATH:OFFSET:LENGTH (sizes with
// suffixes). A path whose last two ':'-separated fields are not sizes is all path.
PrewarmItem parse_prewarm_item(std::string_view item);

// ---- finding a socket we may trust ---------------------------------------------

// A socket and the uids that may serve it (checked on the file and, after
// connecting, on the server's peer credentials).
struct Endpoint {
  std::string path;
  std::vector<uid_t> owners;
};

// The owner (user_id=N) of the pagerfs mounted at `mountpoint` (absolute,
// resolved), from the text of /proc/self/mountinfo: the topmost mount there
// must be of type fuse.pagerfs. Pure, for tests.
Result<uid_t> pagerfs_mount_owner(std::string_view mountinfo, const std::string& mountpoint);

// The control socket of the pagerfs mounted at `mountpoint`: the mount must
// be a pagerfs mount, and the socket its user.pagerfs.control names must be
// a socket owned by the mount's owner.
Result<Endpoint> socket_for_mount(const std::string& mountpoint);

// A socket named on the command line: it must be owned by the caller or root.
Result<Endpoint> explicit_socket(const std::string& path);

// Checks that `path` is a socket owned by one of `owners`.
Result<void> check_socket(const std::string& path, const std::vector<uid_t>& owners);

// Sends one request line, returns the body of an "ok" answer or the error.
// `timeout` bounds connecting and the whole answer (none: wait as long as
// the daemon works, e.g. a long prewarm; connecting is still bounded).
Result<std::string> request(const Endpoint& endpoint, const std::string& line,
                            std::optional<std::chrono::milliseconds> timeout = kClientTimeout);

}  // namespace pagerfs::control
