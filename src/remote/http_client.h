// A small HTTP client over libcurl for the remote layer: one request at a
// time per call, any number of calls at once, connections kept alive between
// them.
//
// Each call borrows an easy handle from a pool and returns it afterwards;
// curl_easy_reset() keeps a handle's connection cache, so a later request to
// the same server reuses its connection (keep-alive, and HTTP/2 over TLS
// where the server offers it). Redirects are followed (at most 5, http and
// https only: registries answer 307 to object storage), and every request is
// bounded: a connect timeout, a whole-request timeout, and a stall limit.
//
// The body is handed to the caller's BodyFn as it arrives, with the response
// (status, Content-Length, Content-Range, the headers) already known; the
// BodyFn returns false to stop the transfer (the request then ends with
// `aborted` set).
//
// A request may carry headers of its own (Authorization, Accept, ...) and a
// body (PUT, POST, PATCH) from memory or streamed from a file, never loaded
// whole: registries take blobs of gigabytes. Response headers are kept,
// bounded (kMaxResponseHeaderBytes in all), names in lower case.
//
// Thread safety: perform() may be called concurrently from any threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pagerfs/util/error.h"

namespace pagerfs::remote {

struct HttpClientOptions {
  std::chrono::milliseconds connect_timeout{5000};
  // A transfer slower than 1 KiB/s for this long is abandoned: a server that
  // stops sending does not hold a reader until the whole-request timeout.
  std::chrono::seconds stall_time{5};
  size_t max_idle_handles = 32;
};

// What a request sends: nothing, bytes in memory (which must outlive the
// request), or `size` bytes of an open file from offset 0 (read with pread,
// so the caller's file offset is untouched and a resend starts over).
struct HttpRequestBody {
  std::span<const std::byte> memory{};
  int fd = -1;
  uint64_t size = 0;
  static HttpRequestBody of(std::span<const std::byte> data) { return {data, -1, data.size()}; }
  static HttpRequestBody of_file(int fd, uint64_t size) { return {{}, fd, size}; }
};

struct HttpRequest {
  enum class Method { get, head, put, post, patch };
  std::string url{};
  Method method = Method::get;
  // Bytes [first, last] of the resource (a Range request), or all of it.
  std::optional<std::pair<uint64_t, uint64_t>> range{};
  std::chrono::milliseconds timeout{10000};
  // "Name: value" lines sent as they are (Authorization, Accept,
  // Content-Type). Never logged: they may hold credentials.
  std::vector<std::string> headers{};
  // For put, post and patch (a post or patch without one sends no bytes).
  HttpRequestBody body{};
  // Redirects are followed unless this is false (then a 3xx is the answer:
  // its Location is in the headers).
  bool follow_redirects = true;
};

struct HttpResponse {
  struct ContentRange {
    uint64_t first = 0, last = 0;
    std::optional<uint64_t> total;  // "*" in the header: unknown
  };
  long status = 0;
  std::optional<uint64_t> content_length;
  std::optional<ContentRange> content_range;
  uint64_t body_bytes = 0;  // bytes handed to the BodyFn
  bool aborted = false;     // the BodyFn stopped the transfer
  // The last response's headers, names in lower case; a repeated header
  // keeps its last value. At most kMaxResponseHeaderBytes of them in all
  // (more are dropped: a hostile server cannot grow this without bound).
  std::map<std::string, std::string> headers;
  static constexpr size_t kMaxResponseHeaderBytes = 64 * 1024;

  // The value of header `lowercase_name`, if the response had it.
  std::optional<std::string> header(const std::string& lowercase_name) const {
    const auto it = headers.find(lowercase_name);
    return it == headers.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
};

class HttpClient {
 public:
  using BodyFn = std::function<bool(const HttpResponse& response, std::span<const std::byte> data)>;

  explicit HttpClient(const HttpClientOptions& options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Performs `request`. A response of any status is a success (the caller
  // judges it); a transport failure is an error: std::errc::timed_out,
  // connection_refused, host_unreachable, or io_error, its message naming
  // the URL. A transfer the BodyFn stopped is a success with `aborted`.
  Result<HttpResponse> perform(const HttpRequest& request, const BodyFn& body = nullptr);

 private:
  struct Pool;
  std::unique_ptr<Pool> pool_;
  HttpClientOptions options_;
};

// `url` without the user and password it may carry (https://USER:PASS@HOST/):
// what logs and error messages show.
std::string redact_url(std::string_view url);

// "GET", "HEAD", "PUT", "POST", "PATCH": for messages.
const char* method_name(HttpRequest::Method method) noexcept;

// Parses "bytes FIRST-LAST/TOTAL" (TOTAL may be "*"); nullopt if malformed.
std::optional<HttpResponse::ContentRange> parse_content_range(std::string_view value);

}  // namespace pagerfs::remote
