// Extended attributes: an image entry's own (recorded in its manifest), and
// pagerfs's: a blob's digest, chunk size and stored size, the mount's control
// socket on the root.
//
// An image's own trusted.overlay.* and user.overlay.* attributes are never
// shown: overlayfs reads those names on its lower layers as instructions
// (opaque directory, whiteout, redirect, metacopy, origin; user.overlay.*
// with -o userxattr), and an image used as a lower layer is a finished tree
// whose layers were applied when it was made. Such attributes could only be
// stale (packed from an overlay's upper directory) or planted to make an
// overlay over the image hide or redirect what the image holds.
#include <cerrno>
#include <string>
#include <string_view>

#include "fuse/filesystem.h"

namespace pagerfs {
namespace {

constexpr const char* kXattrDigest = "user.pagerfs.digest";
constexpr const char* kXattrChunkSize = "user.pagerfs.chunk_size";
constexpr const char* kXattrStoredSize = "user.pagerfs.stored_size";
constexpr const char* kXattrControl = "user.pagerfs.control";

// Replies with an xattr value, or its size when size == 0 (the protocol).
void reply_xattr(fuse_req_t req, const std::string& value, size_t size) {
  if (size == 0) {
    fuse_reply_xattr(req, value.size());
  } else if (size < value.size()) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, value.data(), value.size());
  }
}


// Whether `name` is one of overlayfs's own attributes (see above).
bool overlay_attribute(std::string_view name) {
  return name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.");
}

}  // namespace

void Filesystem::getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  const std::string key = name;
  if (ino == MountView::kRoot && key == kXattrControl) return reply_xattr(req, control_path_, size);
  const auto found = view_.node(ino);
  if (!found && found.error().code() != std::errc::no_such_file_or_directory) {
    fuse_reply_err(req, to_errno(found.error()));
    return;
  }
  if (!found || found.value().kind == MountView::Node::Kind::fixed_dir || overlay_attribute(key)) {
    fuse_reply_err(req, ENODATA);
    return;
  }
  const MountView::Node* node = &found.value();
  if (node->kind != MountView::Node::Kind::blob) {
    const image::Manifest& m = node->image->manifest;
    const auto entry = m.entry(node->entry);  // node() resolved hard links
    if (!entry) {
      fuse_reply_err(req, to_errno(entry.error()));
      return;
    }
    if (auto value = m.xattr(entry.value(), key)) {
      return reply_xattr(req, std::string(*value), size);
    }
    if (node->kind == MountView::Node::Kind::image_file && key == kXattrDigest) {
      return reply_xattr(req, node->digest.str(), size);
    }
    fuse_reply_err(req, ENODATA);
    return;
  }
  if (key == kXattrDigest) return reply_xattr(req, node->digest.str(), size);
  if ((key == kXattrChunkSize || key == kXattrStoredSize) && !node->content) {
    auto info = blob_info(node->digest);
    if (!info) {
      fuse_reply_err(req, to_errno(info.error()));
      return;
    }
    const uint64_t v = key == kXattrChunkSize ? info.value().chunk_size : info.value().stored_size;
    return reply_xattr(req, std::to_string(v), size);
  }
  fuse_reply_err(req, ENODATA);
}

void Filesystem::listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  std::string names;
  const auto found = view_.node(ino);
  if (!found && found.error().code() != std::errc::no_such_file_or_directory) {
    fuse_reply_err(req, to_errno(found.error()));
    return;
  }
  const MountView::Node* node = found ? &found.value() : nullptr;
  if (ino == MountView::kRoot) names = std::string(kXattrControl) + '\0';
  if (node && node->kind == MountView::Node::Kind::blob) {
    names = std::string(kXattrDigest) + '\0';
    if (!node->content) names += std::string(kXattrChunkSize) + '\0' + kXattrStoredSize + '\0';
  }
  if (node && node->image) {
    const image::Manifest& m = node->image->manifest;
    const auto entry = m.entry(node->entry);
    if (!entry) {
      fuse_reply_err(req, to_errno(entry.error()));
      return;
    }
    for (const image::Xattr& x : m.xattrs(entry.value())) {
      if (!overlay_attribute(x.name)) names += x.name + '\0';
    }
    if (node->kind == MountView::Node::Kind::image_file) names += std::string(kXattrDigest) + '\0';
  }
  reply_xattr(req, names, size);
}

}  // namespace pagerfs
