#include "pagerfs/oci/layer_entry.h"

namespace pagerfs::oci {

Result<std::string> normalize_entry_path(std::string_view path) {
  if (path.starts_with('/')) return Error(errc::invalid_argument, "an absolute path");
  if (path.find('\0') != std::string_view::npos) return Error(errc::invalid_argument, "a NUL byte in the path");
  std::string out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view component = path.substr(start, end - start);
    start = end + 1;
    if (component.empty() || component == ".") continue;
    if (component == "..") return Error(errc::invalid_argument, "a '..' component");
    if (component.size() > image::kMaxNameLength) {
      return Error(errc::invalid_argument, "a component longer than " + std::to_string(image::kMaxNameLength) +
                                               " bytes");
    }
    if (!out.empty()) out += '/';
    out += component;
  }
  if (out.size() > image::kMaxSymlinkLength) return Error(errc::invalid_argument, "a path longer than 4095 bytes");
  return out;
}

bool keep_xattr(std::string_view name) noexcept {
  if (name.starts_with("user.pagerfs.")) return false;
  return name.starts_with("user.") || name.starts_with("trusted.") || name.starts_with("security.");
}

const char* kind_name(EntryKind kind) noexcept {
  switch (kind) {
    case EntryKind::file: return "file";
    case EntryKind::directory: return "directory";
    case EntryKind::symlink: return "symlink";
    case EntryKind::hardlink: return "hard link";
    case EntryKind::char_device: return "character device";
    case EntryKind::block_device: return "block device";
    case EntryKind::fifo: return "fifo";
  }
  return "entry";
}

}  // namespace pagerfs::oci
