// Packing a directory tree into a store as an image: every regular file
// becomes a blob (deduplicated against the store and within the tree) and
// the tree becomes a manifest, STORE/images/<name>.
//
// Files are hashed first; only content the store does not already hold is
// compressed. Small files are packed in parallel, one per thread; large
// files one at a time with every thread. Blobs are synced once, together,
// before the manifest that names them is written (atomically): a crash
// leaves either the old image or the new one, never a manifest naming a
// blob that is not on disk.
//
// The tree may change while it is packed: a file (or a directory above it)
// replaced by a symlink, a FIFO or another file after the scan fails the pack
// ("'PATH' changed during pack: ..."); a file whose content changes is packed
// as it was read, and the manifest names only blobs the store holds.
//
// Thread safety: pack_image() may run concurrently with readers of the
// store and with other packs of different image names; `on_progress` is
// called from one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "pagerfs/format/blob_writer.h"
#include "pagerfs/util/error.h"
#include "pagerfs/store/store.h"

namespace pagerfs {

struct ImagePackProgress {
  uint64_t files_done = 0;
  uint64_t files_total = 0;
  uint64_t bytes_done = 0;  // of file content, hashed or packed
  uint64_t bytes_total = 0;
};

// Points at which a test can change the tree under a pack, deterministically.
struct ImagePackTestHooks {
  std::function<void()> scanned;  // the tree is scanned; no file is opened yet
  // A file was hashed (from `path`), before it is compressed or deduplicated.
  std::function<void(const std::string& path)> hashed;
};

struct ImagePackOptions {
  BlobWriterOptions blob;  // chunk size, level, threads (0: one per core)
  std::function<void(const ImagePackProgress&)> on_progress;
  ImagePackTestHooks test_hooks;  // for tests only; empty otherwise
};

struct ImagePackResult {
  uint64_t entries = 0;         // in the manifest, root included
  uint64_t files = 0;           // regular files (hard links once)
  uint64_t content_bytes = 0;   // their total size
  uint64_t distinct_blobs = 0;  // distinct contents
  uint64_t new_blobs = 0;       // written by this pack
  uint64_t new_blob_bytes = 0;  // stored size of those
  uint64_t manifest_bytes = 0;
};

// Packs the tree at `dir` as image `name` of `store`, replacing an image of
// that name. Errors name the file or entry at fault.
Result<ImagePackResult> pack_image(const Store& store, const std::string& name, const std::string& dir,
                                   const ImagePackOptions& options);

}  // namespace pagerfs
