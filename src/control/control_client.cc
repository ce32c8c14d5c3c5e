// The control client: finds a socket it may trust, sends one request line,
// reads one answer line, each step bounded in time.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "pagerfs/control/control.h"
#include "pagerfs/util/digest.h"
#include "util/unique_fd.h"

namespace pagerfs::control {
namespace {

constexpr size_t kMaxAnswer = size_t{256} << 20;  // a dump of a huge mount, with room to spare
constexpr std::chrono::seconds kConnectTimeout{5};

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(std::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const std::string_view oct = field.substr(i + 1, 3);
      if (oct.size() == 3 && std::all_of(oct.begin(), oct.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        out += static_cast<char>((oct[0] - '0') * 64 + (oct[1] - '0') * 8 + (oct[2] - '0'));
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

std::string uid_list(const std::vector<uid_t>& owners) {
  std::string out;
  for (uid_t uid : owners) out += (out.empty() ? "" : " or ") + std::to_string(uid);
  return out;
}

std::string seconds(std::chrono::milliseconds t) {
  const std::string whole = std::to_string(t.count() / 1000);
  return t.count() % 1000 == 0 ? whole : whole + "." + std::to_string(t.count() % 1000 / 100);
}

bool allowed(const std::vector<uid_t>& owners, uid_t uid) {
  return std::find(owners.begin(), owners.end(), uid) != owners.end();
}

}  // namespace

std::string default_socket_path(const std::string& mountpoint) {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  const std::string dir = (runtime && *runtime && ::geteuid() != 0) ? runtime : "/run";
  // A hash, not the path itself: no two mount points share a name, and the
  // name's length does not depend on the mount point's (sun_path holds 107).
  const Digest d = Sha256::of(std::as_bytes(std::span(mountpoint.data(), mountpoint.size())));
  return dir + "/pagerfs/" + d.hex().substr(0, 32) + ".sock";
}

Result<uid_t> pagerfs_mount_owner(std::string_view mountinfo, const std::string& mountpoint) {
  // Fields: id parent major:minor root MOUNTPOINT options [optional...] - FSTYPE source SUPEROPTIONS.
  // Mounts stack: the last line for a mount point is the one a path reaches.
  std::optional<std::string> fstype, superopts;
  std::istringstream in{std::string(mountinfo)};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mnt;
    fields >> id >> parent >> dev >> root >> mnt;
    if (unescape_mountinfo(mnt) != mountpoint) continue;
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string type, source, opts;
    tail >> type >> source >> opts;
    fstype = type;
    superopts = opts;
  }
  if (!fstype) return Error(errc::invalid_argument, "'" + mountpoint + "' is not a mount point (is it mounted?)");
  if (*fstype != "fuse.pagerfs") {
    return Error(errc::invalid_argument, "'" + mountpoint + "' is not a pagerfs mount (it is " + *fstype + ")");
  }
  std::istringstream opts(*superopts);
  std::string opt;
  while (std::getline(opts, opt, ',')) {
    if (!opt.starts_with("user_id=")) continue;
    char* end = nullptr;
    const unsigned long uid = std::strtoul(opt.c_str() + 8, &end, 10);
    if (opt.size() > 8 && *end == '\0' && uid <= UINT32_MAX) return static_cast<uid_t>(uid);
  }
  return Error(errc::invalid_argument, "'" + mountpoint + "': the mount names no owner (user_id)");
}

Result<void> check_socket(const std::string& path, const std::vector<uid_t>& owners) {
  if (!path.starts_with("/")) return Error(errc::invalid_argument, "control socket '" + path + "' is not an absolute path");
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Error::from_errno(errno, "control socket '" + path + "'");
  if (!S_ISSOCK(st.st_mode)) return Error(errc::invalid_argument, "control socket '" + path + "' is not a socket");
  if (!allowed(owners, st.st_uid)) {
    return Error(errc::invalid_argument, "control socket '" + path + "' is owned by uid " + std::to_string(st.st_uid) +
                                             ", not by uid " + uid_list(owners) + ": refusing to talk to it");
  }
  return ok();
}

Result<Endpoint> socket_for_mount(const std::string& mountpoint) {
  char resolved[PATH_MAX];
  if (::realpath(mountpoint.c_str(), resolved) == nullptr) return Error::from_errno(errno, "'" + mountpoint + "'");
  // The mount table first: a file system that is not pagerfs is never asked
  // for the attribute (its daemon could name any socket, or never answer).
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return Error::from_errno(errno, "/proc/self/mountinfo");
  std::stringstream table;
  table << in.rdbuf();
  PAGERFS_TRY(owner, pagerfs_mount_owner(table.str(), resolved));
  char value[PATH_MAX];
  const ssize_t n = ::getxattr(resolved, "user.pagerfs.control", value, sizeof value);
  if (n <= 0) return Error::from_errno(n == 0 ? ENODATA : errno, "'" + mountpoint + "': user.pagerfs.control");
  // The socket must be its mount owner's: a user's own mount cannot point
  // root's pagerfsctl at a socket of root's (or anybody else's).
  Endpoint endpoint{std::string(value, static_cast<size_t>(n)), {owner}};
  PAGERFS_TRYV(check_socket(endpoint.path, endpoint.owners));
  return endpoint;
}

Result<Endpoint> explicit_socket(const std::string& path) {
  std::vector<uid_t> owners = {::getuid()};
  if (owners.front() != 0) owners.push_back(0);
  Endpoint endpoint{path, owners};
  PAGERFS_TRYV(check_socket(path, owners));
  return endpoint;
}

Result<std::string> request(const Endpoint& endpoint, const std::string& line,
                            std::optional<std::chrono::milliseconds> timeout) {
  const std::string& path = endpoint.path;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Error(errc::invalid_argument, "control socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno(errno, "socket");
  // A blocking connect waits while the daemon's backlog is full, and sends
  // wait while its buffer is: SO_SNDTIMEO bounds both.
  const timeval send_timeout{kConnectTimeout.count(), 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
  const auto timed_out = [&](const char* what) {
    return Error::from_errno(ETIMEDOUT, std::string(what) + " '" + path + "' (is the daemon hung?)");
  };
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno == EAGAIN || errno == EINPROGRESS) return timed_out("connect to");
    return Error::from_errno(errno, "connect to '" + path + "'");
  }
  // The file was checked before; the server's credentials close the race
  // of a path swapped after the check.
  ucred peer{};
  socklen_t peer_len = sizeof peer;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) != 0) {
    return Error::from_errno(errno, "SO_PEERCRED on '" + path + "'");
  }
  if (!allowed(endpoint.owners, peer.uid)) {
    return Error(errc::invalid_argument, "control socket '" + path + "' is served by uid " + std::to_string(peer.uid) +
                                             ", not by uid " + uid_list(endpoint.owners) + ": refusing to talk to it");
  }
  // A daemon that refuses us (wrong uid, too many connections) answers and
  // closes at once: then the send fails, but the answer says why.
  std::optional<Error> send_error;
  for (size_t done = 0; done < line.size();) {
    const ssize_t n = ::send(fd.get(), line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return timed_out("send to");
      send_error = Error::from_errno(errno, "send to '" + path + "'");
      if (errno != EPIPE && errno != ECONNRESET) return *send_error;
      break;
    }
    done += static_cast<size_t>(n);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout.value_or(std::chrono::milliseconds::zero());
  std::string answer;
  char buf[65536];
  for (;;) {
    int wait_ms = -1;
    if (timeout) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return Error::from_errno(ETIMEDOUT, "no answer from '" + path + "' within " + seconds(*timeout) +
                                                " s (is the daemon hung?)");
      }
      wait_ms = static_cast<int>(std::min<int64_t>(left.count(), INT_MAX));
    }
    pollfd p{fd.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, wait_ms);
    if (ready < 0 && errno != EINTR) return Error::from_errno(errno, "poll");
    if (ready <= 0) continue;
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == ECONNRESET && !answer.empty()) break;
      if (send_error) return *send_error;
      return Error::from_errno(errno, "read from '" + path + "'");
    }
    if (n == 0) break;
    answer.append(buf, static_cast<size_t>(n));
    if (answer.size() > kMaxAnswer) return Error(std::make_error_code(std::errc::protocol_error),
                                                 "answer from '" + path + "' is too large");
    if (answer.back() == '\n') break;  // one answer line: done, even if the peer keeps the connection
  }
  if (answer.empty()) {
    if (send_error) return *send_error;
    return Error(std::make_error_code(std::errc::protocol_error), "'" + path + "' closed without an answer");
  }
  auto body = parse_answer(answer);
  if (!body && body.error().code() == std::make_error_code(std::errc::protocol_error)) {
    return Error(body.error().code(), "bad answer from '" + path + "' (not a pagerfs control socket?)");
  }
  return body;
}

}  // namespace pagerfs::control
