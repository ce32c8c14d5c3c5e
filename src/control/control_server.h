// The daemon's control socket server (Boost.Asio, one I/O thread).
//
// bind() happens before daemonizing, so a bad path is reported on the
// terminal; start() runs the I/O thread after daemonizing, so the thread
// survives the fork.
//
// Thread safety: bind/start/stop from the daemon's main thread; unpublish()
// from any thread; the handler runs on the I/O thread, one command at a time.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "pagerfs/error.h"

namespace pagerfs {

class ControlServer {
 public:
  // Answers one command line with a body, or an error.
  using Handler = std::function<Result<std::string>(const std::string& command)>;

  // Creates the socket (mode 0600; its directory 0700 if missing). A stale
  // socket file is replaced; a live one (another daemon) is an error once it
  // has answered for a second (a daemon just unmounted may still be stopping).
  static Result<std::unique_ptr<ControlServer>> bind(const std::string& path);
  ~ControlServer();

  void start(Handler handler);
  // Stops the I/O thread and removes the socket file. Idempotent.
  void stop();
  // Removes the socket file now, while the server keeps running until stop():
  // a daemon mounting at the same place can bind it while this one finishes
  // stopping. stop() then leaves the path (maybe the next daemon's) alone.
  void unpublish();


 private:
  struct Impl;
  ControlServer(std::string path, int fd);
  std::mutex path_mu_;
  std::string path_;  // guarded by path_mu_; empty once unpublished
  std::unique_ptr<Impl> impl_;
};

}  // namespace pagerfs
