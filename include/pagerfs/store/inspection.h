// What inspecting a blob or an image shows, computed once for every tool:
// a blob's frame statistics, an image's totals, the paths of its entries.
//
// Thread safety: pure functions of their arguments; an EntryPaths is used
// from one thread.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/store/image_manifest.h"

namespace pagerfs {

// The layout of a blob file, from its header and seek table (no data read).
struct BlobLayout {
  uint64_t frames_total = 0;  // compressed bytes of all chunks
  uint64_t frames_min = 0, frames_mean = 0, frames_max = 0;
  uint64_t last_chunk_size = 0;  // decompressed bytes of the last chunk
  double ratio = 0.0;            // content bytes per stored byte
};
BlobLayout blob_layout(const BlobReader& reader);

namespace image {

// "dir", "file", "symlink", "hardlink", "special".
const char* listing_type_name(EntryType type) noexcept;

// An image's totals, for a listing of a store's images.
struct Summary {
  uint32_t entries = 0;
  uint64_t files = 0;  // file entries (hard links not counted again)
  uint64_t bytes = 0;  // their content bytes
  size_t blobs = 0;    // distinct blobs named (whole files and packs)
  size_t contents = 0;  // distinct contents
};
// An error if an entry on the way is malformed.
Result<Summary> summarize(const Manifest& m);

// The paths of a manifest's entries, in index order, each built from its
// parent's: a listing then costs what it prints, however deep the tree
// (Manifest::path walks up to the root for every entry). Entries are breadth
// first with each directory's children contiguous, so a directory's path is
// dropped once its children are past, and at most about one level's paths
// are held.
class EntryPaths {
 public:
  explicit EntryPaths(const Manifest& m) : m_(m) {}

  // The path of `e` ("" for the root); call for every entry in index order.
  const std::string& of(const Entry& e);

 private:
  const Manifest& m_;
  std::unordered_map<uint32_t, std::string> dirs_;  // directories whose children may come
  uint32_t parent_ = 0;
  std::string path_;
};

}  // namespace image
}  // namespace pagerfs
