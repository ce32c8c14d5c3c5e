#include "util/posix_io.h"

#include <unistd.h>

#include <cerrno>

namespace pagerfs {

Result<size_t> pread_some(int fd, std::span<std::byte> out, uint64_t offset, const std::string& what) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "read " + what);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Result<void> pwrite_all(int fd, std::span<const std::byte> data, uint64_t offset, const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "write " + what);
    }
    done += static_cast<size_t>(n);
  }
  return ok();
}

}  // namespace pagerfs
