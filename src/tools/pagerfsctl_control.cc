// pagerfsctl stats, dump, prewarm and drop-caches: requests to a mount's
// control socket.
#include <climits>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "pagerfs/control/control.h"
#include "pagerfs/util/units.h"
#include "tools/pagerfsctl.h"

namespace pagerfs::ctl {
namespace {

// Sends `request` to the daemon; returns its answer. Every command but a
// prewarm (which may decode a whole image) gets control::kClientTimeout.
Result<std::string> ask(const ControlTarget& target, const control::Request& request) {
  auto endpoint = target.socket.empty() ? control::socket_for_mount(target.mountpoint)
                                        : control::explicit_socket(target.socket);
  if (!endpoint) return endpoint.error();
  std::optional<std::chrono::milliseconds> timeout = control::kClientTimeout;
  if (request.command == "prewarm") timeout.reset();
  if (target.timeout_s) {
    timeout.reset();
    if (*target.timeout_s > 0) timeout = std::chrono::milliseconds(static_cast<int64_t>(*target.timeout_s * 1000));
  }
  return control::request(endpoint.value(), control::encode_request(request), timeout);
}

}  // namespace

int run_control(const ControlTarget& target, const control::Request& request) {
  auto answer = ask(target, request);
  if (!answer) return print_error(answer.error().message()), kExitFailure;
  std::fputs(answer.value().c_str(), stdout);
  return kExitOk;
}

int run_upgrade(const ControlTarget& target, const std::string& binary) {
  std::string absolute = binary;
  if (!binary.empty() && binary[0] != '/') {
    char resolved[PATH_MAX];
    if (::realpath(binary.c_str(), resolved) == nullptr) {
      return print_error("--binary '" + binary + "': " + std::strerror(errno)), kExitUsage;
    }
    absolute = resolved;
  }
  struct Serving {
    uint64_t generation = 0;
    long long pid = 0;
    uint64_t failed = 0;  // upgrades that failed so far
  };
  const auto serving_now = [&]() -> std::optional<Serving> {
    auto answer = ask(target, control::make_request("stats"));
    if (!answer) return std::nullopt;
    const auto s = nlohmann::json::parse(answer.value(), nullptr, false);
    if (s.is_discarded() || !s.contains("takeover")) return std::nullopt;
    const auto& t = s["takeover"];
    return Serving{t.value("generation", uint64_t{0}), t.value("pid", 0ll), t.value("upgrades_failed", uint64_t{0})};
  };
  const auto before = serving_now();
  control::Request request = control::make_request("upgrade");
  request.binary = absolute;
  if (auto asked = ask(target, request); !asked) return print_error(asked.error().message()), kExitFailure;
  // The supervisor gives a new server 60 s to get ready, then retires the
  // old one; whoever answers stats now tells which one serves.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(75);
  while (std::chrono::steady_clock::now() < deadline) {
    const auto now = serving_now();
    if (now && before && now->generation > before->generation) {
      std::printf("upgraded: server pid %lld (generation %llu)\n", now->pid,
                  static_cast<unsigned long long>(now->generation));
      return kExitOk;
    }
    if (now && before && now->failed > before->failed) {
      return print_error("upgrade failed: the new server did not get ready; the old one goes on (see the mount's "
                         "log)"),
             kExitFailure;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return print_error("upgrade: the mount is still served by the old server (see its log)"), kExitFailure;
}

int run_stats(const ControlTarget& target, bool json) {
  if (json) return run_control(target, control::make_request("stats"));
  auto answer = ask(target, control::make_request("stats"));
  if (!answer) return print_error(answer.error().message()), kExitFailure;
  const auto s = nlohmann::json::parse(answer.value());
  const auto& p = s["pager"];
  std::printf("store        %s (%llu blob inodes held)\n", s["store"].get<std::string>().c_str(),
              s["blob_inodes"].get<unsigned long long>());
  std::printf("pager        %llu faults, %llu chunks decoded, %llu read ahead, chunk cache %s\n",
              p["faults"].get<unsigned long long>(), p["chunks_decoded"].get<unsigned long long>(),
              p["readahead_chunks"].get<unsigned long long>(),
              format_size(p["chunk_cache_bytes"].get<uint64_t>()).c_str());
  std::printf("             cache hits %llu, misses %llu, coalesced %llu; decode p50 %llu us, p99 %llu us\n",
              p["chunk_cache_hits"].get<unsigned long long>(), p["chunk_cache_misses"].get<unsigned long long>(),
              p["coalesced_waits"].get<unsigned long long>(),
              p["decode_latency"]["p50_us"].get<unsigned long long>(),
              p["decode_latency"]["p99_us"].get<unsigned long long>());
  for (const auto& l : s["layers"]) {
    std::printf("layer %-6s %llu reads, %s served, %llu sectors missed, %llu errors, %s cached\n",
                l["type"].get<std::string>().c_str(), l["reads"].get<unsigned long long>(),
                format_size(l["bytes_read"].get<uint64_t>()).c_str(),
                l["sectors_missed"].get<unsigned long long>(), l["errors"].get<unsigned long long>(),
                format_size(l["bytes_cached"].get<uint64_t>()).c_str());
    if (l.value("requests", 0ull) > 0) {  // a remote layer
      std::printf("             %llu HTTP requests, %llu retries, %llu failovers; read p50 %llu us, p99 %llu us\n",
                  l["requests"].get<unsigned long long>(), l["retries"].get<unsigned long long>(),
                  l["failovers"].get<unsigned long long>(), l["read_latency"]["p50_us"].get<unsigned long long>(),
                  l["read_latency"]["p99_us"].get<unsigned long long>());
    }
    if (l.value("outage", false)) {
      std::printf("             outage: no mirror answered the last read; %llu reads failed at once\n",
                  l["failed_fast"].get<unsigned long long>());
    }
    for (const auto& m : l.value("mirrors", nlohmann::json::array())) {
      std::printf("  mirror %s: %llu requests, %s, %llu errors, %llu retries, %llu failovers; p50 %llu us, p99 %llu "
                  "us%s\n",
                  m["url"].get<std::string>().c_str(), m["requests"].get<unsigned long long>(),
                  format_size(m["bytes"].get<uint64_t>()).c_str(), m["errors"].get<unsigned long long>(),
                  m["retries"].get<unsigned long long>(), m["failovers"].get<unsigned long long>(),
                  m["latency"]["p50_us"].get<unsigned long long>(), m["latency"]["p99_us"].get<unsigned long long>(),
                  m["cooling_down"].get<bool>() ? ", cooling down" : "");
    }
  }
  if (s.contains("control")) {
    const auto& c = s["control"];
    std::printf("control      %llu connections; refused: %llu other uid, %llu oversized, %llu timed out, %llu over "
                "the connection limit\n",
                c["connections"].get<unsigned long long>(), c["refused_peers"].get<unsigned long long>(),
                c["oversized"].get<unsigned long long>(), c["timed_out"].get<unsigned long long>(),
                c["evicted"].get<unsigned long long>());
  }
  for (const auto& [name, op] : s["fuse"].items()) {
    if (!op.contains("calls") || op["calls"].get<uint64_t>() == 0 || !op.contains("latency")) continue;
    std::printf("fuse %-8s %llu calls, %llu errors, p50 %llu us, p99 %llu us\n", name.c_str(),
                op["calls"].get<unsigned long long>(), op["errors"].get<unsigned long long>(),
                op["latency"]["p50_us"].get<unsigned long long>(),
                op["latency"]["p99_us"].get<unsigned long long>());
  }
  return kExitOk;
}

int run_prewarm(const ControlTarget& target, const std::vector<std::string>& items) {
  // Paths may be given under the mount point or relative to it.
  char root[PATH_MAX];
  if (::realpath(target.mountpoint.c_str(), root) == nullptr) {
    return print_error("'" + target.mountpoint + "': " + std::strerror(errno)), kExitFailure;
  }
  control::Request request = control::make_request("prewarm");
  for (const std::string& item : items) {
    // FILE or FILE:OFFSET:LENGTH; FILE may be relative to the current directory.
    control::PrewarmItem parsed = control::parse_prewarm_item(item);
    char resolved[PATH_MAX];
    if (::realpath(parsed.path.c_str(), resolved) != nullptr) parsed.path = resolved;
    if (parsed.path.starts_with(std::string(root) + "/")) parsed.path = parsed.path.substr(std::strlen(root) + 1);
    request.items.push_back(std::move(parsed));
  }
  return run_control(target, request);
}

int run_record(const ControlTarget& target, const std::string& image, const std::string& output,
               const std::vector<std::string>& command) {
  auto started = ask(target, control::make_request("record-start"));
  if (!started) return print_error(started.error().message()), kExitFailure;
  // The command runs as a child of ours, with our standard streams.
  std::vector<char*> argv;
  for (const std::string& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return print_error(std::string("fork: ") + std::strerror(errno)), kExitFailure;
  if (pid == 0) {
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "pagerfsctl: cannot run '%s': %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const int command_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  control::Request record_stop = control::make_request("record-stop");
  record_stop.image = image;
  record_stop.save = output.empty();
  auto profile = ask(target, record_stop);
  if (!profile) return print_error(profile.error().message()), kExitFailure;
  const size_t ranges = static_cast<size_t>(std::count(profile.value().begin(), profile.value().end(), '\n')) - 1;
  if (!output.empty()) {
    std::FILE* file = std::fopen(output.c_str(), "we");
    if (file == nullptr) return print_error("'" + output + "': " + std::strerror(errno)), kExitFailure;
    const bool written = std::fwrite(profile.value().data(), 1, profile.value().size(), file) == profile.value().size();
    if (std::fclose(file) != 0 || !written) return print_error("'" + output + "': " + std::strerror(errno)), kExitFailure;
  }
  std::fprintf(stderr, "pagerfsctl: recorded %zu ranges of image %s%s%s\n", ranges, image.c_str(),
               output.empty() ? ", saved as its profile in the store" : " to ", output.c_str());
  if (command_status != 0) std::fprintf(stderr, "pagerfsctl: the command exited with status %d\n", command_status);
  return command_status;
}

}  // namespace pagerfs::ctl
