// Reading a file of a mount the ways a reader does, for tests that compare
// every byte with the source: read() to the end (keeping the errno of a
// failure: EIO is an answer, not a test error) and through a mapping.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace pagerfs::testing {

// The file's bytes by read(), or the errno of the first failure.
struct ReadResult {
  std::string data;
  int error = 0;
};
inline ReadResult read_all(const std::string& path) {
  ReadResult r;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {"", errno};
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      r.error = errno;
      break;
    }
    if (n == 0) break;
    r.data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return r;
}

// The file's bytes through a private mapping ("open failed" if it cannot be
// opened). A fault that fails is SIGBUS: map only what reads succeed on.
inline std::string read_mapped(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "open failed";
  struct stat st {};
  ::fstat(fd, &st);
  std::string out;
  if (st.st_size > 0) {
    void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      out.assign(static_cast<const char*>(p), static_cast<size_t>(st.st_size));
      ::munmap(p, static_cast<size_t>(st.st_size));
    }
  }
  ::close(fd);
  return out;
}

}  // namespace pagerfs::testing
