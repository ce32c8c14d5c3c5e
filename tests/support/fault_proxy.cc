#include "support/fault_proxy.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <stdexcept>
#include <thread>

#include "support/http_client.h"

#ifndef PAGERFS_FAULT_PROXY_SCRIPT
#error "meson defines PAGERFS_FAULT_PROXY_SCRIPT: the path of tests/support/fault_proxy.py"
#endif
#ifndef PAGERFS_PYTHON
#define PAGERFS_PYTHON "python3"
#endif

namespace pagerfs::testing {

FaultProxy::FaultProxy(const std::string& upstream_url) {
  const std::string port_file = dir_ / "port";
  // The proxy binds port 0 itself and writes the port it got: no other
  // process can take it between choosing and binding.
  process_.emplace(std::vector<std::string>{PAGERFS_PYTHON, PAGERFS_FAULT_PROXY_SCRIPT,
                                            "--upstream", upstream_url, "--port-file", port_file},
                   SpawnOptions{.stdout_path = dir_ / "output", .stderr_path = dir_ / "output"});
  const auto port = wait_for_port_file(*process_, port_file, std::chrono::seconds(10));
  if (const auto* why = std::get_if<std::string>(&port)) {
    throw std::runtime_error(std::string("FaultProxy: ") + PAGERFS_FAULT_PROXY_SCRIPT + " " + *why + ":\n" + output());
  }
  port_ = std::get<uint16_t>(port);
}

FaultProxy::~FaultProxy() {
  stop();
}

std::string FaultProxy::control(const std::string& method, const std::string& path,
                                const std::string& body) const {
  const HttpResponse r = http_fetch(url() + path, HttpRequest{.method = method, .body = body});
  if (r.curl_code != 0 || r.status != 200) {
    throw std::runtime_error("FaultProxy: " + method + " " + path + ": " + r.describe() + ": " +
                             r.body);
  }
  return r.body;
}

void FaultProxy::set_rules(const std::vector<FaultRule>& rules) {
  nlohmann::json json = nlohmann::json::array();
  for (const FaultRule& rule : rules) {
    nlohmann::json r = {{"path", rule.path}, {"action", rule.action}, {"count", rule.count}};
    if (!rule.method.empty()) r["method"] = rule.method;
    json.push_back(std::move(r));
  }
  set_rules_json(json.dump());
}

void FaultProxy::set_rules_json(const std::string& json) {
  control("POST", "/__rules__", json);
}

int FaultProxy::requests(std::string_view path_substr) const {
  int n = 0;
  for (const nlohmann::json& entry : nlohmann::json::parse(control("GET", "/__log__"))) {
    if (entry.at("path").get<std::string>().find(path_substr) != std::string::npos) ++n;
  }
  return n;
}

std::string FaultProxy::log() const {
  std::string out;
  for (const nlohmann::json& entry : nlohmann::json::parse(control("GET", "/__log__"))) {
    out += entry.at("method").get<std::string>() + " " + entry.at("path").get<std::string>();
    if (const std::string range = entry.at("range"); !range.empty()) out += " [" + range + "]";
    const int status = entry.at("status");
    out += " -> " + (status != 0 ? std::to_string(status) : std::string("no answer"));
    if (const std::string action = entry.at("action"); !action.empty()) out += " (" + action + ")";
    out += "\n";
  }
  return out;
}

void FaultProxy::clear_log() {
  control("DELETE", "/__log__");
}

std::string FaultProxy::output() const {
  try {
    return read_file(dir_ / "output");
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace pagerfs::testing
