#include "remote/registry_client.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>

#include "pagerfs/store/image_manifest.h"
#include "util/posix_io.h"
#include "util/safe_open.h"

namespace pagerfs::remote {
namespace {

using Clock = std::chrono::steady_clock;

// Bounds on what the registry or its token server may send.
constexpr size_t kMaxTokenAnswerBytes = 64 * 1024;
constexpr size_t kMaxTokenBytes = 16 * 1024;
constexpr size_t kMaxErrorBodyBytes = 64 * 1024;
constexpr size_t kMaxCredentialsFileBytes = 4096;

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// A repository name: components of [a-z0-9] separated by single '.', '_',
// '-' runs (as the distribution spec allows, a little more loosely), joined
// by '/'; no empty, "." or ".." component can pass.
bool valid_repository(std::string_view repo) {
  if (repo.empty() || repo.size() > 255) return false;
  size_t start = 0;
  for (;;) {
    const size_t slash = repo.find('/', start);
    const std::string_view part = repo.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (part.empty() || !is_lower_alnum(part.front()) || !is_lower_alnum(part.back())) return false;
    for (char c : part) {
      if (!is_lower_alnum(c) && c != '.' && c != '_' && c != '-') return false;
    }
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

bool valid_host(std::string_view host) {
  std::string_view name = host;
  if (host.starts_with('[')) {
    const size_t close = host.find(']');
    if (close == std::string_view::npos) return false;
    for (char c : host.substr(1, close - 1)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    }
    name = host.substr(close + 1);
    if (name.empty()) return true;
    if (!name.starts_with(':')) return false;
  } else {
    const size_t colon = host.find(':');
    const std::string_view hostname = host.substr(0, colon);
    if (hostname.empty()) return false;
    for (char c : hostname) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return false;
    }
    if (colon == std::string_view::npos) return true;
    name = host.substr(colon);
  }
  const std::string_view port = name.substr(1);
  if (port.empty() || port.size() > 5) return false;
  return std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
         std::stoul(std::string(port)) <= 65535 && std::stoul(std::string(port)) > 0;
}

bool is_loopback(std::string_view host) {
  const std::string_view name = host.starts_with('[') ? host.substr(0, host.find(']') + 1)
                                                      : host.substr(0, host.find(':'));
  return name == "localhost" || name.starts_with("127.") || name == "[::1]";
}

std::string base64(std::string_view text) {
  std::string out(4 * ((text.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

// What may go into a header line: printable ASCII, no CR/LF (an answer
// that smuggles a header in is refused).
bool header_safe(std::string_view value) {
  return std::all_of(value.begin(), value.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

Result<std::optional<RegistryCredentials>> split_credentials(std::string_view text, const std::string& source) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || text.find('\n') != std::string_view::npos) {
    return Error(errc::invalid_argument, source + ": expected one line USER:PASSWORD");
  }
  return RegistryCredentials{std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
}

// A body collector for small answers: at most `max` bytes, or the transfer
// is stopped (and `overflow` set).
struct Collector {
  std::vector<std::byte> bytes{};
  size_t max = 0;
  bool overflow = false;
  HttpClient::BodyFn fn() {
    return [this](const HttpResponse&, std::span<const std::byte> data) {
      if (bytes.size() + data.size() > max) {
        overflow = true;
        return false;
      }
      bytes.insert(bytes.end(), data.begin(), data.end());
      return true;
    };
  }
};

std::chrono::milliseconds transfer_timeout(uint64_t size) {
  // Long enough for a slow link (64 KiB/s); a stalled one is cut by the
  // stall limit long before.
  return std::chrono::milliseconds(60000 + size / 64);
}

}  // namespace

Result<RegistryLocation> RegistryLocation::parse(std::string_view url, bool plain_http) {
  const std::string shown(url.substr(0, 512));
  auto bad = [&](const std::string& why) {
    return Error(errc::invalid_argument, "'" + shown + "': " + why + " (expected oci://HOST[:PORT]/REPOSITORY)");
  };
  if (!url.starts_with("oci://")) return bad("not an oci:// URL");
  url.remove_prefix(6);
  const size_t slash = url.find('/');
  if (slash == std::string_view::npos) return bad("no repository");
  RegistryLocation location;
  location.host = std::string(url.substr(0, slash));
  location.repository = std::string(url.substr(slash + 1));
  if (location.host.find('@') != std::string::npos) return bad("credentials go in --credentials FILE, not the URL");
  if (!valid_host(location.host)) return bad("bad host");
  if (!valid_repository(location.repository)) {
    return bad("bad repository name (lowercase letters, digits, '.', '_', '-', components separated by '/')");
  }
  location.base_url = std::string(plain_http || is_loopback(location.host) ? "http://" : "https://") + location.host;
  return location;
}

Result<std::optional<RegistryCredentials>> load_credentials(const std::optional<std::string>& file) {
  if (file) {
    PAGERFS_TRY(fd, open_regular_file(*file, O_RDONLY, 0, Symlinks::follow));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return Error::from_errno(errno, *file);
    if ((st.st_mode & 077) != 0) {
      return Error(std::make_error_code(std::errc::permission_denied),
                   "credentials file '" + *file + "' is readable by group or others: chmod 600 it");
    }
    if (static_cast<uint64_t>(st.st_size) > kMaxCredentialsFileBytes) {
      return Error(errc::invalid_argument, "credentials file '" + *file + "' is too large");
    }
    std::vector<std::byte> bytes(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < bytes.size()) {
      PAGERFS_TRY(n, pread_some(fd.get(), std::span(bytes).subspan(done), done, *file));
      if (n == 0) break;
      done += n;
    }
    return split_credentials(std::string_view(reinterpret_cast<const char*>(bytes.data()), done),
                             "credentials file '" + *file + "'");
  }
  if (const char* env = std::getenv("PAGERFS_REGISTRY_AUTH"); env != nullptr && *env != '\0') {
    return split_credentials(env, "PAGERFS_REGISTRY_AUTH");
  }
  return std::optional<RegistryCredentials>();
}

std::optional<AuthChallenge> parse_www_authenticate(std::string_view value) {
  AuthChallenge challenge;
  size_t i = 0;
  auto skip_space = [&] {
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
  };
  auto token_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  };
  skip_space();
  while (i < value.size() && token_char(value[i])) challenge.scheme += static_cast<char>(std::tolower(value[i++]));
  if (challenge.scheme.empty()) return std::nullopt;
  for (;;) {
    skip_space();
    if (i == value.size()) break;
    std::string key;
    while (i < value.size() && token_char(value[i])) key += static_cast<char>(std::tolower(value[i++]));
    skip_space();
    if (key.empty() || i == value.size() || value[i] != '=') return std::nullopt;
    ++i;
    skip_space();
    std::string val;
    if (i < value.size() && value[i] == '"') {
      ++i;
      bool closed = false;
      while (i < value.size()) {
        char c = value[i++];
        if (c == '\\' && i < value.size()) {
          val += value[i++];
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          val += c;
        }
      }
      if (!closed) return std::nullopt;
    } else {
      while (i < value.size() && value[i] != ',' && value[i] != ' ') val += value[i++];
    }
    if (challenge.params.size() >= 16) return std::nullopt;
    challenge.params[key] = val;
    skip_space();
    if (i < value.size()) {
      if (value[i] != ',') return std::nullopt;
      ++i;
    }
  }
  return challenge;
}

RegistryClient::RegistryClient(RegistryLocation location, std::optional<RegistryCredentials> credentials,
                               RegistryOptions options)
    : location_(std::move(location)), credentials_(std::move(credentials)), http_(options.http) {}

RegistryClient::~RegistryClient() = default;

std::string RegistryClient::scope(Access access) const {
  return "repository:" + location_.repository + (access == Access::push ? ":pull,push" : ":pull");
}

std::string RegistryClient::blob_url(const Digest& digest) const {
  return location_.base_url + "/v2/" + location_.repository + "/blobs/" + digest.str();
}

Error RegistryClient::status_error(const std::string& what, const HttpResponse& response) const {
  std::string message = "registry " + location_.host + ": " + what + ": HTTP " + std::to_string(response.status);
  if (response.status == 401) message += " (authentication failed)";
  if (response.status == 403) message += " (access denied)";
  if (response.status == 404) message += " (not found)";
  const auto code = response.status == 401 || response.status == 403
                        ? std::make_error_code(std::errc::permission_denied)
                    : response.status == 404 ? std::make_error_code(std::errc::no_such_file_or_directory)
                                             : std::make_error_code(std::errc::io_error);
  return Error(code, message);
}

std::optional<std::string> RegistryClient::authorization(Access access) {
  const std::string wanted = scope(access);
  std::optional<AuthChallenge> bearer;
  {
    MutexLock lock(mu_);
    if (bearer_) {
      const auto it = tokens_.find(wanted);
      if (it != tokens_.end() && it->second.expires > Clock::now()) return "Authorization: Bearer " + it->second.value;
      bearer = bearer_;
    } else if (use_basic_ && credentials_) {
      return "Authorization: Basic " + base64(credentials_->user + ":" + credentials_->password);
    } else {
      return std::nullopt;
    }
  }
  // A bearer registry and no token for this scope yet: get one before the
  // request (without the lock: it is a request of its own).
  auto token = fetch_token(*bearer, wanted);
  if (!token) return std::nullopt;  // the request's 401 will say why
  MutexLock lock(mu_);
  tokens_[wanted] = token.value();
  return "Authorization: Bearer " + token.value().value;
}

Result<RegistryClient::Token> RegistryClient::fetch_token(const AuthChallenge& challenge, const std::string& wanted) {
  // realm?service=SERVICE&scope=WANTED, as the token spec has it.
  const auto realm = challenge.params.find("realm");
  if (realm == challenge.params.end()) {
    return Error(std::make_error_code(std::errc::permission_denied),
                 "registry " + location_.host + ": a Bearer challenge without a realm");
  }
  const std::string& url = realm->second;
  // A token server on plain http for an https registry would see the
  // credentials in clear: refused.
  const bool https = url.starts_with("https://");
  if (!https && !(url.starts_with("http://") && location_.base_url.starts_with("http://"))) {
    return Error(std::make_error_code(std::errc::permission_denied),
                 "registry " + location_.host + ": token realm '" + redact_url(url.substr(0, 256)) +
                     "' is not an https URL");
  }
  std::string query;
  if (const auto service = challenge.params.find("service"); service != challenge.params.end()) {
    query += "service=" + percent_encode(service->second);
  }
  query += std::string(query.empty() ? "" : "&") + "scope=" + percent_encode(wanted);
  HttpRequest request{url + (url.find('?') == std::string::npos ? "?" : "&") + query};
  if (credentials_) {
    request.headers.push_back("Authorization: Basic " + base64(credentials_->user + ":" + credentials_->password));
  }
  Collector answer{.max = kMaxTokenAnswerBytes};
  PAGERFS_TRY(response, http_.perform(request, answer.fn()));
  const std::string where = "registry " + location_.host + ": token server " + redact_url(url.substr(0, 256));
  if (response.status == 401 || response.status == 403) {
    return Error(std::make_error_code(std::errc::permission_denied),
                 where + " refused " + (credentials_ ? "the credentials" : "anonymous access (give --credentials)") +
                     ": HTTP " + std::to_string(response.status));
  }
  if (answer.overflow) return Error(errc::corrupt_blob, where + ": answer larger than 64 KiB");
  if (response.status != 200) {
    return Error(std::make_error_code(std::errc::permission_denied), where + ": HTTP " + std::to_string(response.status));
  }
  const auto* text = reinterpret_cast<const char*>(answer.bytes.data());
  const nlohmann::json json = nlohmann::json::parse(text, text + answer.bytes.size(), nullptr, false);
  if (json.is_discarded() || !json.is_object()) return Error(errc::corrupt_blob, where + ": answer is not a JSON object");
  std::string token;
  for (const char* key : {"token", "access_token"}) {
    if (const auto it = json.find(key); it != json.end() && it->is_string() && !it->get<std::string>().empty()) {
      token = it->get<std::string>();
      break;
    }
  }
  if (token.empty() || token.size() > kMaxTokenBytes || !header_safe(token)) {
    return Error(errc::corrupt_blob, where + ": answer has no usable \"token\"");
  }
  // expires_in: 60 s if not said (the token spec's default); a little early.
  int64_t seconds = 60;
  if (const auto it = json.find("expires_in"); it != json.end() && it->is_number_integer()) {
    seconds = std::clamp<int64_t>(it->get<int64_t>(), 1, 24 * 3600);
  }
  return Token{token, Clock::now() + std::chrono::seconds(seconds) - std::chrono::seconds(seconds > 10 ? 5 : 0)};
}

Result<void> RegistryClient::answer_challenge(const HttpResponse& response, Access access, bool retried) {
  const auto header = response.header("www-authenticate");
  const std::string who = "registry " + location_.host;
  const auto challenge = header ? parse_www_authenticate(*header) : std::nullopt;
  if (!challenge) {
    return Error(std::make_error_code(std::errc::permission_denied),
                 who + ": HTTP 401 without a usable WWW-Authenticate challenge");
  }
  if (challenge->scheme == "basic") {
    if (!credentials_) {
      return Error(std::make_error_code(std::errc::permission_denied),
                   who + " requires credentials (HTTP 401): give --credentials FILE or PAGERFS_REGISTRY_AUTH");
    }
    if (retried) {
      return Error(std::make_error_code(std::errc::permission_denied), who + " refused the credentials (HTTP 401)");
    }
    // Another thread may have learnt it already: then this is a retry too.
    MutexLock lock(mu_);
    use_basic_ = true;
    return ok();
  }
  if (challenge->scheme == "bearer") {
    if (retried) {
      return Error(std::make_error_code(std::errc::permission_denied),
                   who + " refused the token for " + scope(access) + " (HTTP 401)" +
                       (credentials_ ? "" : ": give --credentials FILE or PAGERFS_REGISTRY_AUTH"));
    }
    // The scope the registry asks for in this challenge, else the one this
    // access needs; kept under the latter, which is what requests look up.
    const auto asked = challenge->params.find("scope");
    const std::string wanted = asked != challenge->params.end() && asked->second.size() <= 1024 ? asked->second
                                                                                                 : scope(access);
    PAGERFS_TRY(token, fetch_token(*challenge, wanted));
    MutexLock lock(mu_);
    bearer_ = challenge;
    tokens_[scope(access)] = std::move(token);
    return ok();
  }
  return Error(std::make_error_code(std::errc::permission_denied),
               who + ": unsupported authentication scheme '" + challenge->scheme.substr(0, 32) + "'");
}

Result<HttpResponse> RegistryClient::send(HttpRequest request, Access access, const HttpClient::BodyFn& body) {
  const std::vector<std::string> base_headers = request.headers;
  // The body of a 401 is not the caller's: kept out of its BodyFn, bounded.
  size_t discarded = 0;
  const HttpClient::BodyFn filtered = [&](const HttpResponse& response, std::span<const std::byte> data) {
    if (response.status == 401) {
      discarded += data.size();
      return discarded <= kMaxErrorBodyBytes;
    }
    return body ? body(response, data) : true;
  };
  for (int attempt = 0;; ++attempt) {
    request.headers = base_headers;
    if (auto auth = authorization(access)) request.headers.push_back(std::move(*auth));
    discarded = 0;
    PAGERFS_TRY(response, http_.perform(request, filtered));
    if (response.status != 401) return response;
    PAGERFS_TRYV(answer_challenge(response, access, attempt > 0));
  }
}

Result<std::optional<uint64_t>> RegistryClient::blob_size(const Digest& digest) {
  PAGERFS_TRY(response, send(HttpRequest{blob_url(digest), HttpRequest::Method::head}, Access::pull));
  if (response.status == 404) return std::optional<uint64_t>();
  if (response.status != 200) return status_error("HEAD blob " + digest.str(), response);
  return std::optional<uint64_t>(response.content_length.value_or(0));
}

Result<std::string> RegistryClient::resolve_location(const std::string& location) const {
  std::string url;
  if (location.starts_with("/")) {
    url = location_.base_url + location;
  } else if (location.starts_with(location_.base_url + "/")) {
    url = location;
  } else {
    return Error(errc::corrupt_blob, "registry " + location_.host + ": upload location '" +
                                         redact_url(location.substr(0, 256)) + "' is not on the registry");
  }
  if (!header_safe(url)) return Error(errc::corrupt_blob, "registry " + location_.host + ": bad upload location");
  return url;
}

Result<void> RegistryClient::upload_blob(const Digest& digest, std::span<const std::byte> data) {
  return upload(digest, HttpRequestBody::of(data));
}

Result<void> RegistryClient::upload_blob(const Digest& digest, int fd, uint64_t size) {
  return upload(digest, HttpRequestBody::of_file(fd, size));
}

Result<void> RegistryClient::upload(const Digest& digest, const HttpRequestBody& body) {
  // POST: a new upload session; its Location is where the bytes go.
  HttpRequest start{location_.base_url + "/v2/" + location_.repository + "/blobs/uploads/",
                    HttpRequest::Method::post};
  start.follow_redirects = false;
  Collector ignored{.max = kMaxErrorBodyBytes};
  PAGERFS_TRY(started, send(start, Access::push, ignored.fn()));
  if (started.status != 202) return status_error("starting the upload of " + digest.str(), started);
  const auto location = started.header("location");
  if (!location) return Error(errc::corrupt_blob, "registry " + location_.host + ": upload started without a Location");
  PAGERFS_TRY(url, resolve_location(*location));
  url += (url.find('?') == std::string::npos ? "?" : "&") + std::string("digest=") + percent_encode(digest.str());
  // One PUT with every byte: a monolithic upload.
  HttpRequest put{url, HttpRequest::Method::put};
  put.timeout = transfer_timeout(body.size);
  put.follow_redirects = false;
  put.body = body;
  put.headers = {"Content-Type: application/octet-stream"};
  PAGERFS_TRY(done, send(put, Access::push, ignored.fn()));
  if (done.status != 201) return status_error("uploading " + digest.str(), done);
  if (const auto stored = done.header("docker-content-digest"); stored && *stored != digest.str()) {
    return Error(errc::digest_mismatch, "registry " + location_.host + ": stored " + digest.str() + " as " +
                                            stored->substr(0, 80));
  }
  return ok();
}

Result<Digest> RegistryClient::put_manifest(std::string_view tag, std::string_view json) {
  if (!is_valid_tag(tag)) return Error(errc::invalid_argument, "'" + std::string(tag.substr(0, 200)) + "' is not a valid tag");
  const auto bytes = std::as_bytes(std::span(json.data(), json.size()));
  const Digest digest = Sha256::of(bytes);
  HttpRequest put{location_.base_url + "/v2/" + location_.repository + "/manifests/" + std::string(tag),
                  HttpRequest::Method::put};
  put.body = HttpRequestBody::of(bytes);
  put.follow_redirects = false;
  put.headers = {"Content-Type: " + std::string(kOciManifestMediaType)};
  Collector answer{.max = kMaxErrorBodyBytes};
  PAGERFS_TRY(done, send(put, Access::push, answer.fn()));
  if (done.status != 201) {
    Error e = status_error("putting manifest " + std::string(tag), done);
    // The registry's reason (JSON errors: MANIFEST_BLOB_UNKNOWN, ...) helps.
    std::string reason(reinterpret_cast<const char*>(answer.bytes.data()), std::min<size_t>(answer.bytes.size(), 300));
    std::replace_if(reason.begin(), reason.end(), [](char c) { return c < 0x20 || c >= 0x7f; }, ' ');
    return reason.empty() ? e : Error(e.code(), e.message() + ": " + reason);
  }
  if (const auto stored = done.header("docker-content-digest"); stored && *stored != digest.str()) {
    return Error(errc::digest_mismatch, "registry " + location_.host + ": manifest " + std::string(tag) +
                                            " stored as " + stored->substr(0, 80) + ", not " + digest.str());
  }
  return digest;
}

Result<RegistryClient::Manifest> RegistryClient::get_manifest(std::string_view tag, const std::optional<Digest>& pinned) {
  const std::string reference = pinned ? pinned->str() : std::string(tag);
  HttpRequest get{location_.base_url + "/v2/" + location_.repository + "/manifests/" + reference};
  // Registry 2.8 answers an OCI manifest only to a client that accepts one.
  get.headers = {"Accept: " + std::string(kOciManifestMediaType)};
  Collector answer{.max = kMaxArtifactBytes};
  PAGERFS_TRY(response, send(get, Access::pull, answer.fn()));
  const std::string what = "manifest " + std::string(tag) + (pinned ? "@" + pinned->str() : "");
  if (answer.overflow) return Error(errc::corrupt_blob, "registry " + location_.host + ": " + what + " is larger than 4 MiB");
  if (response.status != 200) return status_error(what, response);
  Manifest manifest{std::move(answer.bytes), Digest()};
  manifest.digest = Sha256::of(manifest.bytes);
  if (pinned && manifest.digest != *pinned) {
    return Error(errc::digest_mismatch, "registry " + location_.host + ": " + what + ": the registry sent " +
                                            manifest.digest.str());
  }
  if (const auto stated = response.header("docker-content-digest"); stated && *stated != manifest.digest.str()) {
    return Error(errc::digest_mismatch, "registry " + location_.host + ": " + what +
                                            ": Docker-Content-Digest disagrees with the bytes");
  }
  return manifest;
}

Result<void> RegistryClient::fetch_blob(const RegistryBlob& blob, const std::function<Result<void>(std::span<const std::byte>)>& sink) {
  Sha256 hasher;
  uint64_t received = 0;
  bool too_long = false;
  Result<void> sunk = ok();
  const HttpClient::BodyFn body = [&](const HttpResponse& response, std::span<const std::byte> data) {
    if (response.status != 200) return received += data.size(), received <= kMaxErrorBodyBytes;
    if (received + data.size() > blob.size) {
      too_long = true;
      return false;
    }
    received += data.size();
    hasher.update(data);
    sunk = sink(data);
    return sunk.has_value();
  };
  HttpRequest get{blob_url(blob.digest)};
  get.timeout = transfer_timeout(blob.size);
  PAGERFS_TRY(response, send(get, Access::pull, body));
  const std::string what = "blob " + blob.digest.str();
  if (!sunk) return sunk.error();
  if (response.status != 200) return status_error(what, response);
  if (too_long) return Error(errc::corrupt_blob, "registry " + location_.host + ": " + what + " is longer than its size");
  if (received != blob.size) {
    return Error(errc::corrupt_blob, "registry " + location_.host + ": " + what + ": " + std::to_string(received) +
                                         " bytes of " + std::to_string(blob.size));
  }
  if (hasher.finish() != blob.digest) {
    return Error(errc::digest_mismatch, "registry " + location_.host + ": " + what + ": the bytes sent do not hash to it");
  }
  return ok();
}

Result<std::vector<std::byte>> RegistryClient::get_blob(const RegistryBlob& blob, uint64_t max_size) {
  if (blob.size > max_size) {
    return Error(errc::corrupt_blob, "registry " + location_.host + ": blob " + blob.digest.str() + " is too large (" +
                                         std::to_string(blob.size) + " bytes)");
  }
  std::vector<std::byte> bytes{};
  bytes.reserve(static_cast<size_t>(blob.size));
  PAGERFS_TRYV(fetch_blob(blob, [&](std::span<const std::byte> data) -> Result<void> {
    bytes.insert(bytes.end(), data.begin(), data.end());
    return ok();
  }));
  return bytes;
}

Result<void> RegistryClient::download_blob(const RegistryBlob& blob, int fd) {
  return fetch_blob(blob, [&](std::span<const std::byte> data) -> Result<void> {
    while (!data.empty()) {
      const ssize_t n = ::write(fd, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::from_errno(errno, "writing blob " + blob.digest.str());
      data = data.subspan(static_cast<size_t>(n));
    }
    return ok();
  });
}

Result<BlobAccess> RegistryClient::blob_access(const Digest& digest) {
  BlobAccess access{blob_url(digest), {}};
  // A HEAD learns whether (and how) the registry wants us to authenticate.
  PAGERFS_TRY(response, send(HttpRequest{access.url, HttpRequest::Method::head}, Access::pull));
  if (response.status != 200) return status_error("HEAD blob " + digest.str(), response);
  if (auto auth = authorization(Access::pull)) access.headers.push_back(std::move(*auth));
  return access;
}

BlobAccess RegistryClient::pull_access(const Digest& digest) {
  BlobAccess access{blob_url(digest), {}};
  if (auto auth = authorization(Access::pull)) access.headers.push_back(std::move(*auth));
  return access;
}

Result<RegistryImage> fetch_registry_image(RegistryClient& client, std::string_view reference) {
  PAGERFS_TRY(ref, parse_image_reference(reference));
  return fetch_registry_image(client, ref);
}

Result<RegistryImage> fetch_registry_image(RegistryClient& client, const ImageReference& ref,
                                           const RegistryFetchOptions& options) {
  if (!is_valid_tag(ref.name)) {
    return Error(errc::invalid_argument, "image '" + ref.name +
                                             "': a registry tag is [A-Za-z0-9_][A-Za-z0-9._-]{0,127}");
  }
  const std::string where = client.location().str() + " image " + ref.name;
  const ManifestCache* cache = options.cache;
  // A file of the artifact, by its digest: from the cache if it holds it
  // intact, else from the registry (which checks size and digest).
  auto file = [&](const RegistryBlob& blob, uint64_t max_size) -> Result<std::vector<std::byte>> {
    if (cache != nullptr) {
      if (auto cached = cache->get(blob.digest, max_size); cached && cached->size() == blob.size) return *cached;
    }
    return client.get_blob(blob, max_size);
  };
  std::optional<RegistryClient::Manifest> oci;
  if (cache != nullptr && ref.digest) {
    if (auto cached = cache->get(*ref.digest, kMaxArtifactBytes)) oci = RegistryClient::Manifest{std::move(*cached), *ref.digest};
  }
  if (!oci) {
    PAGERFS_TRY(fetched, client.get_manifest(ref.name, ref.digest));
    oci = std::move(fetched);
  }
  auto artifact = parse_artifact(oci->bytes);
  if (!artifact) return artifact.error().with_context(where);
  if (artifact.value().name != ref.name) {
    return Error(errc::corrupt_blob, where + ": the registry's manifest is of image '" + artifact.value().name + "'");
  }
  RegistryImage image{std::move(artifact).value(), oci->digest, {}, std::nullopt, std::nullopt, {}};
  PAGERFS_TRY(manifest_bytes, file(image.artifact.manifest, kMaxPagerfsManifestBytes));
  image.manifest = std::move(manifest_bytes);
  // The pagerfs manifest, checked whole, must name exactly the blobs the
  // artifact lists: no blob missing, none to download for nothing.
  auto parsed = image::Manifest::parse(image.manifest);
  if (!parsed) return parsed.error().with_context(where);
  if (auto whole = parsed.value().verify(); !whole) return whole.error().with_context(where);
  std::set<Digest> named;
  for (uint32_t k = 0; k < parsed.value().blob_count(); ++k) {
    PAGERFS_TRY(record, parsed.value().blob_at(k));
    named.insert(record.digest);
  }
  std::set<Digest> listed;
  for (const ArtifactBlob& blob : image.artifact.blobs) listed.insert(blob.content);
  if (named != listed) {
    return Error(errc::corrupt_blob, where + ": the layers do not list exactly the blobs the image names");
  }
  if (image.artifact.config) {
    PAGERFS_TRY(config_bytes, file(*image.artifact.config, Store::kMaxImageConfigBytes));
    image.config = std::move(config_bytes);
  }
  if (options.profile && image.artifact.profile) {
    auto hint = file(*image.artifact.profile, profile::kMaxProfileBytes);
    if (hint) {
      image.profile = std::move(hint).value();
    } else {
      image.profile_error = hint.error().message();
    }
  }
  // All verified: kept for a mount with the registry down (a cache that
  // cannot keep them costs a later mount its requests, nothing else).
  if (cache != nullptr) {
    (void)cache->put(image.artifact.manifest.digest, image.manifest);
    if (image.config) (void)cache->put(image.artifact.config->digest, *image.config);
    if (image.profile) (void)cache->put(image.artifact.profile->digest, *image.profile);
    (void)cache->put(image.oci_digest, oci->bytes);
  }
  return image;
}

}  // namespace pagerfs::remote
