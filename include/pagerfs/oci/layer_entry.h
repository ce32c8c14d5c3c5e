// One entry of an OCI image layer (a tar member), as the layer reader yields
// it and the layer tree applies it: checked, with its path normalized.
//
// A layer comes from the internet: its paths are normalized here, once, for
// every reader of entries ("./a//b/" is "a/b"; "." is the root ""), and a
// path that could name anything outside the image root is refused: an
// absolute path, a ".." component, an empty name, a component longer than
// 255 bytes. Hard link targets are normalized the same way.
//
// Thread safety: values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/store/image_manifest.h"
#include "pagerfs/util/error.h"

namespace pagerfs::oci {

enum class EntryKind : uint8_t { file, directory, symlink, hardlink, char_device, block_device, fifo };

struct LayerEntry {
  std::string path;  // normalized; the root is ""
  EntryKind kind = EntryKind::file;
  uint32_t permissions = 0;  // mode & 07777
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint64_t size = 0;            // file: bytes of data
  std::string symlink_target;   // symlink: as written (not normalized: it is never followed)
  std::string hardlink_target;  // hardlink: a normalized path
  uint64_t rdev = 0;            // devices
  std::vector<image::Xattr> xattrs;
};

// `path` made canonical: no leading "./" or "/"-runs, no "." components, no
// trailing "/". errc::invalid_argument ("an absolute path", "a '..'
// component", ...) for a path that is not inside the root.
Result<std::string> normalize_entry_path(std::string_view path);

// Whether the xattr `name` is kept in an image: user.*, trusted.* and
// security.* (not system.*: ACLs, which the mount does not serve; not
// pagerfs' own user.pagerfs.*).
bool keep_xattr(std::string_view name) noexcept;

// "file", "directory", ...: for messages.
const char* kind_name(EntryKind kind) noexcept;

}  // namespace pagerfs::oci
