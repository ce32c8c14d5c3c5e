#include "fuse/kernel_mount.h"

#include <poll.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <optional>

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

namespace {

// Undoes the octal escapes of a mountinfo path (proc(5): space, tab,
// newline and backslash are written \ooo).
std::string unescape_mount_path(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const auto octal = [](char ch) { return ch >= '0' && ch <= '7'; };
      if (octal(field[i + 1]) && octal(field[i + 2]) && octal(field[i + 3])) {
        out += static_cast<char>(((field[i + 1] - '0') << 6) | ((field[i + 2] - '0') << 3) | (field[i + 3] - '0'));
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

}  // namespace

namespace {

struct MountLine {
  dev_t dev = 0;
  std::string type;
};

// The newest line of `mountinfo` mounted at `mountpoint`.
std::optional<MountLine> find_mount(std::string_view mountinfo, std::string_view mountpoint) {
  // Each line: ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS ... - TYPE SOURCE SUPER
  std::optional<MountLine> found;
  while (!mountinfo.empty()) {
    const size_t eol = mountinfo.find('\n');
    std::string_view line = mountinfo.substr(0, eol);
    mountinfo = eol == std::string_view::npos ? std::string_view{} : mountinfo.substr(eol + 1);
    std::string_view fields[5];
    size_t n = 0;
    std::string_view rest = line;
    while (n < 5 && !rest.empty()) {
      const size_t sp = rest.find(' ');
      fields[n++] = rest.substr(0, sp);
      rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
    }
    if (n < 5 || unescape_mount_path(fields[4]) != mountpoint) continue;
    const std::string_view numbers = fields[2];
    const size_t colon = numbers.find(':');
    if (colon == std::string_view::npos) continue;
    unsigned maj = 0, min = 0;
    const auto parse = [](std::string_view s, unsigned& v) {
      if (s.empty() || s.size() > 9) return false;
      v = 0;
      for (char ch : s) {
        if (ch < '0' || ch > '9') return false;
        v = v * 10 + static_cast<unsigned>(ch - '0');
      }
      return true;
    };
    if (!parse(numbers.substr(0, colon), maj) || !parse(numbers.substr(colon + 1), min)) continue;
    MountLine mount{makedev(maj, min), {}};
    if (const size_t dash = rest.find(" - "); dash != std::string_view::npos) {
      const std::string_view after = rest.substr(dash + 3);
      mount.type = std::string(after.substr(0, after.find(' ')));
    }
    found = std::move(mount);  // later lines are newer mounts on top
  }
  return found;
}

std::string read_mountinfo() {
  std::ifstream in("/proc/self/mountinfo");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

dev_t mount_device_from_mountinfo(std::string_view mountinfo, std::string_view mountpoint) {
  const auto mount = find_mount(mountinfo, mountpoint);
  return mount ? mount->dev : 0;
}

std::string mount_type_from_mountinfo(std::string_view mountinfo, std::string_view mountpoint) {
  const auto mount = find_mount(mountinfo, mountpoint);
  return mount ? mount->type : std::string();
}

Result<void> clean_dead_mount(const std::string& mountpoint, spdlog::logger& log) {
  const std::string type = mount_type_from_mountinfo(read_mountinfo(), mountpoint);
  if (!type.starts_with("fuse")) return ok();
  // A stat may be answered from the kernel's cache; a statfs always asks
  // the daemon, and a dead connection answers ENOTCONN at once.
  struct statfs fs {};
  if (::statfs(mountpoint.c_str(), &fs) == 0 || (errno != ENOTCONN && errno != ECONNABORTED)) return ok();
  if (type != "fuse.pagerfs") {
    return Error(std::make_error_code(std::errc::not_connected),
                 "mount point '" + mountpoint + "' is a dead mount of " + type +
                     " (Transport endpoint is not connected): unmount it first (fusermount3 -u -z)");
  }
  log.warn("{}: the pagerfs mount there is dead (its daemon is gone): unmounting it", mountpoint);
  lazy_unmount(mountpoint, log);
  struct stat st {};
  if (::stat(mountpoint.c_str(), &st) != 0) {
    return Error::from_errno(errno, "mount point '" + mountpoint + "', after unmounting the dead mount");
  }
  if (!S_ISDIR(st.st_mode)) return Error::from_errno(ENOTDIR, "mount point '" + mountpoint + "'");
  return ok();
}

dev_t set_bdi_readahead(const std::string& mountpoint, uint64_t readahead, spdlog::logger& log) {
  const dev_t dev = mount_device_from_mountinfo(read_mountinfo(), mountpoint);
  if (dev == 0) return 0;
  const std::string path = "/sys/class/bdi/" + std::to_string(major(dev)) + ":" +
                           std::to_string(minor(dev)) + "/read_ahead_kb";
  std::ofstream out(path);
  out << readahead / 1024;
  out.flush();
  if (out) {
    log.debug("{} = {}", path, readahead / 1024);
  } else if (::geteuid() == 0) {
    log.warn("could not set {}", path);
  }
  return dev;
}

bool connection_alive(fuse_session* se) { return connection_alive(fuse_session_fd(se)); }

bool connection_alive(int fuse_fd) {
  pollfd p{fuse_fd, POLLIN, 0};
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
