// Packing a directory tree into a store as an image: every regular file
// becomes a blob of its own or a place in a shared pack blob (deduplicated
// against the store and within the tree), and the tree becomes a manifest,
// STORE/images/<name>.
//
// Every file is hashed first; then a plan (store/pack_planner.h) places each
// one: files below `pack_threshold` bytes are concatenated, in manifest order
// (breadth first, by directory: files read together sit together), into pack
// blobs of at most `pack_max` bytes of content; the rest, empty files, and
// contents the store already holds as a blob are whole blobs; a content that
// sits in a pack another image names reuses that pack. Only content the store
// does not already hold is compressed: large files one at a time with every
// thread, other whole files side by side, one per thread, then each new pack
// with every thread. Blobs are synced once, together, before the manifest that
// names them is written (atomically): a crash leaves either the old image or
// the new one, never a manifest naming a blob that is not on disk.
//
// The tree may change while it is packed: a file (or a directory above it)
// replaced by a symlink, a FIFO or another file after the scan fails the pack
// ("'PATH' changed during pack: ..."), and so does a file bound for a pack
// whose content changes after it was hashed (its neighbours' offsets depend on
// its size); a whole file whose content changes is packed as it was read. The
// manifest names only blobs the store holds.
//
// Thread safety: pack_image() may run concurrently with readers of the
// store and with other packs of different image names; `on_progress` is
// called from one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "pagerfs/format/blob_writer.h"
#include "pagerfs/store/image_manifest.h"
#include "pagerfs/store/stored_packs.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/error.h"

namespace pagerfs {

struct ImagePackProgress {
  uint64_t files_done = 0;
  uint64_t files_total = 0;
  uint64_t bytes_done = 0;  // of file content hashed, then of content compressed
  uint64_t bytes_total = 0;  // grows by what is to be compressed once that is known
};

// Points at which a test can change the tree under a pack, deterministically.
struct ImagePackTestHooks {
  std::function<void()> scanned;  // the tree is scanned; no file is opened yet
  // A file was hashed (from `path`), before it is compressed or deduplicated.
  std::function<void(const std::string& path)> hashed;
};

// Files below this size are packed together. Measured on the Python tree
// (see pagerfsctl(1)); 0 packs nothing.
inline constexpr uint64_t kDefaultPackThreshold = 128u << 10;
inline constexpr uint64_t kDefaultPackMax = 64u << 20;  // content bytes per pack

struct ImagePackOptions {
  BlobWriterOptions blob;  // chunk size, level, threads (0: one per core)
  uint64_t pack_threshold = kDefaultPackThreshold;  // files below this are packed; 0: none
  uint64_t pack_max = kDefaultPackMax;              // content bytes per pack at most (>= threshold)
  std::function<void(const ImagePackProgress&)> on_progress;
  ImagePackTestHooks test_hooks;  // for tests only; empty otherwise
};

struct ImagePackResult {
  uint64_t entries = 0;         // in the manifest, root included
  uint64_t files = 0;           // regular files (hard links once)
  uint64_t content_bytes = 0;   // their total size
  uint64_t distinct_blobs = 0;  // distinct contents
  uint64_t packed_files = 0;    // files whose content sits in a pack (new or reused)
  uint64_t packs = 0;           // pack blobs the image names
  uint64_t new_packs = 0;       // of those, written by this pack
  uint64_t new_blobs = 0;       // written by this pack (packs included)
  uint64_t new_blob_bytes = 0;  // stored size of those
  uint64_t manifest_bytes = 0;
};

// An image built in the store but not yet named by a manifest: its entries
// (a file's `digest` is its content's; `packed` says where that sits if in a
// pack) and the record of every blob they name, sorted by digest, unique.
struct BuiltImage {
  std::vector<image::EntrySpec> entries;
  std::vector<image::BlobRecord> blobs;
  ImagePackResult result;  // manifest_bytes is 0
};

// Hashes, plans and writes every blob of the tree at `dir` into `store`
// (deferred durability: the caller syncs before naming them), reusing the
// packs `known` lists. What pack_image() does before it writes the manifest.
Result<BuiltImage> build_image(const Store& store, const std::string& dir, const ImagePackOptions& options,
                               const StoredPacks& known);

// Packs the tree at `dir` as image `name` of `store`, replacing an image of
// that name. Errors name the file or entry at fault.
Result<ImagePackResult> pack_image(const Store& store, const std::string& name, const std::string& dir,
                                   const ImagePackOptions& options);

}  // namespace pagerfs
