#include "pagerfs/remote/remote_images.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <thread>

#include "pagerfs/store/image_manifest.h"
#include "remote/http_client.h"
#include "remote/manifest_cache.h"
#include "remote/registry_artifact.h"
#include "util/posix_io.h"
#include "util/quoted.h"
#include "util/safe_open.h"

namespace pagerfs {
namespace {

// The store's own bound on a manifest file (store.cc): a larger answer is
// not a manifest, whatever the server says.
constexpr uint64_t kMaxManifestBytes = uint64_t{1} << 30;

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

// One GET of URL, its answer (if 200) into `bytes`, at most `max_bytes`.
// Returns the HTTP status, or the transport error.
Result<long> get_bytes(remote::HttpClient& client, const std::string& url, std::chrono::milliseconds timeout,
                       uint64_t max_bytes, std::vector<std::byte>& bytes) {
  bytes.clear();
  std::optional<Error> failed;
  auto body = [&](const remote::HttpResponse& r, std::span<const std::byte> data) {
    if (r.status != 200) return true;  // an error page: drained, judged by its status
    if (bytes.size() + data.size() > max_bytes) {
      failed = Error(errc::corrupt_blob, "GET " + remote::redact_url(url) + ": more than " +
                                             std::to_string(max_bytes) + " bytes");
      return false;
    }
    bytes.insert(bytes.end(), data.begin(), data.end());
    return true;
  };
  PAGERFS_TRY(response,
              client.perform(remote::HttpRequest{url, remote::HttpRequest::Method::get, std::nullopt, timeout}, body));
  if (failed) return *failed;
  if (response.status == 200 && response.content_length && *response.content_length != bytes.size()) {
    return Error(std::make_error_code(std::errc::io_error),
                 "GET " + remote::redact_url(url) + ": the answer ended after " + std::to_string(bytes.size()) +
                     " of " + std::to_string(*response.content_length) + " bytes");
  }
  return response.status;
}

std::string trimmed(std::string url) {
  while (url.ends_with('/')) url.pop_back();
  return url;
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
  std::vector<std::byte> bytes;
  for (const std::string& mirror : remote.urls) {
    const std::string base = trimmed(mirror);
    auto status = get_bytes(client, base + "/profiles/" + ref.name, remote.attempt_timeout, profile::kMaxProfileBytes,
                            bytes);
    if (!status) return warn(status.error().message());
    if (status.value() == 404 || status.value() == 410) continue;
    if (status.value() != 200) return warn(remote::redact_url(base) + ": HTTP " + std::to_string(status.value()));
    auto parsed = profile::parse(bytes);
    if (!parsed) return warn(remote::redact_url(base) + ": " + parsed.error().message());
    if (auto written = store.write_profile(ref.name, parsed.value()); !written) warn(written.error().message());
    return;
  }
}

}  // namespace

Result<ImageReference> parse_image_reference(std::string_view text) {
  const std::string shown = quoted(text.substr(0, 300));
  const size_t at = text.find('@');
  ImageReference ref;
  ref.name = std::string(text.substr(0, at));
  if (auto valid = image::validate_image_name(ref.name); !valid) return valid.error().with_context("image " + shown);
  if (at != std::string_view::npos) {
    PAGERFS_TRY(digest, remote::parse_canonical_digest(text.substr(at + 1), "the digest of image " + shown));
    ref.digest = digest;
  }
  return ref;
}

Result<Digest> manifest_digest(const Store& store, std::string_view name) {
  PAGERFS_TRYV(image::validate_image_name(name));
  const std::string path = store.image_path(name);
  PAGERFS_TRY(fd, open_regular_file(path, O_RDONLY));
  return hash_file(fd.get(), path);
}

Result<std::vector<std::byte>> fetch_manifest(const RemoteLayerOptions& remote, std::string_view name,
                                              const std::optional<Digest>& pinned, uint64_t max_bytes) {
  using Clock = std::chrono::steady_clock;
  const std::string image = "image '" + std::string(name) + "'";
  if (remote.urls.empty()) return Error(errc::invalid_argument, image + ": no remote to fetch it from");
  remote::HttpClient client(remote::HttpClientOptions{remote.connect_timeout, std::chrono::seconds(5), 4});
  const Clock::time_point deadline = Clock::now() + remote.deadline;
  std::chrono::milliseconds backoff = remote.backoff;
  std::vector<bool> absent(remote.urls.size(), false);
  std::optional<Error> last_error;
  unsigned failures = 0;
  std::vector<std::byte> bytes;
  for (size_t m = 0; failures < remote.attempts; m = (m + 1) % remote.urls.size()) {
    if (std::find(absent.begin(), absent.end(), false) == absent.end()) {
      if (last_error) break;
      return Error::from_errno(ENOENT, image + " is on no remote (images/" + std::string(name) + ")");
    }
    if (absent[m]) continue;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    const std::string base = trimmed(remote.urls[m]);
    const std::string url = base + "/images/" + std::string(name);
    auto status = get_bytes(client, url, std::min(left, remote.attempt_timeout), max_bytes, bytes);
    if (status && status.value() == 200) {
      if (!pinned) return bytes;
      const Digest got = Sha256::of(bytes);
      if (got == *pinned) return bytes;
      // A server that lies is not asked again: another mirror may not.
      last_error = Error(errc::corrupt_blob, image + " from " + remote::redact_url(base) + ": its manifest is " +
                                                 got.str() + ", not the " + pinned->str() + " asked for");
      absent[m] = true;
      continue;
    }
    if (status && (status.value() == 404 || status.value() == 410)) {
      absent[m] = true;
      continue;
    }
    if (status && (status.value() == 401 || status.value() == 403)) {
      last_error = Error::from_errno(EACCES, "GET " + remote::redact_url(url) + ": HTTP " + std::to_string(status.value()) +
                                                 " (access denied)");
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
  if (last_error) {
    if (last_error->code() == make_error_code(errc::corrupt_blob)) return *last_error;
    return Error(last_error->code(), image + ": " + last_error->message());
  }
  return Error(std::make_error_code(std::errc::io_error), image + ": no remote answered");
}

Result<void> fetch_images(const RemoteLayerOptions& remote, const std::vector<ImageRef>& images, const Store& store,
                          const FetchImagesOptions& options) {
  if (images.empty()) return ok();
  PAGERFS_TRYV(validate(remote));
  std::optional<ManifestCache> cache;
  if (!options.manifest_cache_dir.empty()) {
    PAGERFS_TRY(opened, ManifestCache::open(options.manifest_cache_dir));
    cache.emplace(std::move(opened));
  }
  for (const ImageRef& ref : images) {
    if (options.fetch_profiles) fetch_profile(remote, ref, store, options);
    std::optional<std::vector<std::byte>> manifest;
    if (cache) manifest = cache->get(ref.manifest_digest, kMaxManifestBytes);
    if (!manifest) {
      PAGERFS_TRY(fetched, fetch_manifest(remote, ref.name, ref.manifest_digest, kMaxManifestBytes));
      // Kept by digest for the next mount.
      if (cache) {
        if (auto kept = cache->put(ref.manifest_digest, fetched); !kept && options.warn) {
          options.warn("image '" + ref.name + "': not kept in the manifest cache: " + kept.error().message());
        }
      }
      manifest = std::move(fetched);
    }
    PAGERFS_TRYV(store.write_image(ref.name, *manifest));
  }
  return ok();
}

}  // namespace pagerfs
