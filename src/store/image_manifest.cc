// The Manifest's lookups over its validated bytes (image_manifest_parse.cc
// checked every offset they follow, so none is checked again), and the
// store's rules for images as a whole: their names and their blobs.
// Encoding is in image_manifest_encode.cc, the byte layout in
// image_manifest_layout.cc, the rules for entries in image_manifest_rules.cc.
#include "pagerfs/store/image_manifest.h"

#include <cassert>

#include "store/image_manifest_layout.h"
#include "store/image_manifest_rules.h"

namespace pagerfs::image {
namespace {

// The string table is recomputed rather than stored: two multiplications.
std::string_view strings_of(const std::vector<std::byte>& bytes, uint32_t entry_count,
                            size_t digest_count) noexcept {
  const uint64_t offset = string_table_offset(entry_count, digest_count);
  return {reinterpret_cast<const char*>(bytes.data()) + offset, bytes.size() - offset};
}

}  // namespace

Entry Manifest::entry(uint32_t index) const noexcept {
  assert(index < entry_count_);
  const StoredEntry e = read_entry(bytes_, index);
  const std::string_view strings = strings_of(bytes_, entry_count_, digests_.size());
  return {.index = index,
          .parent = e.parent,
          .name = strings.substr(e.name_offset, e.name_length),
          .type = static_cast<EntryType>(e.type),
          .mode = e.mode,
          .uid = e.uid,
          .gid = e.gid,
          .mtime_sec = e.mtime_sec,
          .mtime_nsec = e.mtime_nsec,
          .size = e.size,
          .ref = e.ref,
          .xattrs = strings.substr(e.xattrs_offset, e.xattrs_size)};
}

Manifest::Children Manifest::children(uint32_t dir) const noexcept {
  if (dir >= entry_count_) return {};
  return {child_begin_[dir], child_count_[dir]};
}

std::optional<uint32_t> Manifest::find_child(uint32_t dir, std::string_view name) const noexcept {
  const Children c = children(dir);
  const std::string_view strings = strings_of(bytes_, entry_count_, digests_.size());
  uint32_t lo = c.first;
  uint32_t hi = c.first + c.count;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    const StoredEntry e = read_entry(bytes_, mid);
    const int cmp = strings.substr(e.name_offset, e.name_length).compare(name);
    if (cmp == 0) return mid;
    if (cmp < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return std::nullopt;
}

std::optional<uint32_t> Manifest::find(std::string_view path) const noexcept {
  uint32_t at = 0;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    const std::optional<uint32_t> child = find_child(at, path.substr(0, slash));
    if (!child) return std::nullopt;
    at = *child;
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
  }
  return at;
}

uint32_t Manifest::resolve(uint32_t index) const noexcept {
  if (index >= entry_count_) return index;
  const StoredEntry e = read_entry(bytes_, index);
  if (static_cast<EntryType>(e.type) != EntryType::hardlink) return index;
  return static_cast<uint32_t>(e.ref);
}

uint32_t Manifest::nlink(uint32_t index) const noexcept {
  const uint32_t target = resolve(index);
  return target < entry_count_ ? nlink_[target] : 0;
}

std::vector<Xattr> Manifest::xattrs(const Entry& entry) const {
  std::vector<Xattr> out;
  for (std::string_view rest = entry.xattrs; !rest.empty();) {
    const XattrRecord r = read_xattr_record(rest).record;
    out.push_back({std::string(r.name), std::string(r.value)});
    rest.remove_prefix(r.length);
  }
  return out;
}

std::optional<std::string_view> Manifest::xattr(const Entry& entry, std::string_view name) const {
  for (std::string_view rest = entry.xattrs; !rest.empty();) {
    const XattrRecord r = read_xattr_record(rest).record;
    if (r.name == name) return r.value;
    if (r.name > name) break;  // sorted
    rest.remove_prefix(r.length);
  }
  return std::nullopt;
}

std::string Manifest::path(uint32_t index) const {
  if (index >= entry_count_) return {};
  // Parents are earlier entries, so this walk ends at the root. Only names
  // and parents are read: parse() names an entry in its messages as soon as
  // those two are checked, before the rest of it is.
  const std::string_view strings = strings_of(bytes_, entry_count_, digests_.size());
  std::vector<std::string_view> names;
  size_t length = 0;
  for (uint32_t i = index; i != 0;) {
    const StoredEntry e = read_entry(bytes_, i);
    const std::string_view name = strings.substr(e.name_offset, e.name_length);
    names.push_back(name);
    length += name.size() + 1;
    i = e.parent;
  }
  std::string out;
  out.reserve(length);
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    if (!out.empty()) out += '/';
    out += *it;
  }
  return out;
}

std::string_view Manifest::symlink_target(const Entry& symlink) const noexcept {
  if (symlink.type != EntryType::symlink) return {};
  return strings_of(bytes_, entry_count_, digests_.size()).substr(symlink.ref, symlink.size);
}

Result<void> validate_image_name(std::string_view name) {
  auto bad = [&](const std::string& why) {
    return Error(errc::invalid_argument, "image name " + quote(name) + " " + why);
  };
  if (name.empty()) return bad("is empty");
  if (name.size() > kMaxImageName) return bad("is longer than 255 bytes");
  if (name.front() == '.') return bad("starts with '.'");
  for (const char c : name) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!allowed) return bad("has a character other than A-Z, a-z, 0-9, '.', '_' and '-'");
  }
  return ok();
}

Result<void> require_blobs(std::string_view name, const Manifest& manifest,
                           const std::function<bool(const Digest&)>& present) {
  for (const Digest& digest : manifest.digests()) {
    if (present(digest)) continue;
    std::string path;  // the first file that names it: every digest has one
    for (uint32_t i = 0; i < manifest.size() && path.empty(); ++i) {
      const Entry e = manifest.entry(i);
      if (e.type == EntryType::file && manifest.digest_of(e) == digest) path = manifest.path(i);
    }
    return Error(std::make_error_code(std::errc::no_such_file_or_directory),
                 "image '" + std::string(name) + "': '" + path + "': blob " + digest.str() +
                     " is missing from the store");
  }
  return ok();
}

}  // namespace pagerfs::image
