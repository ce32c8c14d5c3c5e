// The image catalog: the one place that decides which of a store's images
// are usable, and why not. A mount asks it for the images it shows (at mount,
// when images/ is listed, and when a name is looked up), `pagerfsctl images`
// for the manifests it lists, and `pagerfsctl verify` whether each image is
// whole; the callers only report what it answers.
//
// An image is usable when its name is valid and its manifest opens
// (Store::load_image: header and page table; entries are checked as they are
// used). Its blobs are not asked for: a missing blob is an error when a file
// that needs it is opened. verify checks the whole manifest and every blob
// it names against the blobs verified whole. A reason is one line that names
// the image (and the entry and blob, when one is at fault).
//
// A catalog remembers the images that failed to load, so that a lookup or a
// listing does not parse the same broken manifest again: a failed image is
// retried when its manifest file changes, or after Options::retry_after (a
// missing blob may have been copied in since).
//
// Thread safety: all methods may be called concurrently; Options::on_failure
// is called without any lock of the catalog held.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pagerfs/store/image_manifest.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace pagerfs {

// The byte sizes of blobs known to be whole, by digest.
using BlobSizes = std::unordered_map<Digest, uint64_t, DigestHash>;
// The table digests (format::table_digest) of blobs known to be whole.
using BlobAnchors = std::unordered_map<Digest, Digest, DigestHash>;

class ImageCatalog {
 public:
  struct Options {
    // How long a failed image is not read again while its manifest file is
    // unchanged.
    std::chrono::steady_clock::duration retry_after = std::chrono::seconds(10);
    // Called once for each load that fails (not for a remembered failure),
    // with the reason: for the caller's log.
    std::function<void(const Error&)> on_failure;
  };

  explicit ImageCatalog(Store store);
  ImageCatalog(Store store, Options options);
  ~ImageCatalog();
  ImageCatalog(const ImageCatalog&) = delete;
  ImageCatalog& operator=(const ImageCatalog&) = delete;

  const Store& store() const noexcept { return store_; }

  // The names of the store's images, sorted (none if it has no images/).
  Result<std::vector<std::string>> names() const;

  // Image `name`'s manifest, read and validated (its blobs are not asked
  // for): what a listing of the store shows. Not remembered.
  Result<image::Manifest> manifest(std::string_view name) const;

  // Image `name`, if it is usable: its manifest opens. nullopt if there is no such image (a name no
  // image may have, or no manifest under it); an error is the reason it is
  // not usable. A failure is remembered: until the manifest file changes or
  // retry_after has passed, asking again returns the same reason without
  // reading anything but the file's attributes.
  Result<std::optional<image::Manifest>> load(std::string_view name);

  // Whether image `name` is whole against blobs verified whole (`whole`): a
  // valid manifest (Manifest::verify: every entry, every content inside its
  // blob's recorded size), every blob it names in `whole` (a damaged blob
  // counts as missing) with the byte size the manifest records. A missing or short blob is
  // errc::corrupt_blob; a manifest that cannot be read keeps its own error.
  // Not remembered.
  // A blob record's table digest, where the image records one, must be the
  // blob's own (`anchors`; a blob not in it is not compared).
  Result<void> verify(std::string_view name, const BlobSizes& whole, const BlobAnchors& anchors = {}) const;

  struct Stats {
    uint64_t images_failed = 0;        // images that failed and were not loaded since
    uint64_t image_load_failures = 0;  // failed loads, each retry counted
  };
  Stats stats() const;

 private:
  const Store store_;
  const Options options_;
  // The failed images and the count of failed loads (image_catalog.cc).
  struct Failures;
  const std::unique_ptr<Failures> failures_;
};

}  // namespace pagerfs
