#include "remote/http_client.h"

#include <curl/curl.h>

#include <cctype>
#include <charconv>
#include <mutex>
#include <string_view>
#include <system_error>
#include <vector>

#include "util/mutex.h"

namespace pagerfs::remote {
namespace {

void init_curl_once() {
  // curl_global_init is not thread-safe on older libcurl builds: once, early.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct EasyDeleter {
  void operator()(CURL* handle) const noexcept { curl_easy_cleanup(handle); }
};
using EasyHandle = std::unique_ptr<CURL, EasyDeleter>;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool parse_u64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return false;
  }
  return true;
}

// State of one transfer, shared with libcurl's callbacks.
struct Transfer {
  CURL* handle = nullptr;
  const HttpClient::BodyFn* body = nullptr;
  HttpResponse response;
  bool status_known = false;
};

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string_view line = trim(std::string_view(data, size * count));
  if (line.starts_with("HTTP/")) {
    // A new response (after a redirect or a 100 Continue): forget the last one's.
    t->response = HttpResponse{};
    t->status_known = false;
  } else if (iequals_prefix(line, "content-length:")) {
    uint64_t n = 0;
    if (parse_u64(trim(line.substr(15)), &n)) t->response.content_length = n;
  } else if (iequals_prefix(line, "content-range:")) {
    t->response.content_range = parse_content_range(trim(line.substr(14)));
  }
  return size * count;
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (!t->status_known) {
    curl_easy_getinfo(t->handle, CURLINFO_RESPONSE_CODE, &t->response.status);
    t->status_known = true;
  }
  if (t->body != nullptr && *t->body) {
    bool more = false;
    try {
      more = (*t->body)(t->response, std::span(reinterpret_cast<const std::byte*>(data), n));
    } catch (...) {
      more = false;  // an exception must not cross libcurl's C frames
    }
    if (!more) {
      t->response.aborted = true;
      return CURL_WRITEFUNC_ERROR;
    }
  }
  t->response.body_bytes += n;
  return n;
}

std::error_code curl_error_code(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return std::make_error_code(std::errc::timed_out);
    case CURLE_COULDNT_CONNECT:
      return std::make_error_code(std::errc::connection_refused);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return std::make_error_code(std::errc::host_unreachable);
    case CURLE_OUT_OF_MEMORY:
      return std::make_error_code(std::errc::not_enough_memory);
    default:
      return std::make_error_code(std::errc::io_error);
  }
}

}  // namespace

std::optional<HttpResponse::ContentRange> parse_content_range(std::string_view value) {
  value = trim(value);
  if (!value.starts_with("bytes ")) return std::nullopt;
  value.remove_prefix(6);
  const size_t dash = value.find('-');
  const size_t slash = value.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || dash > slash) return std::nullopt;
  HttpResponse::ContentRange range;
  if (!parse_u64(value.substr(0, dash), &range.first) ||
      !parse_u64(value.substr(dash + 1, slash - dash - 1), &range.last) || range.last < range.first) {
    return std::nullopt;
  }
  const std::string_view total = value.substr(slash + 1);
  if (total != "*") {
    uint64_t n = 0;
    if (!parse_u64(total, &n) || n <= range.last) return std::nullopt;
    range.total = n;
  }
  return range;
}

std::string redact_url(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  const size_t host = scheme + 3;
  const size_t path = url.find('/', host);
  const size_t at = url.substr(0, path).rfind('@');
  if (at == std::string_view::npos || at < host) return std::string(url);
  return std::string(url.substr(0, host)) + "***@" + std::string(url.substr(at + 1));
}

struct HttpClient::Pool {
  Mutex mu;
  std::vector<EasyHandle> idle GUARDED_BY(mu);
};

HttpClient::HttpClient(const HttpClientOptions& options) : pool_(std::make_unique<Pool>()), options_(options) {
  init_curl_once();
}

HttpClient::~HttpClient() = default;

Result<HttpResponse> HttpClient::perform(const HttpRequest& request, const BodyFn& body) {
  EasyHandle handle;
  {
    MutexLock lock(pool_->mu);
    if (!pool_->idle.empty()) {
      handle = std::move(pool_->idle.back());
      pool_->idle.pop_back();
    }
  }
  if (handle) {
    curl_easy_reset(handle.get());  // options back to defaults; connections kept
  } else {
    handle.reset(curl_easy_init());
    if (!handle) return Error(std::make_error_code(std::errc::not_enough_memory), "curl_easy_init failed");
  }
  CURL* h = handle.get();
  Transfer transfer;
  transfer.handle = h;
  transfer.body = &body;
  char errbuf[CURL_ERROR_SIZE] = {};
  std::string range;
  if (request.range) range = std::to_string(request.range->first) + "-" + std::to_string(request.range->second);

  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for timeouts
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.stall_time.count()));
  curl_easy_setopt(h, CURLOPT_USERAGENT, "pagerfs/" PAGERFS_VERSION);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &transfer);
  if (request.method == HttpRequest::Method::head) curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  if (!range.empty()) curl_easy_setopt(h, CURLOPT_RANGE, range.c_str());

  const CURLcode code = curl_easy_perform(h);
  if (code == CURLE_OK || (code == CURLE_WRITE_ERROR && transfer.response.aborted)) {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &transfer.response.status);
  }
  {
    MutexLock lock(pool_->mu);
    if (pool_->idle.size() < options_.max_idle_handles) pool_->idle.push_back(std::move(handle));
  }
  if (code == CURLE_OK || (code == CURLE_WRITE_ERROR && transfer.response.aborted)) return transfer.response;
  const std::string what = errbuf[0] != '\0' ? std::string(errbuf) : std::string(curl_easy_strerror(code));
  return Error(curl_error_code(code), std::string(request.method == HttpRequest::Method::head ? "HEAD " : "GET ") +
                                          redact_url(request.url) + ": " + what);
}

}  // namespace pagerfs::remote
