// The daemon's control socket server (Boost.Asio, one I/O thread).
//
// Every connection is checked first: only root and the uid the daemon runs
// as may talk (SO_PEERCRED), others get one error line and are counted (and
// logged, at most once per 10 s). A connection then has kRequestTimeout to
// send one request line of at most kMaxRequest bytes; at most kMaxSessions
// are open at once: a new one closes the oldest that is still silent, so
// idle connections never pile up (fds) nor lock out a real client. The
// protocol itself is in include/pagerfs/control/control.h.
//
// bind() happens before daemonizing, so a bad path is reported on the
// terminal; start() runs the I/O thread after daemonizing, so the thread
// survives the fork.
//
// Thread safety: bind/start/stop from the daemon's main thread; unpublish()
// and counters() from any thread; the handler runs on the I/O thread, one
// command at a time.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "pagerfs/util/error.h"
#include "util/mutex.h"
#include "util/unique_fd.h"

namespace spdlog {
class logger;
}

namespace pagerfs {

// What the server turned away, for stats.
struct ControlCounters {
  uint64_t connections = 0;    // accepted from an allowed peer
  uint64_t refused_peers = 0;  // wrong uid
  uint64_t oversized = 0;      // request longer than kMaxRequest
  uint64_t timed_out = 0;      // no whole request within kRequestTimeout (or answer not read)
  uint64_t evicted = 0;        // closed for a newer one, or refused, past kMaxSessions
};

class ControlServer {
 public:
  // Answers one request line (without its '\n') with a body, or an error.
  using Handler = std::function<Result<std::string>(const std::string& line)>;

  // Creates the socket (mode 0600) at an absolute `path`. Its directory is
  // created 0700 if missing; an existing one must be a directory owned by us
  // or root and writable by nobody else. Only a stale socket of ours (a
  // socket file owned by our euid that nobody answers on) is replaced; a
  // live one is an error once it has answered for a second (a daemon just
  // unmounted may still be stopping); anything else at `path` is an error.
  static Result<std::unique_ptr<ControlServer>> bind(const std::string& path);
  // The listening socket `fd`, bound at `path` by another process of this
  // mount (the server before this one: supervisor.h).
  static Result<std::unique_ptr<ControlServer>> adopt(UniqueFd fd, const std::string& path);
  // The listening socket, until start() (to hand to a supervisor).
  int listen_fd() const noexcept;
  ~ControlServer();

  void start(Handler handler, std::shared_ptr<spdlog::logger> log);
  // Stops the I/O thread and removes the socket file. Idempotent.
  void stop();
  // Removes the socket file now (if it is still the one we bound), while the
  // server keeps running until stop(): a daemon mounting at the same place can
  // bind it while this one finishes stopping.
  void unpublish() EXCLUDES(path_mu_);
  // Leaves the socket file in place at stop() (it is another server's now).
  void keep_socket_file() EXCLUDES(path_mu_);

  ControlCounters counters() const;

 private:
  struct Impl;
  ControlServer(std::string path, int fd, dev_t dev, ino_t ino);
  Mutex path_mu_;
  std::string path_ GUARDED_BY(path_mu_);  // empty once unpublished
  dev_t dev_;         // the socket file we bound
  ino_t ino_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pagerfs
