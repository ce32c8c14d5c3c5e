// A pagerfs store: a directory of content-addressed blob files.
//
//   STORE/blobs/sha256/<64 lowercase hex>   one blob, named by the SHA-256 of
//                                           its decompressed content
//
// Blobs are immutable once written. They are written under a temporary name
// in the same directory, fsync'd, and rename()d into place, so a crash never
// leaves a partial file under a blob's name; leftover temporaries (names
// starting with ".tmp-") are ignored by readers.
//
// Thread safety: a Store is immutable after open(); all methods may be called
// concurrently (pack() of the same content twice is safe: rename is atomic).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pagerfs/blob_format.h"
#include "pagerfs/blob_writer.h"
#include "pagerfs/digest.h"
#include "pagerfs/error.h"
#include "pagerfs/file.h"

namespace pagerfs {

class Store {
 public:
  // Opens an existing store; errc::not_a_store if `root` has no blobs/sha256.
  static Result<Store> open(const std::string& root);
  // Opens a store, creating its directories if they are missing.
  static Result<Store> create(const std::string& root);

  const std::string& root() const noexcept { return root_; }
  std::string blobs_dir() const;
  std::string blob_path(const Digest& digest) const;

  // Every blob in the store, sorted by digest.
  Result<std::vector<Digest>> list_blobs() const;

  struct PackResult {
    format::BlobHeader header;  // header.digest names the blob
    uint64_t file_size = 0;     // of the blob file
    bool already_present = false;  // the store had it; nothing was written
  };
  // Writes `input` as a blob (atomically, durably); keeps an existing blob.
  Result<PackResult> pack(InputStream& input, const BlobWriterOptions& options) const;

 private:
  explicit Store(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

}  // namespace pagerfs
