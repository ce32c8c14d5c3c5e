// A fault-injecting HTTP proxy in front of a real server (fault_proxy.py, run
// by python3 as a child process): the test says which requests to break and
// how, and the code under test sees real sockets misbehave, including a
// redirect to "object storage" as registries answer.
//
//   NginxServer nginx(store_dir);
//   FaultProxy proxy(nginx.url());
//   proxy.set_rules({{.path = "/blobs/", .action = "status:503", .count = 2}});
//   ... the code under test reads proxy.url() ...
//   EXPECT_EQ(proxy.requests("/blobs/"), 3);
//
// Actions (see fault_proxy.py): "status:CODE", "delay:MS", "truncate:N",
// "corrupt" or "corrupt:OFFSET", "close", "redirect".
//
// Beware, when testing a client that keeps connections alive: libcurl resends
// a request once, on a new connection, when a reused one is closed without an
// answer ("close" then breaks one attempt, not the request).
//
// Thread safety: one owner thread starts and stops it (see child_process.h);
// set_rules(), requests() and log() may be called from any thread, and the
// proxy serves any number of clients at once.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/child_process.h"
#include "support/subprocess.h"

namespace pagerfs::testing {

struct FaultRule {
  // A substring of the request path (query included) that selects requests;
  // "" selects all. Requests to /__direct__/ (after a redirect) only match
  // rules whose path contains "__direct__".
  std::string path{};
  // What to do to them, e.g. "status:503" (see above).
  std::string action{};
  // How many of the next selected requests to break; -1: all of them.
  int count = -1;
  // The method to select ("GET", "HEAD", ...); "": any.
  std::string method{};
};

class FaultProxy {
 public:
  // Starts the proxy at a free port of 127.0.0.1, forwarding to
  // `upstream_url` ("http://127.0.0.1:PORT"), with no rules, and returns once
  // it accepts connections. Throws std::runtime_error (with its output) if it
  // does not within 10 s.
  explicit FaultProxy(const std::string& upstream_url);
  // stop().
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // "http://127.0.0.1:PORT", without a trailing slash.
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  uint16_t port() const noexcept { return port_; }
  pid_t pid() const noexcept { return process_->pid(); }
  bool running() { return process_->running(); }
  void stop() { process_->stop(); }

  // Replaces every rule; the first rule with requests left that selects a
  // request applies to it. Throws std::runtime_error if the proxy rejects a
  // rule (an unknown action, say) and then keeps the rules it had.
  void set_rules(const std::vector<FaultRule>& rules);
  // The same, from the JSON array the proxy takes:
  // [{"path": "/blobs/", "action": "close", "count": 1, "method": "GET"}].
  void set_rules_json(const std::string& json);
  // No rules: every request is forwarded as it is.
  void clear() { set_rules_json("[]"); }

  // How many requests (control requests aside) had a path containing
  // `path_substr`, faulted or not, since the start or clear_log().
  int requests(std::string_view path_substr) const;
  // Those requests, one line each: "GET /path [bytes=0-99] -> 206 (truncate:10)".
  std::string log() const;
  void clear_log();

  // The proxy's standard error (its startup line and any Python traceback).
  std::string output() const;

 private:
  // The body of a control request's answer; throws unless it is 200.
  std::string control(const std::string& method, const std::string& path,
                      const std::string& body = "") const;

  TempDir dir_;
  uint16_t port_ = 0;
  std::optional<ChildProcess> process_;  // after dir_: ended before it is removed
};

}  // namespace pagerfs::testing
