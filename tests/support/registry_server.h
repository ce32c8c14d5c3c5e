// A real OCI registry on 127.0.0.1 (Debian's docker-registry, the CNCF
// distribution 2.8), for tests of pagerfsctl push and pull: its own config
// YAML and storage directory in a temporary directory, a free port, and
// whatever authentication the test configures (htpasswd, token).
//
// The registry runs in the foreground as one process, the ChildProcess the
// test owns: stopping it is one SIGTERM to that pid (SIGKILL after a bound),
// and the kernel kills it if the test dies (see child_process.h).
//
// Thread safety: one owner thread (start it on the test's own thread);
// url(), port() and pid() may be read from any thread, and the registry
// serves any number of clients at once.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "support/child_process.h"
#include "support/subprocess.h"

namespace pagerfs::testing {

class RegistryServer {
 public:
  struct Options {
    // The YAML block under `auth:` (indented by 2), e.g.
    //   "  htpasswd:\n    realm: test\n    path: /tmp/x/htpasswd\n"
    // Empty: no authentication.
    std::string auth_yaml{};
    // How long the registry may take to answer /v2/.
    std::chrono::milliseconds start_timeout{20000};
  };

  // Starts the registry and returns once /v2/ answers (200, or 401 when it
  // wants authentication). Throws std::runtime_error with its output if it
  // does not (a bad config, no docker-registry installed).
  RegistryServer();
  explicit RegistryServer(Options options);
  // stop().
  ~RegistryServer();
  RegistryServer(const RegistryServer&) = delete;
  RegistryServer& operator=(const RegistryServer&) = delete;

  // "http://127.0.0.1:PORT", and "oci://127.0.0.1:PORT/REPO".
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string oci(const std::string& repository) const {
    return "oci://127.0.0.1:" + std::to_string(port_) + "/" + repository;
  }
  uint16_t port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }
  // Where the registry keeps what it is sent.
  std::string storage() const { return dir_.path() + "/storage"; }
  // What the registry printed (its access log included).
  std::string output() const;

  // Ends the registry (SIGTERM, then SIGKILL).
  void stop();

 private:
  // Starts it on port_; false if the port was taken meanwhile.
  bool try_start();

  Options options_;
  TempDir dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  std::optional<ChildProcess> process_;  // after dir_: ended before it is removed
};

}  // namespace pagerfs::testing
