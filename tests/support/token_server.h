// A registry token server of ours (token_server.py, run by python3 as a
// child process) for the Bearer flow of the distribution token spec: the
// registry (RegistryServer with registry_auth_yaml()) answers 401 with a
// challenge naming realm(); clients get a JWT there, signed by a key whose
// self-signed certificate (made with openssl for this server) is the
// registry's rootcertbundle.
//
//   TokenServer tokens({.user = "alice:s3cret"});
//   RegistryServer registry({.auth_yaml = tokens.registry_auth_yaml()});
//
// Thread safety: one owner thread starts and stops it (see
// child_process.h); the server answers any number of clients at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "support/child_process.h"
#include "support/subprocess.h"

namespace pagerfs::testing {

class TokenServer {
 public:
  struct Options {
    std::string user{};  // "USER:PASSWORD" the server demands; empty: anyone gets a token
    int expires_s = 300;  // the tokens' lifetime
  };
  // Makes the key and certificate, starts the server, and returns once it
  // accepts connections. Throws std::runtime_error (with its output) if not.
  explicit TokenServer(Options options);
  ~TokenServer();
  TokenServer(const TokenServer&) = delete;
  TokenServer& operator=(const TokenServer&) = delete;

  std::string realm() const { return "http://127.0.0.1:" + std::to_string(port_) + "/token"; }
  // The `auth:` block of a registry that trusts this server's tokens.
  std::string registry_auth_yaml() const;
  // What the server printed: one line per request.
  std::string output() const;
  void stop();

 private:
  TempDir dir_;
  uint16_t port_ = 0;
  std::optional<ChildProcess> process_;  // after dir_: ended before it is removed
};

}  // namespace pagerfs::testing
