#include "util/safe_open.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "util/quoted.h"

namespace pagerfs {
namespace {


Error not_regular(const std::string& path, mode_t mode) {
  return Error(errc::not_a_regular_file,
               quoted(path) + " is not a regular file (" + file_type_name(mode) + ")");
}

Error not_directory(const std::string& path, mode_t mode) {
  return Error(std::error_code(ENOTDIR, std::system_category()),
               quoted(path) + " is not a directory (" + file_type_name(mode) + ")");
}

// The errno values open() gives for something that is not what was asked
// for: ELOOP (a symbolic link under O_NOFOLLOW), ENXIO (a socket, a FIFO
// opened for writing with no reader, a device without a driver), ENODEV,
// EISDIR (a directory opened for writing), ENOTDIR (O_DIRECTORY on a file).
bool may_be_wrong_type(int err) noexcept {
  return err == ELOOP || err == ENXIO || err == ENODEV || err == EISDIR || err == ENOTDIR ||
         err == EWOULDBLOCK;
}

}  // namespace

const char* file_type_name(mode_t mode) noexcept {
  switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFLNK: return "a symbolic link";
    case S_IFIFO: return "a FIFO";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
  }
  return "of an unknown type";
}

Result<UniqueFd> open_regular_file(const std::string& path, int flags, mode_t mode, Symlinks symlinks) {
  const bool truncate = (flags & O_TRUNC) != 0;
  int open_flags = (flags & ~O_TRUNC) | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  if (symlinks == Symlinks::refuse) open_flags |= O_NOFOLLOW;
  UniqueFd fd(::open(path.c_str(), open_flags, mode));
  if (!fd) {
    const int err = errno;
    struct stat st {};
    if (may_be_wrong_type(err)) {
      const int rc = symlinks == Symlinks::refuse ? ::lstat(path.c_str(), &st) : ::stat(path.c_str(), &st);
      if (rc == 0 && !S_ISREG(st.st_mode)) return not_regular(path, st.st_mode);
    }
    return Error::from_errno(err, "open " + quoted(path));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno(errno, "stat " + quoted(path));
  if (!S_ISREG(st.st_mode)) return not_regular(path, st.st_mode);
  // Linux ignores O_NONBLOCK on regular files, but the descriptor may be
  // shared with code (or other systems) that expects ordinary semantics.
  const int fl = ::fcntl(fd.get(), F_GETFL);
  if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK) != 0) {
    return Error::from_errno(errno, "fcntl " + quoted(path));
  }
  if (truncate && st.st_size != 0 && ::ftruncate(fd.get(), 0) != 0) {
    return Error::from_errno(errno, "truncate " + quoted(path));
  }
  return fd;
}

Result<UniqueFd> open_directory(const std::string& path, Symlinks symlinks) {
  int flags = O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  if (symlinks == Symlinks::refuse) flags |= O_NOFOLLOW;
  UniqueFd fd(::open(path.c_str(), flags));
  if (!fd) {
    const int err = errno;
    struct stat st {};
    if (may_be_wrong_type(err)) {
      const int rc = symlinks == Symlinks::refuse ? ::lstat(path.c_str(), &st) : ::stat(path.c_str(), &st);
      if (rc == 0 && !S_ISDIR(st.st_mode)) return not_directory(path, st.st_mode);
    }
    return Error::from_errno(err, "open " + quoted(path));
  }
  return fd;
}

}  // namespace pagerfs
