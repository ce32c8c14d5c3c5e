// Writing OCI layer tars in tests, with libarchive's writer: any entry a
// layer may hold (and several it may not), plain, gzip or zstd.
//
// Thread safety: values and stateless functions.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pagerfs::testing {

struct TarEntry {
  std::string path;
  unsigned type = AE_IFREG;  // AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFIFO, AE_IFCHR; or a hard link when `hardlink` is set
  unsigned perm = 0644;
  int64_t uid = 0, gid = 0;
  int64_t mtime_sec = 1700000000;
  long mtime_nsec = 0;
  std::string data{};      // regular file
  std::string symlink{};   // symlink target
  std::string hardlink{};  // hard link target
  std::vector<std::pair<std::string, std::string>> xattrs{};
};

enum class TarCompression { none, gzip, zstd };

inline std::vector<std::byte> make_layer_tar(const std::vector<TarEntry>& entries,
                                             TarCompression compression = TarCompression::none) {
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (compression == TarCompression::gzip) archive_write_add_filter_gzip(a);
  if (compression == TarCompression::zstd) archive_write_add_filter_zstd(a);
  std::vector<std::byte> out(64u << 20);
  size_t used = 0;
  if (archive_write_open_memory(a, out.data(), out.size(), &used) != ARCHIVE_OK) {
    throw std::runtime_error(archive_error_string(a));
  }
  for (const TarEntry& t : entries) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, t.path.c_str());
    if (!t.hardlink.empty()) {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_hardlink(e, t.hardlink.c_str());
    } else {
      archive_entry_set_filetype(e, t.type);
    }
    archive_entry_set_perm(e, t.perm);
    archive_entry_set_uid(e, t.uid);
    archive_entry_set_gid(e, t.gid);
    archive_entry_set_mtime(e, t.mtime_sec, t.mtime_nsec);
    if (t.type == AE_IFLNK) archive_entry_set_symlink(e, t.symlink.c_str());
    if (t.type == AE_IFREG && t.hardlink.empty()) archive_entry_set_size(e, static_cast<la_int64_t>(t.data.size()));
    for (const auto& [name, value] : t.xattrs) archive_entry_xattr_add_entry(e, name.c_str(), value.data(), value.size());
    if (archive_write_header(a, e) != ARCHIVE_OK) throw std::runtime_error(archive_error_string(a));
    if (!t.data.empty()) archive_write_data(a, t.data.data(), t.data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  out.resize(used);
  return out;
}

}  // namespace pagerfs::testing
