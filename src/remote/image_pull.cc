#include "remote/image_pull.h"

#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/remote/remote_images.h"
#include "pagerfs/store/image_manifest.h"
#include "pagerfs/store/prefetch_profile.h"
#include "pagerfs/store/verify.h"
#include "store/temp_blob.h"
#include "util/unique_fd.h"
#include "util/mutex.h"

namespace pagerfs::remote {
namespace {

// A body collected into memory, at most `max` bytes.
struct Bounded {
  std::vector<std::byte> bytes{};
  uint64_t max = 0;
  bool overflow = false;
  HttpClient::BodyFn fn() {
    return [this](const HttpResponse& response, std::span<const std::byte> data) {
      if (response.status != 200) return true;  // an error page: not kept
      if (bytes.size() + data.size() > max) {
        overflow = true;
        return false;
      }
      bytes.insert(bytes.end(), data.begin(), data.end());
      return true;
    };
  }
};

class RegistrySource final : public PullSource {
 public:
  explicit RegistrySource(RegistryClient& client) : client_(client) {}

  Result<Image> image(const ImageReference& ref) override {
    PAGERFS_TRY(fetched, fetch_registry_image(client_, ref, RegistryFetchOptions{.cache = nullptr, .profile = true}));
    files_ = fetched.blob_files();
    return Image{std::move(fetched.manifest), std::move(fetched.config), std::move(fetched.profile),
                 std::move(fetched.profile_error), fetched.oci_digest};
  }

  Result<void> download(const image::BlobRecord& record, int fd) override {
    const auto it = files_.find(record.digest);
    if (it == files_.end()) return Error(errc::corrupt_blob, describe() + ": no layer for blob " + record.digest.str());
    if (it->second.size > max_blob_file_size(record.byte_size)) {
      return Error(errc::corrupt_blob, describe() + ": the layer of blob " + record.digest.str() +
                                           " is larger than the blob may be");
    }
    return client_.download_blob(it->second, fd);
  }

  std::string describe() const override { return client_.location().str(); }

 private:
  RegistryClient& client_;
  std::map<Digest, RegistryBlob> files_;  // written by image(), then only read
};

class HttpSource final : public PullSource {
 public:
  HttpSource(std::string base_url, HttpClientOptions options)
      : base_(std::move(base_url)), options_(options), http_(options) {}

  Result<Image> image(const ImageReference& ref) override {
    // The same fetch as a mount's (remote_images.h), from this one URL with
    // a pull's patience.
    RemoteLayerOptions remote;
    remote.urls = {base_};
    remote.connect_timeout = options_.connect_timeout;
    remote.attempt_timeout = std::chrono::minutes(10);
    remote.deadline = std::chrono::minutes(30);
    Image image;
    auto manifest = fetch_manifest(remote, ref.name, ref.digest, kMaxPagerfsManifestBytes);
    if (!manifest) return manifest.error().with_context(describe());
    image.manifest = std::move(manifest).value();
    image.digest = Sha256::of(image.manifest);
    if (!ref.digest) {
      PAGERFS_TRY(config, get_small("/configs/" + ref.name, Store::kMaxImageConfigBytes));
      image.config = std::move(config);
    }
    // The profile published beside it (STORE/profiles/NAME), as a mount
    // takes it: a hint, never anchored by the digest.
    auto published = get_small("/profiles/" + ref.name, profile::kMaxProfileBytes);
    if (published) {
      image.profile = std::move(published).value();
    } else {
      image.profile_error = published.error().message();
    }
    return image;
  }

  Result<void> download(const image::BlobRecord& record, int fd) override {
    const Digest& content = record.digest;
    const uint64_t max_size = max_blob_file_size(record.byte_size);
    const std::string url = base_ + "/" + Store::blob_relative_path(content);
    uint64_t received = 0;
    bool too_long = false;
    Result<void> written = ok();
    HttpRequest get{url};
    get.timeout = std::chrono::hours(24);  // the stall limit ends a dead transfer
    PAGERFS_TRY(response, http_.perform(get, [&](const HttpResponse& r, std::span<const std::byte> data) {
                  if (r.status != 200) return true;
                  received += data.size();
                  if (received > max_size) return too_long = true, false;
                  while (!data.empty()) {
                    const ssize_t n = ::write(fd, data.data(), data.size());
                    if (n < 0 && errno == EINTR) continue;
                    if (n < 0) {
                      written = Error::from_errno(errno, "writing blob " + content.str());
                      return false;
                    }
                    data = data.subspan(static_cast<size_t>(n));
                  }
                  return true;
                }));
    if (!written) return written.error();
    if (response.status != 200) {
      return Error(response.status == 404 ? std::make_error_code(std::errc::no_such_file_or_directory)
                                          : std::make_error_code(std::errc::io_error),
                   "GET " + redact_url(url) + ": HTTP " + std::to_string(response.status));
    }
    if (too_long) return Error(errc::corrupt_blob, "GET " + redact_url(url) + ": larger than the blob may be");
    return ok();
  }

  std::string describe() const override { return redact_url(base_); }

 private:
  // GET base + path, at most `max` bytes; nullopt on a 404.
  Result<std::optional<std::vector<std::byte>>> get_small(const std::string& path, uint64_t max) {
    const std::string url = base_ + path;
    Bounded body{.max = max};
    HttpRequest get{url};
    get.timeout = std::chrono::minutes(10);
    PAGERFS_TRY(response, http_.perform(get, body.fn()));
    if (response.status == 404) return std::optional<std::vector<std::byte>>();
    if (response.status == 401 || response.status == 403) {
      return Error(std::make_error_code(std::errc::permission_denied),
                   "GET " + redact_url(url) + ": HTTP " + std::to_string(response.status) + " (access denied)");
    }
    if (response.status != 200) {
      return Error(std::make_error_code(std::errc::io_error), "GET " + redact_url(url) + ": HTTP " +
                                                                  std::to_string(response.status));
    }
    if (body.overflow) return Error(errc::corrupt_blob, "GET " + redact_url(url) + ": the answer is too large");
    return std::optional<std::vector<std::byte>>(std::move(body.bytes));
  }

  std::string base_;
  HttpClientOptions options_;
  HttpClient http_;
};

// Whether the store holds blob `record` whole, with the table digest the
// manifest records.
bool have_blob(const Store& store, const image::BlobRecord& record) {
  if (!store.has_blob(record.digest)) return false;
  auto reader = BlobReader::open(store.blob_path(record.digest));
  if (!reader) return false;
  if (reader.value()->header().byte_size != record.byte_size) return false;
  return record.table_digest == Digest() || reader.value()->table_digest() == record.table_digest;
}

// Downloads blob `record` into a temporary file, verifies it whole, and
// renames it into place.
Result<uint64_t> fetch_blob(const Store& store, PullSource& source, const image::BlobRecord& record) {
  TempFile temp;
  PAGERFS_TRY(raw_fd, temp.create(store.blobs_dir()));
  const UniqueFd fd(raw_fd);
  const std::string what = source.describe() + ": blob " + record.digest.str();
  auto downloaded = source.download(record, fd.get());
  if (!downloaded) return downloaded.error();
  auto verified = verify_blob(temp.path(), record.digest, 1);
  if (!verified) return verified.error().with_context(what);
  PAGERFS_TRY(reader, BlobReader::open(temp.path()));
  if (reader->header().byte_size != record.byte_size ||
      (record.table_digest != Digest() && reader->table_digest() != record.table_digest)) {
    return Error(errc::digest_mismatch, what + ": not the blob the image records (its table digest or size differs)");
  }
  const off_t size = ::lseek(fd.get(), 0, SEEK_END);
  PAGERFS_TRYV(temp.install(fd.get(), store.blob_path(record.digest), /*durable=*/true));
  return static_cast<uint64_t>(size < 0 ? 0 : size);
}

}  // namespace

uint64_t max_blob_file_size(uint64_t byte_size) noexcept {
  const uint64_t limit = kMaxBlobFileBytes;
  if (byte_size > limit) return limit;
  return std::min(limit, byte_size + byte_size / 16 + (uint64_t{1} << 20));
}

std::unique_ptr<PullSource> registry_pull_source(RegistryClient& client) {
  return std::make_unique<RegistrySource>(client);
}

std::unique_ptr<PullSource> http_pull_source(std::string base_url, HttpClientOptions options) {
  while (base_url.ends_with('/')) base_url.pop_back();
  return std::make_unique<HttpSource>(std::move(base_url), options);
}

Result<PullResult> pull_image(const Store& store, PullSource& source, const ImageReference& ref,
                              const PullOptions& options) {
  const std::string where = source.describe() + " image " + ref.name;
  PAGERFS_TRY(pulled, source.image(ref));
  // The manifest, checked whole: everything below trusts its records.
  auto manifest = image::Manifest::parse(pulled.manifest);
  if (!manifest) return manifest.error().with_context(where);
  if (auto whole = manifest.value().verify(); !whole) return whole.error().with_context(where);
  if (pulled.config) {
    const auto* text = reinterpret_cast<const char*>(pulled.config->data());
    const auto json = nlohmann::json::parse(text, text + pulled.config->size(), nullptr, false);
    if (json.is_discarded() || !json.is_object()) {
      return Error(errc::corrupt_blob, where + ": the image config is not a JSON object");
    }
  }

  PullResult result;
  result.digest = pulled.digest;
  std::vector<image::BlobRecord> wanted;
  for (uint32_t k = 0; k < manifest.value().blob_count(); ++k) {
    PAGERFS_TRY(record, manifest.value().blob_at(k));
    if (have_blob(store, record)) {
      ++result.present;
    } else {
      wanted.push_back(record);
    }
  }

  // Downloads on up to `parallel` threads; the first failure stops the rest.
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  Mutex mu;
  std::optional<Error> first_error;
  uint64_t bytes = 0;
  auto work = [&] {
    for (;;) {
      const size_t i = next.fetch_add(1);
      if (i >= wanted.size() || failed.load()) return;
      auto fetched = fetch_blob(store, source, wanted[i]);
      MutexLock lock(mu);
      if (!fetched) {
        if (!first_error) first_error = fetched.error();
        failed = true;
        return;
      }
      bytes += fetched.value();
      if (options.progress) options.progress(bytes);
    }
  };
  const size_t threads = std::min<size_t>(std::max(1u, options.parallel), wanted.size());
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  if (!wanted.empty()) work();
  for (std::thread& t : pool) t.join();
  {
    MutexLock lock(mu);
    if (first_error) return *first_error;
    result.bytes = bytes;
  }
  result.downloaded = wanted.size();

  // The config of the image as pulled, or none: never an older image's.
  if (pulled.config) {
    PAGERFS_TRYV(store.write_image_config(ref.name, *pulled.config));
    result.config = true;
  } else {
    PAGERFS_TRYV(store.remove_image_config(ref.name));
  }
  // The profile of the image as pulled, or none (a hint: one that does not
  // parse is left out with a warning).
  std::optional<profile::Profile> hint;
  result.profile_warning = pulled.profile_error;
  if (pulled.profile) {
    auto parsed = profile::parse(*pulled.profile);
    if (parsed) {
      hint = std::move(parsed).value();
    } else {
      result.profile_warning = parsed.error().message();
    }
  }
  if (hint) {
    PAGERFS_TRYV(store.write_profile(ref.name, *hint));
    result.profile = true;
  } else {
    PAGERFS_TRYV(store.remove_profile(ref.name));
  }
  PAGERFS_TRYV(store.write_image(ref.name, pulled.manifest));
  return result;
}

}  // namespace pagerfs::remote
