// Pulling one image into a store from where it was published: an OCI
// registry (pagerfs-store(5), IMAGES IN AN OCI REGISTRY) or a store
// published over http(s) (STORE/images/NAME, STORE/blobs/sha256/HEX).
//
// Nothing unverified enters the store. Every blob is downloaded to a
// temporary file in the store's blob directory (".tmp-", which readers
// ignore), verified whole (verify_blob: every chunk, the content's SHA-256
// against its name; then its table digest and size against what the image
// manifest records) and only then renamed into place. The image manifest,
// checked whole before the first download, is written last (Store::
// write_image, atomic), after the config and the prefetch profile (from a
// registry; a hint: one that cannot be had or parsed is left out with a
// warning in PullResult, never an older image's kept). A blob the store already holds
// whole with the recorded table digest is not downloaded again. On any
// failure the temporary files are removed and no image is written; blobs
// already verified and renamed stay (they are valid blobs by their names).
//
// Thread safety: pull_image() downloads on up to PullOptions::parallel
// threads of its own; a PullSource must allow that (both here do).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pagerfs/store/image_manifest.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "remote/http_client.h"
#include "remote/registry_client.h"

namespace pagerfs::remote {

// Where an image comes from.
class PullSource {
 public:
  struct Image {
    std::vector<std::byte> manifest;               // the pagerfs manifest file
    std::optional<std::vector<std::byte>> config;  // the OCI image config JSON
    // The prefetch profile's bytes, verified against its digest in the
    // artifact (registry); a hint, so one that cannot be had leaves this
    // empty and says why in profile_error.
    std::optional<std::vector<std::byte>> profile;
    std::string profile_error;
    // What NAME@sha256:... pins: the OCI manifest's digest (registry), the
    // manifest file's (published store).
    Digest digest;
  };
  virtual ~PullSource() = default;
  // Image `ref`, checked against ref.digest when given.
  virtual Result<Image> image(const ImageReference& ref) = 0;
  // Writes the bytes of the file of blob `record` (one the image names) to
  // `fd`: its bytes only, bounded by what such a blob's file can be; the
  // caller verifies them.
  virtual Result<void> download(const image::BlobRecord& record, int fd) = 0;
  // "oci://HOST/REPO" or the URL, for messages.
  virtual std::string describe() const = 0;
};

// A registry repository (the client must outlive the source).
std::unique_ptr<PullSource> registry_pull_source(RegistryClient& client);
// A store published at `base_url` (http:// or https://, no trailing '/').
// With a pinned digest the config (STORE/configs/NAME) is not pulled: the
// pin covers the manifest only.
std::unique_ptr<PullSource> http_pull_source(std::string base_url, HttpClientOptions options = {});

// The largest file a blob of `byte_size` decoded bytes can have: its content
// (zstd stores incompressible data raw, with a few bytes per block), a seek
// table entry per chunk (at least 4 KiB each), the header. What a server may
// send for it.
uint64_t max_blob_file_size(uint64_t byte_size) noexcept;

struct PullOptions {
  unsigned parallel = 4;  // downloads at once
  // Told the bytes downloaded so far (from any download thread, serialised).
  std::function<void(uint64_t bytes)> progress;
};

struct PullResult {
  Digest digest;             // PullSource::Image::digest
  size_t downloaded = 0;     // blobs downloaded
  size_t present = 0;        // blobs the store had
  uint64_t bytes = 0;        // downloaded
  bool config = false;       // a config was written
  bool profile = false;      // a prefetch profile was written
  std::string profile_warning;  // why the image's profile was not (one line), or empty
};

Result<PullResult> pull_image(const Store& store, PullSource& source, const ImageReference& ref,
                              const PullOptions& options = {});

}  // namespace pagerfs::remote
