// A real nginx serving a directory on 127.0.0.1, for tests of the remote
// layer against what a store published over HTTP looks like: static files,
// Range requests (206), keep-alive, and whatever the test adds to the server
// block (basic authentication, a location that answers 500, ...).
//
// Every server has a temporary prefix of its own (nginx.conf, pid, logs and
// nginx's temp directories), so it runs as root and as any other user, beside
// other tests and any system nginx. nginx runs in the foreground as one
// process (daemon off, master_process off), the ChildProcess the test owns:
// stopping it is one SIGTERM to that pid, and nothing is left behind.
//
// Thread safety: one owner thread (see child_process.h: start servers on the
// test's own thread); url(), port() and pid() may be read from any thread,
// and the server answers any number of clients at once.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "support/child_process.h"
#include "support/subprocess.h"

namespace pagerfs::testing {

class NginxServer {
 public:
  struct Options {
    // Directives added inside server { }, e.g. auth_basic and
    // auth_basic_user_file, or a `location` that behaves differently.
    std::string extra_server_config{};
    // Directives added inside http { }, outside the server.
    std::string extra_http_config{};
    // Further IPv4 addresses to listen on, beside 127.0.0.1 and on the same
    // port (e.g. NetworkHost::server_address()); each must be an address of
    // an interface already.
    std::vector<std::string> listen_addresses{};
    // The port to listen on; 0: a free one.
    uint16_t port = 0;
    // How long nginx may take to accept connections.
    std::chrono::milliseconds start_timeout{10000};
  };

  // Serves `root_dir` (its files at url() + "/" + their relative path) and
  // returns once nginx accepts connections. Throws std::runtime_error with
  // nginx's error log if it does not (a bad extra config, a taken port).
  explicit NginxServer(const std::string& root_dir);
  NginxServer(const std::string& root_dir, Options options);
  // stop().
  ~NginxServer();
  NginxServer(const NginxServer&) = delete;
  NginxServer& operator=(const NginxServer&) = delete;

  // "http://127.0.0.1:PORT", without a trailing slash.
  std::string url() const { return url_on("127.0.0.1"); }
  // The same on another of the listen addresses.
  std::string url_on(const std::string& address) const {
    return "http://" + address + ":" + std::to_string(port_);
  }
  uint16_t port() const noexcept { return port_; }
  // The pid of the running nginx, or of the last one after stop().
  pid_t pid() const noexcept { return pid_; }
  bool running();

  // Ends nginx (SIGTERM: it closes every connection at once). Connections
  // to port() are refused afterwards.
  void stop();
  // Starts nginx again on the same port, with the same configuration, and
  // waits until it accepts connections; nothing if it is running. Throws as
  // the constructor does.
  void start();

  // What nginx logged so far (appended to across restarts). Each access log
  // line: `"GET /path HTTP/1.1" STATUS BYTES "RANGE" "USER" CLIENT_ADDRESS`.
  std::string access_log() const;
  std::string error_log() const;
  // Where nginx.conf, the logs and the pid file are.
  const std::string& prefix() const noexcept { return dir_.path(); }

 private:
  void write_config() const;
  // Starts nginx on port_; false if the port was taken (another process
  // bound it after pick_free_port()); throws on any other failure.
  bool try_start();

  std::string root_;
  Options options_;
  TempDir dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  std::optional<ChildProcess> process_;  // after dir_: ended before it is removed
};

// One line of an htpasswd file that nginx's auth_basic_user_file accepts:
// "user:{SSHA}..." (salted SHA-1, computed with libcrypto). For tests only:
// SHA-1 is not a password hash to protect anything real with.
std::string htpasswd_line(const std::string& user, const std::string& password);

}  // namespace pagerfs::testing
