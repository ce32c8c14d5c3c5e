#include "store/tree_scan.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <map>
#include <memory>
#include <utility>

namespace pagerfs {
namespace {

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Calls `get(buffer, size)` (an l*xattr function) with a growing buffer until
// the value fits: the value may grow between the size query and the read.
template <class Get>
Result<std::string> read_sized(const std::string& what, Get get) {
  std::string buffer;
  for (int attempt = 0; attempt < 8; ++attempt) {
    const ssize_t size = get(nullptr, 0);
    if (size < 0) return Error::from_errno(errno, what);
    buffer.resize(static_cast<size_t>(size));
    const ssize_t n = get(buffer.data(), buffer.size());
    if (n >= 0) {
      buffer.resize(static_cast<size_t>(n));
      return buffer;
    }
    if (errno != ERANGE) return Error::from_errno(errno, what);
  }
  return Error::from_errno(ERANGE, what);
}

Result<std::vector<image::Xattr>> read_xattrs(const std::string& path) {
  auto names = read_sized("list xattrs of " + quoted(path), [&](char* buf, size_t size) {
    return ::llistxattr(path.c_str(), buf, size);
  });
  if (!names) {
    // A file system without xattrs has none to record.
    if (names.error().code() == std::errc::operation_not_supported) return std::vector<image::Xattr>{};
    return names.error();
  }
  std::vector<image::Xattr> out;
  const std::string& list = names.value();
  for (size_t pos = 0; pos < list.size();) {
    const size_t end = list.find('\0', pos);
    std::string name = list.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? list.size() : end + 1;
    // ACLs are the kernel's business (the modes are recorded); pagerfs' own
    // attributes (a tree copied from a mount) are derived, not content.
    if (name.empty() || name.starts_with("system.") || name.starts_with("user.pagerfs.")) continue;
    auto value = read_sized("read xattr " + name + " of " + quoted(path), [&](char* buf, size_t size) {
      return ::lgetxattr(path.c_str(), name.c_str(), buf, size);
    });
    if (!value) {
      if (value.error().code() == std::errc::no_message_available) continue;  // removed meanwhile
      return value.error();
    }
    out.push_back({std::move(name), std::move(value).value()});
  }
  return out;
}

image::EntrySpec describe(const std::string& rel, const struct stat& st) {
  image::EntrySpec e;
  e.path = rel;
  e.mode = st.st_mode;
  e.uid = st.st_uid;
  e.gid = st.st_gid;
  e.mtime_sec = st.st_mtim.tv_sec;
  e.mtime_nsec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  if (S_ISDIR(st.st_mode)) {
    e.type = image::EntryType::directory;
    e.size = static_cast<uint64_t>(st.st_size);  // shown as is: find -printf %s compares equal
  } else if (S_ISREG(st.st_mode)) {
    e.type = image::EntryType::file;
    e.size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISLNK(st.st_mode)) {
    e.type = image::EntryType::symlink;
  } else {
    e.type = image::EntryType::special;
    e.rdev = st.st_rdev;
  }
  return e;
}

}  // namespace

Result<TreeScan> scan_tree(const std::string& root) {
  struct stat root_st {};
  if (::lstat(root.c_str(), &root_st) != 0) return Error::from_errno(errno, quoted(root));
  if (!S_ISDIR(root_st.st_mode)) return Error::from_errno(ENOTDIR, quoted(root));

  TreeScan scan;
  // The first path seen for each (device, inode) with several links.
  std::map<std::pair<dev_t, ino_t>, std::string> linked;
  std::deque<std::string> dirs{""};  // relative paths still to list
  auto source_of = [&](const std::string& rel) { return rel.empty() ? root : root + "/" + rel; };

  scan.entries.push_back(describe("", root_st));
  PAGERFS_TRY(root_xattrs, read_xattrs(root));
  scan.entries.back().xattrs = std::move(root_xattrs);

  while (!dirs.empty()) {
    const std::string dir_rel = std::move(dirs.front());
    dirs.pop_front();
    const std::string dir_path = source_of(dir_rel);
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir_path.c_str()), ::closedir);
    if (!d) return Error::from_errno(errno, "open directory " + quoted(dir_path));
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* de = ::readdir(d.get())) {
      const std::string_view name = de->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
      errno = 0;
    }
    if (errno != 0) return Error::from_errno(errno, "read directory " + quoted(dir_path));
    d.reset();

    for (const std::string& name : names) {
      const std::string rel = dir_rel.empty() ? name : dir_rel + "/" + name;
      const std::string path = source_of(rel);
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0) return Error::from_errno(errno, quoted(path));
      if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
        auto [it, first] = linked.try_emplace({st.st_dev, st.st_ino}, rel);
        if (!first) {
          image::EntrySpec link;
          link.path = rel;
          link.type = image::EntryType::hardlink;
          link.hardlink_target = it->second;
          scan.entries.push_back(std::move(link));
          continue;
        }
      }
      image::EntrySpec e = describe(rel, st);
      PAGERFS_TRY(xattrs, read_xattrs(path));
      e.xattrs = std::move(xattrs);
      if (e.type == image::EntryType::symlink) {
        auto target = read_sized("read link " + quoted(path), [&](char* buf, size_t size) -> ssize_t {
          // readlink has no size query: ask for one byte more than fits.
          if (buf == nullptr) return static_cast<ssize_t>(st.st_size > 0 ? st.st_size + 1 : 4096);
          const ssize_t n = ::readlink(path.c_str(), buf, size);
          if (n >= 0 && static_cast<size_t>(n) == size) {
            errno = ERANGE;  // possibly truncated: the link changed
            return -1;
          }
          return n;
        });
        if (!target) return target.error();
        e.symlink_target = std::move(target).value();
      }
      if (e.type == image::EntryType::directory) dirs.push_back(rel);
      if (e.type == image::EntryType::file) scan.files.push_back({scan.entries.size(), path, e.size});
      scan.entries.push_back(std::move(e));
    }
  }
  return scan;
}

}  // namespace pagerfs
