#include "pagerfs/remote/remote_images.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "pagerfs/store/image_manifest.h"
#include "remote/http_client.h"
#include "util/posix_io.h"
#include "util/quoted.h"
#include "util/safe_open.h"
#include "util/unique_fd.h"

namespace pagerfs {
namespace {

// The store's own bound on a manifest file (store.cc): a larger answer is
// not a manifest, whatever the server says.
constexpr uint64_t kMaxManifestBytes = uint64_t{1} << 30;

Result<void> make_private_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return Error::from_errno(errno, "create " + quoted(path));
  return ok();
}

// The SHA-256 of the whole file open at `fd`.
Result<Digest> hash_file(int fd, const std::string& path) {
  Sha256 hash;
  std::vector<std::byte> buffer(1 << 20);
  for (uint64_t offset = 0;;) {
    PAGERFS_TRY(n, pread_some(fd, buffer, offset, path));
    if (n == 0) break;
    hash.update(std::span(buffer).first(n));
    offset += n;
  }
  return hash.finish();
}

// A temporary file in `dir`, removed unless kept.
class TempFile {
 public:
  static Result<TempFile> create(const std::string& dir) {
    std::string path = dir + "/.fetch-XXXXXX";
    const int fd = ::mkostemp(path.data(), O_CLOEXEC);
    if (fd < 0) return Error::from_errno(errno, "create a temporary file in " + quoted(dir));
    return TempFile(UniqueFd(fd), std::move(path));
  }
  TempFile(TempFile&&) = default;
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  // Renames it to `target`; it is then no longer removed.
  Result<void> keep_as(const std::string& target) {
    if (::rename(path_.c_str(), target.c_str()) != 0) return Error::from_errno(errno, "rename to " + quoted(target));
    path_.clear();
    return ok();
  }

 private:
  TempFile(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::string path_;
};

// One GET of URL into `file` (truncated first), hashing what it writes.
// Returns the HTTP status, or the transport error.
Result<long> get_into(remote::HttpClient& client, const std::string& url, const TempFile& file,
                      std::chrono::milliseconds timeout, uint64_t max_bytes, Digest* digest) {
  if (::ftruncate(file.fd(), 0) != 0) return Error::from_errno(errno, "truncate " + quoted(file.path()));
  Sha256 hash;
  uint64_t written = 0;
  std::optional<Error> failed;
  auto body = [&](const remote::HttpResponse& r, std::span<const std::byte> data) {
    if (r.status != 200) return true;  // an error page: drained, judged by its status
    if (written + data.size() > max_bytes) {
      failed = Error(errc::corrupt_blob, "GET " + remote::redact_url(url) + ": more than " +
                                             std::to_string(max_bytes) + " bytes");
      return false;
    }
    if (auto w = pwrite_all(file.fd(), data, written, file.path()); !w) {
      failed = w.error();
      return false;
    }
    hash.update(data);
    written += data.size();
    return true;
  };
  PAGERFS_TRY(response, client.perform(remote::HttpRequest{url, remote::HttpRequest::Method::get, std::nullopt, timeout}, body));
  if (failed) return *failed;
  if (response.status == 200) {
    if (response.content_length && *response.content_length != written) {
      return Error(std::make_error_code(std::errc::io_error),
                   "GET " + remote::redact_url(url) + ": the answer ended after " + std::to_string(written) + " of " +
                       std::to_string(*response.content_length) + " bytes");
    }
    *digest = hash.finish();
  }
  return response.status;
}

// Fetches image `ref` from the mirrors into `file`, verified. Mirrors are
// tried in order, each failure followed by a backoff, within the remote's
// attempts and deadline; a 404 moves on to the next mirror.
Result<void> fetch_verified(const RemoteLayerOptions& remote, const ImageRef& ref, const TempFile& file) {
  using Clock = std::chrono::steady_clock;
  remote::HttpClient client(remote::HttpClientOptions{remote.connect_timeout, std::chrono::seconds(5), 4});
  const Clock::time_point deadline = Clock::now() + remote.deadline;
  std::chrono::milliseconds backoff = remote.backoff;
  std::vector<bool> absent(remote.urls.size(), false);
  std::optional<Error> last_error;
  unsigned failures = 0;
  for (size_t m = 0; failures < remote.attempts; m = (m + 1) % remote.urls.size()) {
    if (std::find(absent.begin(), absent.end(), false) == absent.end()) {
      return Error::from_errno(ENOENT, "image '" + ref.name + "' is on no remote (images/" + ref.name + ")");
    }
    if (absent[m]) continue;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    std::string base = remote.urls[m];
    while (base.ends_with('/')) base.pop_back();
    const std::string url = base + "/images/" + ref.name;
    Digest got;
    auto status = get_into(client, url, file, std::min(left, remote.attempt_timeout), kMaxManifestBytes, &got);
    if (status && status.value() == 200) {
      if (got == ref.manifest_digest) return ok();
      // A server that lies is not asked again: another mirror may not.
      last_error = Error(errc::corrupt_blob, "image '" + ref.name + "' from " + remote::redact_url(base) +
                                                 ": its manifest is " + got.str() + ", not the " +
                                                 ref.manifest_digest.str() + " asked for");
      absent[m] = true;
      if (std::find(absent.begin(), absent.end(), false) == absent.end()) return *last_error;
      continue;
    }
    if (status && (status.value() == 404 || status.value() == 410)) {
      absent[m] = true;
      continue;
    }
    if (status && (status.value() == 401 || status.value() == 403)) {
      last_error = Error::from_errno(EACCES, "GET " + remote::redact_url(url) + ": HTTP " + std::to_string(status.value()));
      absent[m] = true;
      continue;
    }
    last_error = status ? Error(std::make_error_code(std::errc::io_error),
                                "GET " + remote::redact_url(url) + ": HTTP " + std::to_string(status.value()))
                        : status.error();
    ++failures;
    const Clock::time_point resume = Clock::now() + backoff;
    backoff *= 2;
    if (resume >= deadline) break;
    std::this_thread::sleep_until(resume);
  }
  if (last_error) return Error(last_error->code(), "image '" + ref.name + "': " + last_error->message());
  return Error(std::make_error_code(std::errc::io_error), "image '" + ref.name + "': no remote answered");
}

// Fetches image `ref`'s prefetch profile, if a mirror has one, into the
// store. A profile is a hint: one that cannot be had is a warning, not an
// error, and one mirror is asked (the first that served the manifest is not
// known here: the first that answers).
void fetch_profile(const RemoteLayerOptions& remote, const ImageRef& ref, const Store& store,
                   const FetchImagesOptions& options) {
  auto warn = [&](const std::string& message) {
    if (options.warn) options.warn("image '" + ref.name + "': prefetch profile: " + message);
  };
  remote::HttpClient client(remote::HttpClientOptions{remote.connect_timeout, std::chrono::seconds(5), 1});
  auto file = TempFile::create(store.root());
  if (!file) return warn(file.error().message());
  for (const std::string& mirror : remote.urls) {
    std::string base = mirror;
    while (base.ends_with('/')) base.pop_back();
    Digest ignored;
    auto status = get_into(client, base + "/profiles/" + ref.name, file.value(), remote.attempt_timeout,
                           profile::kMaxProfileBytes, &ignored);
    if (!status) return warn(status.error().message());
    if (status.value() == 404 || status.value() == 410) continue;
    if (status.value() != 200) return warn(remote::redact_url(base) + ": HTTP " + std::to_string(status.value()));
    std::vector<std::byte> bytes(static_cast<size_t>(::lseek(file.value().fd(), 0, SEEK_END)));
    auto read = pread_some(file.value().fd(), bytes, 0, file.value().path());
    if (!read || read.value() != bytes.size()) return warn("cannot read it back");
    auto parsed = profile::parse(bytes);
    if (!parsed) return warn(remote::redact_url(base) + ": " + parsed.error().message());
    if (auto written = store.write_profile(ref.name, parsed.value()); !written) warn(written.error().message());
    return;
  }
}

// Places the cached manifest `digest` at `target` if the cache holds it
// intact; a damaged copy is removed.
bool take_from_cache(const std::string& cached, const Digest& digest, const std::string& target) {
  auto fd = open_regular_file(cached, O_RDONLY);
  if (!fd) return false;
  auto got = hash_file(fd.value().get(), cached);
  if (!got || got.value() != digest) {
    ::unlink(cached.c_str());
    return false;
  }
  ::unlink(target.c_str());
  return ::link(cached.c_str(), target.c_str()) == 0;
}

}  // namespace

Result<ImageRef> parse_image_ref(std::string_view text) {
  const size_t at = text.rfind('@');
  if (at == std::string_view::npos) {
    return Error(errc::invalid_argument, "image " + quoted(text) + " is not NAME@sha256:HEX (the digest of its manifest)");
  }
  ImageRef ref;
  ref.name = std::string(text.substr(0, at));
  if (auto valid = image::validate_image_name(ref.name); !valid) return valid.error().with_context("image " + quoted(text));
  const std::string_view digest = text.substr(at + 1);
  if (!digest.starts_with("sha256:")) {
    return Error(errc::invalid_argument, "image " + quoted(text) + ": the digest must be sha256:HEX");
  }
  auto parsed = Digest::parse(digest);
  if (!parsed) return parsed.error().with_context("image " + quoted(text));
  ref.manifest_digest = parsed.value();
  return ref;
}

Result<Digest> manifest_digest(const Store& store, std::string_view name) {
  PAGERFS_TRYV(image::validate_image_name(name));
  const std::string path = store.image_path(name);
  PAGERFS_TRY(fd, open_regular_file(path, O_RDONLY));
  return hash_file(fd.get(), path);
}

Result<void> fetch_images(const RemoteLayerOptions& remote, const std::vector<ImageRef>& images, const Store& store,
                          const FetchImagesOptions& options) {
  if (images.empty()) return ok();
  PAGERFS_TRYV(validate(remote));
  PAGERFS_TRYV(make_private_dir(store.images_dir()));
  std::string cache_dir;
  if (!options.manifest_cache_dir.empty()) {
    PAGERFS_TRYV(make_private_dir(options.manifest_cache_dir));
    cache_dir = options.manifest_cache_dir + "/sha256";
    PAGERFS_TRYV(make_private_dir(cache_dir));
  }
  for (const ImageRef& ref : images) {
    const std::string target = store.image_path(ref.name);
    const std::string cached = cache_dir.empty() ? "" : cache_dir + "/" + ref.manifest_digest.hex();
    if (options.fetch_profiles) fetch_profile(remote, ref, store, options);
    if (!cached.empty() && take_from_cache(cached, ref.manifest_digest, target)) continue;
    PAGERFS_TRY(file, TempFile::create(store.root()));
    PAGERFS_TRYV(fetch_verified(remote, ref, file));
    // Kept by digest for the next mount (a different file system: not kept).
    if (!cached.empty() && ::link(file.path().c_str(), cached.c_str()) != 0 && errno != EEXIST && errno != EXDEV) {
      return Error::from_errno(errno, "keep the manifest of image '" + ref.name + "' in " + quoted(cache_dir));
    }
    PAGERFS_TRYV(file.keep_as(target));
  }
  return ok();
}

}  // namespace pagerfs
