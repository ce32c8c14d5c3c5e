#include "store/image_manifest_rules.h"

#include <sys/stat.h>

#include <cstdio>

namespace pagerfs::image {

static_assert(kModeTypeMask == S_IFMT && kModeDir == S_IFDIR && kModeReg == S_IFREG &&
              kModeLnk == S_IFLNK && kModeChr == S_IFCHR && kModeBlk == S_IFBLK &&
              kModeFifo == S_IFIFO && kModeSock == S_IFSOCK);

std::string octal(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", v);
  return buf;
}

const char* type_name(EntryType type) noexcept {
  switch (type) {
    case EntryType::directory: return "directory";
    case EntryType::file: return "file";
    case EntryType::symlink: return "symlink";
    case EntryType::hardlink: return "hardlink";
    case EntryType::special: return "special";
  }
  return "unknown";
}

bool is_known_type(uint8_t type) noexcept {
  return type >= 1 && type <= 5;
}

const char* mode_problem(EntryType type, uint32_t mode) noexcept {
  if (type == EntryType::hardlink) {
    return mode == 0 ? nullptr : "a hardlink's mode must be 0 (it has its target's)";
  }
  if ((mode & ~(kModeTypeMask | kModePermMask)) != 0) return "has bits outside S_IFMT|07777";
  const uint32_t bits = mode & kModeTypeMask;
  switch (type) {
    case EntryType::directory: return bits == kModeDir ? nullptr : "type bits are not S_IFDIR";
    case EntryType::file: return bits == kModeReg ? nullptr : "type bits are not S_IFREG";
    case EntryType::symlink: return bits == kModeLnk ? nullptr : "type bits are not S_IFLNK";
    case EntryType::special:
      return bits == kModeChr || bits == kModeBlk || bits == kModeFifo || bits == kModeSock
                 ? nullptr
                 : "type bits are not S_IFCHR, S_IFBLK, S_IFIFO or S_IFSOCK";
    case EntryType::hardlink: break;
  }
  return "unknown type";
}

const char* name_problem(std::string_view name) noexcept {
  if (name.empty()) return "is empty";
  if (name.size() > kMaxNameLength) return "is longer than 255 bytes";
  if (name == "." || name == "..") return "is '.' or '..'";
  if (name.find('/') != std::string_view::npos) return "contains '/'";
  if (name.find('\0') != std::string_view::npos) return "contains NUL";
  return nullptr;
}

const char* symlink_problem(std::string_view target) noexcept {
  if (target.empty()) return "is empty";
  if (target.size() > kMaxSymlinkLength) return "is longer than 4095 bytes";
  if (target.find('\0') != std::string_view::npos) return "contains NUL";
  return nullptr;
}

const char* xattr_problem(std::string_view name, size_t value_size) noexcept {
  if (name.empty()) return "has an empty name";
  if (name.size() > 255) return "has a name longer than 255 bytes";
  if (name.find('\0') != std::string_view::npos) return "has a name containing NUL";
  if (value_size > kMaxXattrValue) return "has a value longer than 65536 bytes";
  return nullptr;
}

}  // namespace pagerfs::image
