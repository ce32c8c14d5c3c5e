// Full verification of blob files, and of a store: its blobs, then its
// images against the blobs found whole.
//
// Thread safety: verify_blob() may run concurrently on any blobs; a
// StoreVerifier is used from one thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/format/blob_format.h"
#include "pagerfs/store/image_catalog.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace pagerfs {

// Checks everything a reader relies on: header and seek table (as open()
// does), every chunk's frame and checksum, the SHA-256 of the whole content
// against the header's digest and, when given, against `expected_name` (the
// digest the blob's file name claims). Chunks are decoded on `threads`
// threads (0 = one per core). Returns the header of a good blob.
Result<format::BlobHeader> verify_blob(const std::string& path,
                                       const std::optional<Digest>& expected_name,
                                       unsigned threads = 0);

// True for errors that mean damaged or foreign data (rather than an I/O
// error or a bad request): the blob itself is bad.
bool is_corruption(const std::error_code& code) noexcept;

// Verifies a store: blobs one by one (verify_blob), then images, each against
// the blobs verified whole so far (ImageCatalog::verify), so that an image is
// judged by the blobs as they are, not as their files claim.
class StoreVerifier {
 public:
  // `threads`: decoding threads per blob (0 = one per core).
  StoreVerifier(Store store, unsigned threads) : catalog_(std::move(store)), threads_(threads) {}

  // Every blob of the store, sorted.
  Result<std::vector<Digest>> blobs() const { return catalog_.store().list_blobs(); }
  // Every image of the store, sorted.
  Result<std::vector<std::string>> images() const { return catalog_.names(); }

  // Verifies blob `digest` completely, its file name included; a good blob
  // is remembered for the images.
  Result<format::BlobHeader> verify_blob(const Digest& digest);
  // Whether image `name` is whole against the blobs verified good so far.
  Result<void> verify_image(std::string_view name) const { return catalog_.verify(name, whole_, anchors_); }

 private:
  ImageCatalog catalog_;
  const unsigned threads_;
  BlobSizes whole_;
  BlobAnchors anchors_;
};

}  // namespace pagerfs
