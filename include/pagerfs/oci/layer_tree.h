// The tree of an OCI image as its layers build it, metadata only: the
// entries of each layer applied in order with the semantics of the OCI image
// spec (layer.md), then listed as the entries of one pagerfs image.
//
//   - An entry replaces what is at its path: a directory over a directory
//     keeps the children and takes the new metadata; anything else replaces
//     the whole subtree.
//   - "D/.wh.NAME" removes D/NAME (and its subtree) written by a lower layer;
//     NAME must be a plain name (not "", "." or ".."). A whiteout of nothing
//     is fine. "D/.wh..wh..opq" removes everything under D that lower layers
//     wrote. Whiteouts are never entries of the image.
//   - Every parent must be a directory: a missing one is created (0755,
//     root, mtime 0); one that is a symlink or anything but a directory is an
//     error: a symlink is never followed, so no layer writes outside the root.
//   - A hard link names an entry that exists when the link is met and is not
//     a directory; the two paths share one inode (metadata, content).
//
// A file's content is named by its digest, given by the caller (the importer
// stores it); the tree never sees the bytes. Errors are one line naming the
// layer and the entry ("layer 2 (sha256:...): entry 'a/b': ...").
//
// Thread safety: a LayerTree is used by one thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/oci/layer_entry.h"
#include "pagerfs/store/image_manifest.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace pagerfs::oci {

inline constexpr std::string_view kWhiteoutPrefix = ".wh.";
inline constexpr std::string_view kOpaqueWhiteout = ".wh..wh..opq";

// Whether the last component of `path` makes it a whiteout (".wh.*"): the
// importer stores no content for one.
bool is_whiteout(std::string_view path) noexcept;

class LayerTree {
 public:
  LayerTree();
  ~LayerTree();
  LayerTree(const LayerTree&) = delete;
  LayerTree& operator=(const LayerTree&) = delete;

  // Starts layer `index` (0, 1, ...: in order); `name` starts its messages.
  void begin_layer(uint32_t index, std::string name);

  // Applies one entry of the current layer. `content` is the digest of a
  // file's data (ignored for other entries).
  Result<void> apply(const LayerEntry& entry, const Digest& content = Digest());

  // The image: every path in the tree with its metadata. An inode reached
  // by several paths is a file (symlink, ...) at the first of them in
  // manifest order and a hard link at the others. Files have `digest` and
  // `size` set, not `packed`.
  std::vector<image::EntrySpec> entries() const;

  // The entries in the tree now, root included.
  uint64_t size() const noexcept { return paths_; }

 private:
  struct Inode;
  struct Node;
  Error error(std::string_view path, const std::string& what) const;
  Result<Node*> parent_of(std::string_view path, std::string_view& leaf);
  Node* find(std::string_view path) const;
  void remove_lower(Node& dir);
  void count_removed(const Node& node);

  std::unique_ptr<Node> root_;
  uint32_t layer_ = 0;
  std::string layer_name_;
  uint64_t paths_ = 1;
};

}  // namespace pagerfs::oci
