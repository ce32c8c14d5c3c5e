#include "store/tree_scan.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <system_error>
#include <utility>

#include "util/directory.h"
#include "util/quoted.h"
#include "util/safe_open.h"

namespace pagerfs {
namespace {


// An entry that is no longer what the scan saw. ESTALE: the name now refers
// to something else.
Error changed(const std::string& path, const std::string& how) {
  return Error(std::error_code(ESTALE, std::generic_category()),
               quoted(path) + " changed during pack: " + how);
}

bool same_file(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Calls `get(buffer, size)` (an *xattr function) with a growing buffer until
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

// Reads the recorded xattrs through `list(buf, size)` and `get(name, buf,
// size)`: f*xattr on an fd, or l*xattr on a path. `path` is for messages.
template <class List, class Get>
Result<std::vector<image::Xattr>> read_xattrs(const std::string& path, List list, Get get) {
  auto names = read_sized("list xattrs of " + quoted(path), list);
  if (!names) {
    // A file system without xattrs has none to record.
    if (names.error().code() == std::errc::operation_not_supported) return std::vector<image::Xattr>{};
    return names.error();
  }
  std::vector<image::Xattr> out;
  const std::string& all = names.value();
  for (size_t pos = 0; pos < all.size();) {
    const size_t end = all.find('\0', pos);
    std::string name = all.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? all.size() : end + 1;
    // ACLs are the kernel's business (the modes are recorded); pagerfs' own
    // attributes (a tree copied from a mount) are derived, not content.
    if (name.empty() || name.starts_with("system.") || name.starts_with("user.pagerfs.")) continue;
    auto value = read_sized("read xattr " + name + " of " + quoted(path),
                            [&](char* buf, size_t size) { return get(name.c_str(), buf, size); });
    if (!value) {
      if (value.error().code() == std::errc::no_message_available) continue;  // removed meanwhile
      return value.error();
    }
    out.push_back({std::move(name), std::move(value).value()});
  }
  return out;
}

// The xattrs of `name` in the directory `dirfd`, without opening it (a
// symlink, a FIFO or a device: opening a device can have side effects).
// Through /proc/self/fd the directory is the one the fd holds, whatever was
// renamed since; without /proc, by the full path.
Result<std::vector<image::Xattr>> read_entry_xattrs(int dirfd, const std::string& name,
                                                    const std::string& path, bool have_proc) {
  const std::string at = have_proc ? "/proc/self/fd/" + std::to_string(dirfd) + "/" + name : path;
  return read_xattrs(
      path, [&](char* buf, size_t size) { return ::llistxattr(at.c_str(), buf, size); },
      [&](const char* n, char* buf, size_t size) { return ::lgetxattr(at.c_str(), n, buf, size); });
}

// Opens the directory `name` of `dirfd` (or the path `name` with AT_FDCWD)
// and checks it is the one `seen` describes (what its parent listed).
Result<UniqueFd> open_directory(int dirfd, const std::string& name, const struct stat& seen,
                                const std::string& path) {
  UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    if (errno == ELOOP || errno == ENOTDIR) return changed(path, "it is no longer a directory");
    if (errno == ENOENT) return changed(path, "it was removed");
    return Error::from_errno(errno, "open directory " + quoted(path));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno(errno, "stat " + quoted(path));
  if (!same_file(st, seen)) return changed(path, "it was replaced by another directory");
  return fd;
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

Result<std::vector<image::Xattr>> read_fd_xattrs(int fd, const std::string& path) {
  return read_xattrs(
      path, [&](char* buf, size_t size) { return ::flistxattr(fd, buf, size); },
      [&](const char* n, char* buf, size_t size) { return ::fgetxattr(fd, n, buf, size); });
}

Result<TreeScan> scan_tree(const std::string& root) {
  struct stat root_st {};
  if (::lstat(root.c_str(), &root_st) != 0) return Error::from_errno(errno, quoted(root));
  if (!S_ISDIR(root_st.st_mode)) return Error::from_errno(ENOTDIR, quoted(root));

  TreeScan scan;
  scan.root = root;
  PAGERFS_TRY(root_fd, open_directory(AT_FDCWD, root, root_st, root));
  scan.root_fd = std::move(root_fd);
  const bool have_proc = ::access("/proc/self/fd", X_OK) == 0;
  auto source_of = [&](const std::string& rel) { return rel.empty() ? root : root + "/" + rel; };

  scan.entries.push_back(describe("", root_st));
  PAGERFS_TRY(root_xattrs, read_fd_xattrs(scan.root_fd.get(), root));
  scan.entries.back().xattrs = std::move(root_xattrs);

  // Depth first, holding one directory fd at a time (however deep the tree):
  // `dir` is the directory of the innermost frame. A frame is entered by
  // openat(parent, name) and left by openat(child, ".."); both are checked
  // against the (device, inode) recorded, so a directory moved or replaced
  // meanwhile stops the scan instead of listing another one.
  struct Frame {
    std::string rel;
    struct stat st;
    std::vector<std::string> names;
    size_t next = 0;
  };
  std::vector<Frame> stack;
  // The first path seen for each (device, inode) with several links.
  std::map<std::pair<dev_t, ino_t>, std::string> linked;
  UniqueFd dir(::fcntl(scan.root_fd.get(), F_DUPFD_CLOEXEC, 0));
  if (!dir) return Error::from_errno(errno, "open directory " + quoted(root));
  PAGERFS_TRY(root_names, list_entry_names(dir.get(), root));
  stack.push_back({"", root_st, std::move(root_names)});

  while (!stack.empty()) {
    if (stack.back().next == stack.back().names.size()) {
      stack.pop_back();
      if (stack.empty()) break;
      PAGERFS_TRY(up, open_directory(dir.get(), "..", stack.back().st, source_of(stack.back().rel)));
      dir = std::move(up);
      continue;
    }
    Frame& frame = stack.back();
    const std::string name = frame.names[frame.next++];
    const std::string rel = frame.rel.empty() ? name : frame.rel + "/" + name;
    const std::string path = source_of(rel);
    struct stat st {};
    if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return changed(path, "it was removed");
      return Error::from_errno(errno, quoted(path));
    }
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
    switch (e.type) {
      case image::EntryType::directory: {
        PAGERFS_TRY(child, open_directory(dir.get(), name, st, path));
        PAGERFS_TRY(xattrs, read_fd_xattrs(child.get(), path));
        e.xattrs = std::move(xattrs);
        PAGERFS_TRY(names, list_entry_names(child.get(), path));
        scan.entries.push_back(std::move(e));
        stack.push_back({rel, st, std::move(names)});  // invalidates `frame`
        dir = std::move(child);
        continue;
      }
      case image::EntryType::file:
        // Its xattrs are read when it is packed, from the fd its content is
        // read from (see open_scanned_file).
        scan.files.push_back({scan.entries.size(), rel, path, e.size, st.st_dev, st.st_ino});
        break;
      case image::EntryType::symlink: {
        PAGERFS_TRY(xattrs, read_entry_xattrs(dir.get(), name, path, have_proc));
        e.xattrs = std::move(xattrs);
        auto target = read_sized("read link " + quoted(path), [&](char* buf, size_t size) -> ssize_t {
          // readlink has no size query: ask for one byte more than fits.
          if (buf == nullptr) return static_cast<ssize_t>(st.st_size > 0 ? st.st_size + 1 : 4096);
          const ssize_t n = ::readlinkat(dir.get(), name.c_str(), buf, size);
          if (n >= 0 && static_cast<size_t>(n) == size) {
            errno = ERANGE;  // possibly truncated: the link changed
            return -1;
          }
          return n;
        });
        if (!target) {
          if (target.error().code() == std::errc::invalid_argument) return changed(path, "it is no longer a symlink");
          return target.error();
        }
        e.symlink_target = std::move(target).value();
        break;
      }
      default: {
        PAGERFS_TRY(xattrs, read_entry_xattrs(dir.get(), name, path, have_proc));
        e.xattrs = std::move(xattrs);
        break;
      }
    }
    scan.entries.push_back(std::move(e));
  }
  return scan;
}

Result<UniqueFd> open_scanned_file(const TreeScan& scan, const TreeScan::File& file) {
  // O_NONBLOCK: a FIFO put in the file's place must not block the open (it is
  // refused below); O_NOCTTY: nor may a terminal become ours.
  constexpr int kFlags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  // openat2 refuses a symlink anywhere in the path (a directory swapped for a
  // symlink), before anything outside the tree is opened; where the kernel
  // lacks it, openat still refuses a symlink as the last component, and the
  // inode check below refuses anything else.
  open_how how{};
  how.flags = kFlags;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH;
  int raw = static_cast<int>(::syscall(SYS_openat2, scan.root_fd.get(), file.rel.c_str(), &how, sizeof how));
  if (raw < 0 && (errno == ENOSYS || errno == EPERM)) raw = ::openat(scan.root_fd.get(), file.rel.c_str(), kFlags);
  UniqueFd fd(raw);
  if (!fd) {
    if (errno == ELOOP) return changed(file.source, "it or a directory above it is now a symlink");
    if (errno == ENOENT || errno == ENOTDIR) return changed(file.source, "it was removed");
    if (errno == EXDEV) return changed(file.source, "a directory above it was moved");
    return Error::from_errno(errno, "open " + quoted(file.source));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno(errno, "stat " + quoted(file.source));
  if (!S_ISREG(st.st_mode)) return changed(file.source, std::string("it is now ") + file_type_name(st.st_mode));
  if (st.st_dev != file.dev || st.st_ino != file.ino) return changed(file.source, "it was replaced by another file");
  // O_NONBLOCK has done its job; reads of a regular file should block as usual.
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return Error::from_errno(errno, "open " + quoted(file.source));
  }
  return fd;
}

}  // namespace pagerfs
