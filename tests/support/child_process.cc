#include "support/child_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <linux/close_range.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#include "support/subprocess.h"

extern char** environ;

namespace pagerfs::testing {
namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

// argv[0] itself if it names a path, else the first executable of that name
// in PATH. Resolved before fork(): the child may only make async-signal-safe
// calls, and execvp() is not one.
std::string resolve_executable(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t begin = 0;
  while (begin <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', begin), dirs.size());
    const std::string dir = end > begin ? dirs.substr(begin, end - begin) : ".";
    const std::string candidate = dir + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    begin = end + 1;
  }
  throw_errno(ENOENT, "cannot find " + name + " in PATH");
}

// The parent's environment with `overrides` ("NAME=value") added or replacing.
std::vector<std::string> child_environment(const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  for (const std::string& o : overrides) {
    const std::string name = o.substr(0, o.find('=') + 1);
    std::erase_if(env, [&](const std::string& e) { return e.starts_with(name); });
    env.push_back(o);
  }
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// What the child reports through the pipe when it cannot exec.
struct ChildFailure {
  int stage;  // index into kStages
  int err;
};
constexpr const char* kStages[] = {
    "prctl", "open /dev/null", "open stdout file", "open stderr file", "chdir", "execve"};

ExitStatus decode(int status) {
  if (WIFSIGNALED(status)) return ExitStatus{true, WTERMSIG(status)};
  return ExitStatus{false, WEXITSTATUS(status)};
}

}  // namespace

std::string ExitStatus::describe() const {
  if (!signaled) return "exit " + std::to_string(code);
  const char* name = ::sigdescr_np(code);
  return "signal " + std::to_string(code) + (name ? std::string(" (") + name + ")" : "");
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) throw std::invalid_argument("ChildProcess: empty argv");
  // Everything the child needs is built here: between fork() and execve() a
  // multithreaded parent's child may not allocate.
  const std::string path = resolve_executable(argv[0]);
  std::vector<std::string> args = argv;
  std::vector<std::string> env = child_environment(options.env);
  const std::vector<char*> c_args = c_strings(args);
  const std::vector<char*> c_env = c_strings(env);
  const bool one_output_file =
      !options.stdout_path.empty() && options.stdout_path == options.stderr_path;

  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(report[0]);
    ::close(report[1]);
    throw_errno(err, "fork");
  }
  if (pid == 0) {
    ::close(report[0]);
    auto fail = [&](int stage) {
      const ChildFailure failure{stage, errno};
      [[maybe_unused]] ssize_t n = ::write(report[1], &failure, sizeof failure);
      ::_exit(127);
    };
    // Dies with the thread that started it (see the header); if the parent is
    // already gone, it must not run at all.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(0);
    if (::getppid() != parent) ::_exit(127);
    // Signals ignored or blocked in the test (SIGPIPE, say) would stay so
    // across execve(): the server gets the defaults it expects.
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
    }
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);

    const int null = ::open("/dev/null", O_RDONLY);
    if (null < 0 || ::dup2(null, STDIN_FILENO) < 0) fail(1);
    constexpr int kFlags = O_WRONLY | O_CREAT | O_TRUNC;
    if (!options.stdout_path.empty()) {
      const int fd = ::open(options.stdout_path.c_str(), kFlags, 0644);
      if (fd < 0 || ::dup2(fd, STDOUT_FILENO) < 0) fail(2);
      if (one_output_file && ::dup2(fd, STDERR_FILENO) < 0) fail(3);
    }
    if (!options.stderr_path.empty() && !one_output_file) {
      const int fd = ::open(options.stderr_path.c_str(), kFlags, 0644);
      if (fd < 0 || ::dup2(fd, STDERR_FILENO) < 0) fail(3);
    }
    if (!options.cwd.empty() && ::chdir(options.cwd.c_str()) != 0) fail(4);
    // Nothing else the test holds open reaches the server: a file of a
    // mount kept open by nginx would keep that mount alive after its daemon
    // is told to stop. Close-on-exec, so `report` still works until execve.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execve(path.c_str(), c_args.data(), c_env.data());
    fail(5);
  }

  ::close(report[1]);
  ChildFailure failure{};
  ssize_t n;
  do {
    n = ::read(report[0], &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    throw_errno(failure.err, "cannot start " + path + ": " + kStages[failure.stage]);
  }
  // n == 0: execve() succeeded and closed the pipe (O_CLOEXEC).
  pid_ = pid;
  reaped_ = false;
}

ChildProcess::~ChildProcess() {
  if (!reaped_) stop();
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_),
      reaped_(std::exchange(other.reaped_, true)),
      status_(std::move(other.status_)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (!reaped_) stop();
    pid_ = other.pid_;
    reaped_ = std::exchange(other.reaped_, true);
    status_ = std::move(other.status_);
  }
  return *this;
}

bool ChildProcess::running() {
  return !wait_for(std::chrono::milliseconds(0));
}

std::optional<ExitStatus> ChildProcess::wait_for(std::chrono::milliseconds timeout) {
  if (reaped_) return status_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = decode(status);
      return status_;
    }
    if (r < 0 && errno != EINTR) {
      // ECHILD: someone else reaped it (waitpid(-1) elsewhere in the test).
      reaped_ = true;
      status_ = ExitStatus{false, -1};
      return status_;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return std::nullopt;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

ExitStatus ChildProcess::stop(std::chrono::milliseconds grace) {
  if (!reaped_ && !wait_for(std::chrono::milliseconds(0))) {
    ::kill(pid_, SIGTERM);
    if (!wait_for(grace)) {
      ::kill(pid_, SIGKILL);
      // SIGKILL cannot be caught: only a process stuck in the kernel (D
      // state) takes long, and nothing better can be done than to wait.
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      reaped_ = true;
      status_ = decode(status);
    }
  }
  return status_.value_or(ExitStatus{});
}

uint16_t pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    ::close(fd);
    throw_errno(err, "bind 127.0.0.1:0");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool can_connect(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw_errno(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  if (!connected && errno == EINPROGRESS) {
    // Loopback answers at once, unless the listener's backlog is full.
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    connected = ::poll(&p, 1, 1000) == 1 &&
                ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
  }
  ::close(fd);
  return connected;
}

std::variant<uint16_t, std::string> wait_for_port_file(ChildProcess& process, const std::string& port_file,
                                                       std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (std::filesystem::exists(port_file)) {
      const auto port = static_cast<uint16_t>(std::stoi(read_file(port_file)));
      if (can_connect(port)) return port;
    }
    if (!process.running()) return "exited (" + process.exit_status()->describe() + ")";
    if (std::chrono::steady_clock::now() > deadline) {
      process.stop();
      return "did not accept connections within " + std::to_string(timeout.count()) + " s";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace pagerfs::testing
