#include "support/registry_server.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/http_client.h"

#ifndef PAGERFS_DOCKER_REGISTRY
#define PAGERFS_DOCKER_REGISTRY "/usr/bin/docker-registry"
#endif

namespace pagerfs::testing {

RegistryServer::RegistryServer() : RegistryServer(Options{}) {}

RegistryServer::RegistryServer(Options options) : options_(std::move(options)) {
  if (::access(PAGERFS_DOCKER_REGISTRY, X_OK) != 0) {
    throw std::runtime_error(std::string("RegistryServer: no ") + PAGERFS_DOCKER_REGISTRY +
                             " (scripts/setup installs docker-registry)");
  }
  std::filesystem::create_directories(storage());
  // A free port may be taken by someone else before the registry binds it.
  for (int attempt = 0;; ++attempt) {
    port_ = pick_free_port();
    if (try_start()) return;
    if (attempt == 4) throw std::runtime_error("RegistryServer: no free port:\n" + output());
  }
}

RegistryServer::~RegistryServer() {
  stop();
}

std::string RegistryServer::output() const {
  std::ifstream in(dir_.path() + "/output", std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool RegistryServer::try_start() {
  const std::string config = dir_.path() + "/config.yml";
  std::ostringstream yaml;
  yaml << "version: 0.1\n"
       << "log:\n  level: info\n  accesslog:\n    disabled: false\n"
       << "storage:\n  filesystem:\n    rootdirectory: " << storage() << "\n"
       << "  delete:\n    enabled: false\n"
       << "http:\n  addr: 127.0.0.1:" << port_ << "\n  secret: pagerfs-test-secret\n";
  if (!options_.auth_yaml.empty()) yaml << "auth:\n" << options_.auth_yaml;
  write_file(config, yaml.str());
  const size_t output_start = output().size();
  process_.emplace(std::vector<std::string>{PAGERFS_DOCKER_REGISTRY, "serve", config},
                   SpawnOptions{.stdout_path = dir_.path() + "/output", .stderr_path = dir_.path() + "/output"});
  pid_ = process_->pid();
  const auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
  for (;;) {
    if (output().find("address already in use", output_start) != std::string::npos) {
      process_->stop(std::chrono::seconds(2));
      return false;
    }
    if (!process_->running()) {
      throw std::runtime_error("RegistryServer: docker-registry exited (" + process_->exit_status()->describe() +
                               "); config and output in " + dir_.path() + ":\n" + output());
    }
    if (can_connect(port_)) {
      const HttpResponse r = http_fetch(url() + "/v2/", HttpRequest{.timeout = std::chrono::milliseconds(2000)});
      if (r.status == 200 || r.status == 401) return true;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      process_->stop(std::chrono::seconds(2));
      throw std::runtime_error("RegistryServer: /v2/ did not answer within " +
                               std::to_string(options_.start_timeout.count()) + " ms:\n" + output());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void RegistryServer::stop() {
  if (process_) process_->stop();
}

}  // namespace pagerfs::testing
