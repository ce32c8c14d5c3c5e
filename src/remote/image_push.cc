#include "remote/image_push.h"

#include <fcntl.h>

#include "pagerfs/store/verify.h"
#include "util/safe_open.h"

namespace pagerfs::remote {

Result<PushResult> push_image(const Store& store, RegistryClient& client, std::string_view name,
                              const PushOptions& options) {
  const std::string image = "image '" + std::string(name) + "'";
  PAGERFS_TRY(artifact, describe_image(store, name));

  // Nothing damaged leaves the store: every blob verified whole, then the
  // image against them (its table digests and sizes).
  StoreVerifier verifier(store, options.verify_threads);
  for (const ArtifactBlob& blob : artifact.blobs) {
    auto verified = verifier.verify_blob(blob.content);
    if (!verified) return verified.error().with_context(image + ": refusing to push blob " + blob.content.str());
  }
  if (auto whole = verifier.verify_image(name); !whole) {
    return whole.error().with_context("refusing to push " + image);
  }

  // What to upload: the files the registry lacks, in the artifact's order,
  // then the manifest file and the config.
  struct Upload {
    RegistryBlob blob;
    std::string path;  // the file to stream, or empty: `bytes`
    std::vector<std::byte> bytes;
  };
  std::vector<Upload> uploads;
  PushResult result;
  auto plan = [&](const RegistryBlob& blob, std::string path) -> Result<void> {
    PAGERFS_TRY(size, client.blob_size(blob.digest));
    if (size && *size == blob.size) {
      ++result.present;
      return ok();
    }
    uploads.push_back({blob, std::move(path), {}});
    return ok();
  };
  for (const ArtifactBlob& blob : artifact.blobs) PAGERFS_TRYV(plan(blob.file, store.blob_path(blob.content)));
  PAGERFS_TRYV(plan(artifact.manifest, store.image_path(name)));
  if (artifact.config) {
    PAGERFS_TRYV(plan(*artifact.config, ""));
    if (!uploads.empty() && uploads.back().path.empty()) {
      PAGERFS_TRY(config_bytes, store.load_image_config(name));
      uploads.back().bytes = std::move(config_bytes);
    }
  }
  if (artifact.profile) {
    const size_t before = uploads.size();
    PAGERFS_TRYV(plan(*artifact.profile, ""));
    if (uploads.size() > before) {
      // Read (and checked to parse) again: the registry refuses bytes that
      // changed since they were hashed, so the artifact never names others.
      PAGERFS_TRY(profile_bytes, load_profile_file(store, name));
      if (!profile_bytes || Sha256::of(*profile_bytes) != artifact.profile->digest) {
        return Error(std::make_error_code(std::errc::resource_unavailable_try_again),
                     image + ": its prefetch profile changed while it was pushed; push again");
      }
      uploads.back().bytes = std::move(*profile_bytes);
    }
  }

  uint64_t total = 0;
  for (const Upload& u : uploads) total += u.blob.size;
  for (const Upload& u : uploads) {
    if (u.path.empty()) {
      PAGERFS_TRYV(client.upload_blob(u.blob.digest, u.bytes));
    } else {
      // The registry checks the digest of what arrives: a file changed since
      // it was hashed fails the upload, it is not published.
      PAGERFS_TRY(fd, open_regular_file(u.path, O_RDONLY));
      PAGERFS_TRYV(client.upload_blob(u.blob.digest, fd.get(), u.blob.size));
    }
    ++result.uploaded;
    result.bytes += u.blob.size;
    if (options.progress) options.progress(result.bytes, total);
  }
  PAGERFS_TRY(digest, client.put_manifest(artifact.name, encode_artifact(artifact)));
  result.digest = std::move(digest);
  return result;
}

}  // namespace pagerfs::remote
