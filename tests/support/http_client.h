// A small HTTP client for tests (libcurl): one request on a fresh connection,
// the whole answer in memory, and every failure reported rather than thrown,
// so that a test can check how a transfer failed.
//
// Thread safety: http_fetch() may be called from several threads at once.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace pagerfs::testing {

struct HttpRequest {
  std::string method = "GET";          // "HEAD" sends no body and expects none
  std::vector<std::string> headers{};  // "Name: value", e.g. "Range: bytes=0-99"
  std::string body{};                  // sent with POST, PUT, ...
  std::string user{};                  // "name:password" for basic authentication; empty: none
  bool follow_redirects = false;       // like curl -L
  std::chrono::milliseconds timeout{10000};
};

struct HttpResponse {
  int curl_code = 0;  // a CURLcode: 0 (CURLE_OK) when a whole answer arrived
  std::string error;  // libcurl's message when curl_code != 0
  long status = 0;    // the HTTP status of the last answer; 0 if none arrived
  std::map<std::string, std::string> headers;  // of the last answer; names in lower case
  std::string body;                            // what arrived, also of a failed transfer
  std::chrono::milliseconds elapsed{};

  // A header's value, or "" if absent; `name` in lower case.
  std::string header(const std::string& name) const;
  // For failure messages: "206, 100 bytes" or "curl 18: transfer closed ...".
  std::string describe() const;
};

HttpResponse http_fetch(const std::string& url, const HttpRequest& request = {});

}  // namespace pagerfs::testing
