#include "remote/http_client.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
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
  size_t header_bytes = 0;  // kept in response.headers
  // What is sent, and how far: libcurl may rewind (a resend after a 307 or
  // on a new connection) through on_seek.
  const HttpRequestBody* upload = nullptr;
  uint64_t upload_offset = 0;
  int upload_errno = 0;
};

size_t on_read(char* buffer, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const HttpRequestBody& body = *t->upload;
  const uint64_t left = body.size - std::min(body.size, t->upload_offset);
  const size_t n = static_cast<size_t>(std::min<uint64_t>(left, size * count));
  if (n == 0) return 0;
  if (body.fd < 0) {
    std::memcpy(buffer, body.memory.data() + t->upload_offset, n);
    t->upload_offset += n;
    return n;
  }
  for (;;) {
    const ssize_t got = ::pread(body.fd, buffer, n, static_cast<off_t>(t->upload_offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      // A file that shrank or cannot be read: the request fails, never sends short.
      t->upload_errno = got < 0 ? errno : EIO;
      return CURL_READFUNC_ABORT;
    }
    t->upload_offset += static_cast<uint64_t>(got);
    return static_cast<size_t>(got);
  }
}

int on_seek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<uint64_t>(offset) > t->upload->size) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  t->upload_offset = static_cast<uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

// "Name: value" kept as headers["name"] = "value", within the bound.
void keep_header(Transfer* t, std::string_view line) {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return;
  if (t->header_bytes + line.size() > HttpResponse::kMaxResponseHeaderBytes) return;
  t->header_bytes += line.size();
  std::string name(trim(line.substr(0, colon)));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  t->response.headers[std::move(name)] = std::string(trim(line.substr(colon + 1)));
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string_view line = trim(std::string_view(data, size * count));
  if (line.starts_with("HTTP/")) {
    // A new response (after a redirect or a 100 Continue): forget the last one's.
    t->response = HttpResponse{};
    t->status_known = false;
    t->header_bytes = 0;
    return size * count;
  }
  keep_header(t, line);
  if (iequals_prefix(line, "content-length:")) {
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

const char* method_name(HttpRequest::Method method) noexcept {
  switch (method) {
    case HttpRequest::Method::get: return "GET";
    case HttpRequest::Method::head: return "HEAD";
    case HttpRequest::Method::put: return "PUT";
    case HttpRequest::Method::post: return "POST";
    case HttpRequest::Method::patch: return "PATCH";
  }
  return "GET";
}

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
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, request.follow_redirects ? 1L : 0L);
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
  const bool sends = request.method == HttpRequest::Method::put || request.method == HttpRequest::Method::post ||
                     request.method == HttpRequest::Method::patch;
  if (sends) {
    transfer.upload = &request.body;
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &transfer);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, &transfer);
    if (request.method == HttpRequest::Method::post) {
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size));
    } else {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body.size));
      if (request.method == HttpRequest::Method::patch) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PATCH");
    }
  }
  // The caller's headers; "Expect:" turns off libcurl's 100-continue wait
  // before a large body (a second of latency per blob for nothing).
  curl_slist* header_list = nullptr;
  std::vector<std::string> header_lines = request.headers;
  if (sends) header_lines.emplace_back("Expect:");
  for (const std::string& line : header_lines) {
    curl_slist* grown = curl_slist_append(header_list, line.c_str());
    if (grown == nullptr) {
      curl_slist_free_all(header_list);
      return Error(std::make_error_code(std::errc::not_enough_memory), "curl_slist_append failed");
    }
    header_list = grown;
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers_owner(header_list, curl_slist_free_all);
  if (header_list != nullptr) curl_easy_setopt(h, CURLOPT_HTTPHEADER, header_list);

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
  const std::string context = std::string(method_name(request.method)) + " " + redact_url(request.url);
  if (transfer.upload_errno != 0) return Error::from_errno(transfer.upload_errno, context + ": reading the body");
  return Error(curl_error_code(code), context + ": " + what);
}

}  // namespace pagerfs::remote
