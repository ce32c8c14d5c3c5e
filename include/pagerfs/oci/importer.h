// Importing a container image into a store: `pagerfsctl import`.
//
// The layers of the image (pagerfs/oci/image_source.h) are read once each,
// in order, streaming (pagerfs/oci/layer_reader.h): every entry is applied to
// the image's tree (pagerfs/oci/layer_tree.h), and the data of every file is
// placed as it passes (deduplicated against the store, the packs other
// images name and this import; small files gathered into pack blobs), into a
// staging area of the store (pagerfs/store/blob_staging.h). At the end the
// tree becomes a manifest; the blobs it names are synced and moved into the
// store, then the image config is written (STORE/configs/NAME) and last the
// manifest (STORE/images/NAME), replacing an image of that name.
//
// Any error (a malformed layer, a digest mismatch, I/O, ENOSPC) leaves the
// store as it was: nothing is committed until every layer was read and
// checked and the manifest encoded. A file that a later layer deletes
// leaves no blob behind, but its bytes stay in a pack that also holds files
// the image keeps.
//
// Thread safety: import_image() may run concurrently with readers of the
// store and with imports or packs of other image names; `on_progress` is
// called on the calling thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "pagerfs/format/blob_writer.h"
#include "pagerfs/oci/image_source.h"
#include "pagerfs/store/image_packer.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/error.h"

namespace pagerfs::oci {

struct ImportProgress {
  size_t layer = 0;  // counting from 0
  size_t layers = 0;
  uint64_t raw_bytes = 0;  // read of this layer so far
  uint64_t entries = 0;    // of all layers so far
};

struct ImportOptions {
  BlobWriterOptions blob;  // chunk size, level, threads (0: one per core)
  uint64_t pack_threshold = kDefaultPackThreshold;  // files below this are packed; 0: none
  uint64_t pack_max = kDefaultPackMax;              // content bytes per pack at most (>= threshold)
  std::function<void(const ImportProgress&)> on_progress;
};

struct ImportResult {
  uint64_t layers = 0;
  uint64_t layer_entries = 0;   // tar entries read, whiteouts included
  uint64_t entries = 0;         // in the manifest, root included
  uint64_t files = 0;           // regular files (hard links once)
  uint64_t content_bytes = 0;   // their total size
  uint64_t new_blobs = 0;       // moved into the store (packs included)
  uint64_t new_packs = 0;
  uint64_t manifest_bytes = 0;
};

// Imports `source` as image `name` of `store`. Errors name the layer and
// the entry at fault.
Result<ImportResult> import_image(const Store& store, const std::string& name, const ImageSource& source,
                                  const ImportOptions& options);

}  // namespace pagerfs::oci
