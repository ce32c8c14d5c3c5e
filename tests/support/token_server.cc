#include "support/token_server.h"

#include <filesystem>
#include <stdexcept>
#include <thread>

#ifndef PAGERFS_TOKEN_SERVER_SCRIPT
#error "meson defines PAGERFS_TOKEN_SERVER_SCRIPT: the path of tests/support/token_server.py"
#endif
#ifndef PAGERFS_PYTHON
#define PAGERFS_PYTHON "python3"
#endif

namespace pagerfs::testing {

TokenServer::TokenServer(Options options) {
  const std::string key = dir_ / "key.pem", cert = dir_ / "cert.pem";
  const ProcessResult made = run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
                                  cert, "-days", "2", "-subj", "/CN=pagerfs-test-token-issuer"});
  if (made.exit_code != 0) throw std::runtime_error("TokenServer: openssl req failed: " + made.err);
  const std::string port_file = dir_ / "port";
  std::vector<std::string> argv = {PAGERFS_PYTHON, PAGERFS_TOKEN_SERVER_SCRIPT, "--port-file", port_file, "--key", key,
                                   "--cert", cert, "--issuer", "pagerfs-test-issuer", "--expires",
                                   std::to_string(options.expires_s)};
  if (!options.user.empty()) {
    argv.push_back("--user");
    argv.push_back(options.user);
  }
  process_.emplace(argv, SpawnOptions{.stdout_path = dir_ / "output", .stderr_path = dir_ / "output"});
  const auto port = wait_for_port_file(*process_, port_file, std::chrono::seconds(20));
  if (const auto* why = std::get_if<std::string>(&port)) throw std::runtime_error("TokenServer: " + *why + ":\n" + output());
  port_ = std::get<uint16_t>(port);
}

TokenServer::~TokenServer() {
  stop();
}

std::string TokenServer::registry_auth_yaml() const {
  return "  token:\n    realm: " + realm() + "\n    service: pagerfs-test\n    issuer: pagerfs-test-issuer\n" +
         "    rootcertbundle: " + (dir_ / "cert.pem") + "\n";
}

std::string TokenServer::output() const {
  return std::filesystem::exists(dir_ / "output") ? read_file(dir_ / "output") : std::string();
}

void TokenServer::stop() {
  if (process_) process_->stop();
}

}  // namespace pagerfs::testing
