#include <sys/socket.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "pagerfs/control.h"
#include "pagerfs/units.h"
#include "util/unique_fd.h"

namespace pagerfs::control {

std::string default_socket_path(const std::string& mountpoint) {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  std::string dir = (runtime && *runtime && ::geteuid() != 0) ? runtime : "/run";
  std::string name = mountpoint;
  for (char& c : name) {
    if (c == '/') c = '-';
  }
  if (name.empty() || name == "-") name = "-root";
  return dir + "/pagerfs/" + name + ".sock";
}

Result<std::string> socket_for_mount(const std::string& mountpoint) {
  char value[PATH_MAX];
  const ssize_t n = ::getxattr(mountpoint.c_str(), "user.pagerfs.control", value, sizeof value);
  if (n > 0) return std::string(value, static_cast<size_t>(n));
  if (errno == ENOTCONN) return Error::from_errno(errno, "'" + mountpoint + "'");
  char resolved[PATH_MAX];
  if (::realpath(mountpoint.c_str(), resolved) == nullptr) {
    return Error::from_errno(errno, "'" + mountpoint + "'");
  }
  return Error(errc::invalid_argument, "'" + mountpoint + "' is not a pagerfs mount");
}

PrewarmItem parse_prewarm_item(std::string_view item) {
  PrewarmItem out;
  out.path = item;
  const size_t second = item.rfind(':');
  if (second == std::string_view::npos || second == 0) return out;
  const size_t first = item.rfind(':', second - 1);
  if (first == std::string_view::npos || first == 0) return out;  // a path is never empty
  auto offset = parse_size(item.substr(first + 1, second - first - 1));
  auto length = parse_size(item.substr(second + 1));
  if (!offset || !length) return out;
  out.path = item.substr(0, first);
  out.offset = offset.value();
  out.length = length.value();
  out.range = item.substr(first);
  return out;
}

Result<std::string> request(const std::string& socket_path, const std::string& command) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    return Error(errc::invalid_argument, "control socket path too long: " + socket_path);
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno(errno, "socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return Error::from_errno(errno, "connect to '" + socket_path + "'");
  }
  const std::string line = command + "\n";
  for (size_t done = 0; done < line.size();) {
    const ssize_t n = ::send(fd.get(), line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "send to '" + socket_path + "'");
    }
    done += static_cast<size_t>(n);
  }
  std::string answer;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "read from '" + socket_path + "'");
    }
    if (n == 0) break;
    answer.append(buf, static_cast<size_t>(n));
  }
  const size_t eol = answer.find('\n');
  const std::string status = answer.substr(0, eol);
  const std::string body = eol == std::string::npos ? "" : answer.substr(eol + 1);
  if (status == "ok") return body;
  if (status.starts_with("error ")) return Error(errc::invalid_argument, status.substr(6));
  return Error(std::make_error_code(std::errc::protocol_error), "bad answer from '" + socket_path + "'");
}

}  // namespace pagerfs::control
