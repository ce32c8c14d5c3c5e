// A staging area for the blobs of one import: blobs are written where
// readers of the store do not see them, and published together, only once
// everything that names them is known to be good.
//
//   STORE/blobs/sha256/.tmp-stage-XXXXXX/<hex>   a staged blob
//
// `pagerfsctl import` reads a container image layer by layer, and a later
// layer may delete a file an earlier one wrote, or the image may turn out to
// be malformed half-way: until the end it cannot know which blobs the image
// will name. Staged blobs are written (not synced) into a private directory
// (0700, created by mkdtemp; its name starts with ".tmp-", which every reader
// of blobs/sha256 ignores); commit() syncs the file system once and renames
// the blobs the image names into the store. A blob the store already holds
// is never written again, nor replaced (its table digest is what other
// manifests anchor). Whatever is not committed is removed with the directory
// when the BlobStaging is destroyed.
//
// The directory is flock()ed for the life of its BlobStaging, so that
// remove_stale() (run before an import) removes only the staging directories
// of imports that died (crashed, killed) and never one in use.
//
// Thread safety: a BlobStaging is used by one thread at a time (pack() uses
// the compression threads of its options); several may exist at once in one
// store, each in its own directory. remove_stale() may run concurrently with
// other imports.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "pagerfs/format/blob_writer.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "pagerfs/util/file.h"

namespace pagerfs {

class BlobStaging {
 public:
  // Creates a staging directory in `store` (which must outlive it).
  static Result<std::unique_ptr<BlobStaging>> create(const Store& store);
  ~BlobStaging();
  BlobStaging(const BlobStaging&) = delete;
  BlobStaging& operator=(const BlobStaging&) = delete;

  const std::string& dir() const noexcept { return dir_; }

  // Writes `input` as a blob into the staging directory, as Store::pack
  // does into the store. A blob the store holds (whole) or that this staging
  // holds already is not kept: already_present, with that blob's header and
  // table digest.
  Result<Store::PackResult> pack(InputStream& input, const BlobWriterOptions& options);

  // Whether `digest` was staged by pack() (and not yet committed).
  bool staged(const Digest& digest) const { return staged_.contains(digest); }

  // Makes every staged blob durable (one syncfs) and moves those in `keep`
  // into the store (digests in `keep` that were not staged are ignored).
  // Returns the digests the store got meanwhile from someone else: ours was
  // dropped, and the store's is kept (its table digest may differ: a caller
  // that recorded ours must read the store's).
  Result<std::vector<Digest>> commit(std::span<const Digest> keep);

  // Removes the staging directories of `store` that no live BlobStaging
  // holds (left by an import that died); returns how many.
  static Result<size_t> remove_stale(const Store& store);

 private:
  BlobStaging(const Store& store, std::string dir, int dir_fd);

  const Store& store_;
  std::string dir_;
  int dir_fd_;  // owned; holds the flock
  std::unordered_map<Digest, Store::PackResult, DigestHash> staged_;
};

}  // namespace pagerfs
