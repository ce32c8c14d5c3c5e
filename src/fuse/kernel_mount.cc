#include "fuse/kernel_mount.h"

#include <poll.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

extern char** environ;

namespace pagerfs {

std::string escape_option(const std::string& value) {
  std::string out;
  for (char ch : value) {
    if (ch == ',' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}

void lazy_unmount(const std::string& mountpoint, spdlog::logger& log) {
  if (::umount2(mountpoint.c_str(), MNT_DETACH) == 0) return;
  // Not root: fusermount3 does it for the user who mounted.
  const char* argv[] = {"fusermount3", "-u", "-z", "-q", mountpoint.c_str(), nullptr};
  pid_t pid = 0;
  if (::posix_spawnp(&pid, "fusermount3", nullptr, nullptr, const_cast<char**>(argv), environ) == 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  }
  log.error("could not unmount {}", mountpoint);
}

dev_t set_bdi_readahead(const std::string& mountpoint, uint64_t readahead, spdlog::logger& log) {
  struct stat st {};
  if (::stat(mountpoint.c_str(), &st) != 0) return 0;
  const std::string path = "/sys/class/bdi/" + std::to_string(major(st.st_dev)) + ":" +
                           std::to_string(minor(st.st_dev)) + "/read_ahead_kb";
  std::ofstream out(path);
  out << readahead / 1024;
  out.flush();
  if (out) {
    log.debug("{} = {}", path, readahead / 1024);
  } else if (::geteuid() == 0) {
    log.warn("could not set {}", path);
  }
  return st.st_dev;
}

bool connection_alive(fuse_session* se) {
  pollfd p{fuse_session_fd(se), POLLIN, 0};
  return ::poll(&p, 1, 0) >= 0 && (p.revents & (POLLERR | POLLNVAL)) == 0;
}

bool abort_connection(dev_t dev, spdlog::logger& log) {
  if (dev == 0) return false;
  std::ofstream abort("/sys/fs/fuse/connections/" + std::to_string(minor(dev)) + "/abort");
  abort << "1";
  abort.flush();
  if (!abort) log.warn("could not abort the FUSE connection");
  return static_cast<bool>(abort);
}

}  // namespace pagerfs
