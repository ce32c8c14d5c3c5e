#include "support/http_server.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#ifndef PAGERFS_NGINX
#define PAGERFS_NGINX "/usr/sbin/nginx"
#endif

namespace pagerfs::testing {
namespace {

std::string read_if_present(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A path as an nginx config string: nginx has no quoting of '"' in paths, and
// the test's temp dir has none.
std::string quoted(const std::string& path) {
  if (path.find_first_of("\"\\$;") != std::string::npos) {
    throw std::invalid_argument("NginxServer: path unusable in nginx.conf: " + path);
  }
  return '"' + path + '"';
}

}  // namespace

NginxServer::NginxServer(const std::string& root_dir) : NginxServer(root_dir, Options{}) {}

NginxServer::NginxServer(const std::string& root_dir, Options options)
    : root_(std::filesystem::absolute(root_dir).lexically_normal().string()),
      options_(std::move(options)) {
  if (!std::filesystem::is_directory(root_))
    throw std::runtime_error("NginxServer: no directory " + root_);
  if (::access(PAGERFS_NGINX, X_OK) != 0) {
    throw std::runtime_error(std::string("NginxServer: no ") + PAGERFS_NGINX +
                             " (scripts/setup installs nginx)");
  }
  // A free port may be taken by someone else before nginx binds it; then
  // another one is tried. A port the test asked for is not replaced.
  for (int attempt = 0;; ++attempt) {
    port_ = options_.port != 0 ? options_.port : pick_free_port();
    write_config();
    if (try_start()) return;
    if (options_.port != 0 || attempt == 4) {
      throw std::runtime_error("NginxServer: port " + std::to_string(port_) + " is taken:\n" +
                               error_log());
    }
  }
}

NginxServer::~NginxServer() {
  stop();
}

void NginxServer::write_config() const {
  const std::string& p = dir_.path();
  for (const char* temp : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
    std::filesystem::create_directories(p + "/temp/" + temp);
  }
  std::ostringstream conf;
  // master_process off: one process, the pid the test owns, which ends on
  // SIGTERM and cannot leave workers behind. It also never changes user, so
  // a root test's nginx reads the root-owned 0700 temp dirs the test wrote.
  conf << "daemon off;\n"
       << "master_process off;\n"
       << "pid " << quoted(p + "/nginx.pid") << ";\n"
       << "error_log " << quoted(p + "/error.log") << " info;\n"
       << "events { worker_connections 512; }\n"
       << "http {\n"
       << "  default_type application/octet-stream;\n"
       << "  sendfile on;\n"
       << "  tcp_nopush on;\n"
       << "  keepalive_timeout 60s;\n"
       << "  server_tokens off;\n"
       << "  log_format pagerfs_test '\"$request\" $status $body_bytes_sent \"$http_range\" "
          "\"$remote_user\" $remote_addr';\n"
       << "  access_log " << quoted(p + "/access.log")
       << " pagerfs_test;\n"
       // The compiled-in temp paths are under /var/lib/nginx, which only root may write.
       << "  client_body_temp_path " << quoted(p + "/temp/client_body") << ";\n"
       << "  proxy_temp_path " << quoted(p + "/temp/proxy") << ";\n"
       << "  fastcgi_temp_path " << quoted(p + "/temp/fastcgi") << ";\n"
       << "  uwsgi_temp_path " << quoted(p + "/temp/uwsgi") << ";\n"
       << "  scgi_temp_path " << quoted(p + "/temp/scgi") << ";\n"
       << options_.extra_http_config << "\n"
       << "  server {\n"
       << "    listen 127.0.0.1:" << port_ << ";\n";
  for (const std::string& address : options_.listen_addresses) {
    conf << "    listen " << address << ":" << port_ << ";\n";
  }
  conf
       << "    server_name localhost;\n"
       << "    root " << quoted(root_) << ";\n"
       << options_.extra_server_config << "\n"
       << "  }\n"
       << "}\n";
  write_file(p + "/nginx.conf", conf.str());
}

bool NginxServer::try_start() {
  const std::string& p = dir_.path();
  const std::string pid_file = p + "/nginx.pid";
  std::filesystem::remove(pid_file);
  const size_t log_start = error_log().size();
  process_.emplace(std::vector<std::string>{PAGERFS_NGINX, "-p", p + "/", "-c", p + "/nginx.conf",
                                            "-e", p + "/error.log"},
                   SpawnOptions{.stdout_path = p + "/nginx.out", .stderr_path = p + "/nginx.out"});
  pid_ = process_->pid();
  auto failure = [&](const std::string& why) {
    process_->stop(std::chrono::seconds(2));
    return std::runtime_error("NginxServer: nginx " + why + " (config and logs in " + p +
                              ")\nerror log:\n" + error_log().substr(log_start) + "\noutput:\n" +
                              read_if_present(p + "/nginx.out"));
  };
  // nginx writes its pid file after it has bound the port: then a connection
  // accepted on the port is one to this nginx, not to whoever else holds it.
  const auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
  for (;;) {
    const std::string log = error_log().substr(log_start);
    if (log.find("Address already in use") != std::string::npos) {
      process_->stop(std::chrono::seconds(2));
      return false;
    }
    if (!process_->running()) throw failure("exited (" + process_->exit_status()->describe() + ")");
    if (read_if_present(pid_file) == std::to_string(pid_) + "\n" && can_connect(port_)) return true;
    if (std::chrono::steady_clock::now() > deadline) {
      throw failure("did not accept connections on port " + std::to_string(port_) + " within " +
                    std::to_string(options_.start_timeout.count()) + " ms");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool NginxServer::running() {
  return process_ && process_->running();
}

void NginxServer::stop() {
  if (process_) process_->stop();
}

void NginxServer::start() {
  if (running()) return;
  if (!try_start()) {
    throw std::runtime_error("NginxServer: port " + std::to_string(port_) +
                             " was taken by another process while nginx was stopped");
  }
}

std::string NginxServer::access_log() const {
  return read_if_present(dir_.path() + "/access.log");
}

std::string NginxServer::error_log() const {
  return read_if_present(dir_.path() + "/error.log");
}

std::string htpasswd_line(const std::string& user, const std::string& password) {
  // {SSHA}: base64(SHA-1(password + salt) + salt).
  unsigned char salt[8];
  if (RAND_bytes(salt, sizeof salt) != 1) throw std::runtime_error("RAND_bytes failed");
  std::string input = password + std::string(reinterpret_cast<const char*>(salt), sizeof salt);
  unsigned char digest_and_salt[SHA_DIGEST_LENGTH + sizeof salt];
  unsigned int digest_size = 0;
  if (EVP_Digest(input.data(), input.size(), digest_and_salt, &digest_size, EVP_sha1(), nullptr) !=
          1 ||
      digest_size != SHA_DIGEST_LENGTH) {
    throw std::runtime_error("EVP_Digest(SHA-1) failed");
  }
  std::copy(std::begin(salt), std::end(salt), digest_and_salt + SHA_DIGEST_LENGTH);
  unsigned char base64[4 * ((sizeof digest_and_salt + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(base64, digest_and_salt, sizeof digest_and_salt);
  return user + ":{SSHA}" +
         std::string(reinterpret_cast<const char*>(base64), static_cast<size_t>(n));
}

}  // namespace pagerfs::testing
