#include "fuse/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <string_view>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "fuse/kernel_mount.h"
#include "fuse/takeover_journal.h"
#include "util/unique_fd.h"

namespace pagerfs {
namespace {

constexpr const char* kTakeoverVariable = "PAGERFS_TAKEOVER";
constexpr const char* kHandoffVariable = "PAGERFS_TAKEOVER_HANDOFF";
constexpr int kHandoffFd = 6;
constexpr std::chrono::seconds kReadyTimeout{60};   // a new server opening its store and caches
constexpr std::chrono::seconds kRetireTimeout{10};  // the old one answering what it has
constexpr const char* kCommand = "--supervise";
constexpr int kCrashLoopRestarts = 5;
constexpr std::chrono::milliseconds kTick{20};

// Whether `pid`'s main thread has exited: a process killed while one of its
// threads is stuck in the kernel stays a zombie leader ('Z') that cannot be
// reaped until that thread returns.
bool main_thread_exited(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) return true;  // gone
  const char state = text[paren + 2];
  return state == 'Z' || state == 'X';
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + ::strsignal(WTERMSIG(status));
  return "stopped";
}

// Moves `fds` to 3, 4, 5 (inherited across exec) and closes every other
// descriptor above 2.
void install_descriptors(int fuse_fd, int journal_fd, int control_fd) {
  const int high[3] = {::fcntl(fuse_fd, F_DUPFD_CLOEXEC, 64), ::fcntl(journal_fd, F_DUPFD_CLOEXEC, 64),
                       ::fcntl(control_fd, F_DUPFD_CLOEXEC, 64)};
  const int fixed[3] = {kSupervisedFuseFd, kSupervisedJournalFd, kSupervisedControlFd};
  for (int k = 0; k < 3; ++k) ::dup2(high[k], fixed[k]);  // dup2 clears close-on-exec
  ::syscall(SYS_close_range, 6u, ~0u, 0u);
}

class Supervisor {
 public:
  Supervisor(pid_t server, std::string mountpoint, std::string directory, std::vector<std::string> arguments,
             std::shared_ptr<spdlog::logger> log)
      : server_(server), mountpoint_(std::move(mountpoint)), directory_(std::move(directory)),
        arguments_(std::move(arguments)), log_(std::move(log)) {}

  int run() {
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&signals, s);
    ::sigprocmask(SIG_BLOCK, &signals, nullptr);
    log_->info("supervising server pid {} of {}", server_, mountpoint_);
    for (;;) {
      const timespec tick{0, std::chrono::nanoseconds(kTick).count()};
      const int sig = ::sigtimedwait(&signals, nullptr, &tick);
      if ((sig == SIGTERM || sig == SIGINT) && server_ > 0) {
        ::kill(server_, sig);
      } else if (sig == SIGHUP && server_ > 0 && !server_gone_) {
        upgrade();
      }
      reap();
      if (!server_gone_ && !main_thread_exited(server_)) continue;
      if (!connection_alive(kSupervisedFuseFd)) return finish();
      if (!take_over()) return 1;
    }
  }

 private:
  void reap() {
    int status = 0;
    for (pid_t pid; (pid = ::waitpid(-1, &status, WNOHANG)) > 0;) {
      if (pid == server_) {
        server_gone_ = true;
        server_status_ = status;
      } else {
        log_->info("server pid {} (retired) {}", pid, describe(status));
      }
    }
  }

  int finish() {
    // The connection has ended: wait for the server to be gone, with its status.
    while (!server_gone_) {
      ::usleep(10'000);
      reap();
    }
    log_->info("server pid {} {}; the mount is gone", server_, describe(server_status_));
    return WIFEXITED(server_status_) ? WEXITSTATUS(server_status_) : 1;
  }

  bool take_over() {
    // A server killed while serving is replaced however often it happens; a
    // server that dies before it serves (it cannot start) is a crash loop.
    if (generation_ > 0 && TakeoverJournal::serving_generation(kSupervisedJournalFd) != generation_) {
      ++failed_starts_;
    } else {
      failed_starts_ = 0;
    }
    if (failed_starts_ >= kCrashLoopRestarts) {
      log_->error("{} servers in a row died before serving: giving up on {}", failed_starts_, mountpoint_);
      std::string mountinfo;
      {
        std::ifstream in("/proc/self/mountinfo");
        mountinfo.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
      abort_connection(mount_device_from_mountinfo(mountinfo, mountpoint_), *log_);
      return false;
    }
    const std::string died = server_gone_ ? describe(server_status_) : "lost its main thread";
    const pid_t pid = start_server(binary_, generation_ + 1, -1);
    if (pid < 0) return false;
    ++generation_;
    log_->warn("server pid {} {}; server pid {} takes the mount over", server_, died, pid);
    server_ = pid;
    server_gone_ = false;
    server_status_ = 0;
    return true;
  }

  // Starts `binary` as server number `generation`; with `handoff` (>= 0), it
  // gets that socket as descriptor 6 for a live upgrade. -1 on failure (logged).
  pid_t start_server(const std::string& binary, uint32_t generation, int handoff) {
    const std::string takeover = std::to_string(generation) + ":" + mountpoint_;
    std::vector<char*> argv;
    for (auto& a : arguments_) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      log_->error("cannot start a server: fork: {}", std::strerror(errno));
      return -1;
    }
    if (pid == 0) {
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      if (::chdir(directory_.c_str()) != 0) (void)::chdir("/");
      ::setenv(kTakeoverVariable, takeover.c_str(), 1);
      if (handoff >= 0) {
        ::dup2(handoff, kHandoffFd);  // clears close-on-exec
        ::setenv(kHandoffVariable, std::to_string(kHandoffFd).c_str(), 1);
      }
      ::execv(binary.c_str(), argv.data());
      ::_exit(127);
    }
    return pid;
  }

  // A live upgrade (see the header). The old server serves until the new
  // one is ready; any failure before that leaves it serving.
  void upgrade() {
    std::string binary = TakeoverJournal::take_upgrade_request(kSupervisedJournalFd);
    if (binary.empty()) binary = installed_binary();
    log_->info("upgrade: starting {}", binary);
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      log_->error("upgrade: socketpair: {}", std::strerror(errno));
      return;
    }
    UniqueFd ours(pair[0]);
    const pid_t next = start_server(binary, generation_ + 1, pair[1]);
    ::close(pair[1]);
    if (next < 0) {
      TakeoverJournal::count_failed_upgrade(kSupervisedJournalFd);
      return;
    }
    if (!wait_line(ours.get(), "ready", kReadyTimeout)) {
      log_->error("upgrade: the new server (pid {}) did not get ready; the old one goes on", next);
      TakeoverJournal::count_failed_upgrade(kSupervisedJournalFd);
      ::kill(next, SIGKILL);
      ::waitpid(next, nullptr, 0);
      return;
    }
    // The old server stops reading requests, answers those it has, exits.
    const auto retire_start = std::chrono::steady_clock::now();
    ::kill(server_, SIGUSR2);
    int status = 0;
    bool exited = false;
    bool retired = false;
    while (std::chrono::steady_clock::now() - retire_start < kRetireTimeout) {
      if (::waitpid(server_, &status, WNOHANG) == server_) {
        exited = true;
        break;
      }
      if (TakeoverJournal::retired(kSupervisedJournalFd, generation_)) {
        retired = true;  // it tears down now; reaped later
        break;
      }
      ::usleep(1'000);
    }
    if (!exited && !retired) {
      log_->warn("upgrade: server pid {} did not retire within {} s: killed", server_, kRetireTimeout.count());
      ::kill(server_, SIGKILL);
      while (!main_thread_exited(server_)) ::usleep(2'000);
    }
    const pid_t old = server_;
    (void)!::write(ours.get(), "go\n", 3);
    ++generation_;
    binary_ = binary;
    server_ = next;
    server_gone_ = false;
    server_status_ = 0;
    log_->info("upgrade: server pid {} retired ({}); server pid {} serves the mount", old,
               exited ? describe(status) : (retired ? "tearing down" : "killed"), next);
  }

  // Waits for `word` and a newline on `fd`; false on EOF, timeout or anything else.
  static bool wait_line(int fd, const std::string& word, std::chrono::seconds timeout) {
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (got.size() <= word.size()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char c = 0;
      if (::read(fd, &c, 1) != 1) return false;
      if (c == '\n') break;
      got += c;
    }
    return got == word;
  }

  // The pagerfs installed where this one was started from (a package
  // upgrade replaces the file: its path names the new binary).
  static std::string installed_binary() {
    char path[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) return "/proc/self/exe";
    std::string binary(path, static_cast<size_t>(n));
    constexpr std::string_view kDeleted = " (deleted)";
    if (binary.ends_with(kDeleted)) binary.resize(binary.size() - kDeleted.size());
    return binary;
  }

  pid_t server_;
  bool server_gone_ = false;
  int server_status_ = 0;
  uint32_t generation_ = 0;
  std::string binary_ = "/proc/self/exe";  // what a successor runs: this binary, or the one upgraded to
  int failed_starts_ = 0;  // servers in a row that died before serving
  const std::string mountpoint_;
  const std::string directory_;
  std::vector<std::string> arguments_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace

Result<std::optional<Takeover>> takeover_from_environment() {
  const char* value = std::getenv(kTakeoverVariable);
  if (value == nullptr) return std::optional<Takeover>();
  const std::string text(value);
  ::unsetenv(kTakeoverVariable);
  const size_t colon = text.find(':');
  Takeover t;
  char* end = nullptr;
  const unsigned long generation = colon == std::string::npos ? 0 : std::strtoul(text.c_str(), &end, 10);
  if (colon == std::string::npos || end != text.c_str() + colon || generation == 0 || generation > 0xffff ||
      text.size() < colon + 2 || text[colon + 1] != '/') {
    return Error(errc::invalid_argument, std::string(kTakeoverVariable) + "='" + text +
                                             "': not GENERATION:MOUNTPOINT (it is set by pagerfs' supervisor only)");
  }
  t.generation = static_cast<uint32_t>(generation);
  t.mountpoint = text.substr(colon + 1);
  if (const char* handoff = std::getenv(kHandoffVariable)) {
    t.handoff_fd = std::atoi(handoff) == kHandoffFd ? kHandoffFd : -1;
    ::unsetenv(kHandoffVariable);
  }
  return std::optional<Takeover>(std::move(t));
}

Result<void> wait_for_handoff(int fd) {
  UniqueFd socket(fd);
  if (::write(socket.get(), "ready\n", 6) != 6) return Error::from_errno(errno, "upgrade: tell the supervisor");
  std::string got;
  for (char c = 0; got.size() < 3;) {
    const ssize_t n = ::read(socket.get(), &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1) return Error(errc::invalid_argument, "upgrade called off by the supervisor");
    if (c == '\n') break;
    got += c;
  }
  if (got != "go") return Error(errc::invalid_argument, "upgrade: unexpected word from the supervisor");
  return ok();
}

Result<void> split_off_supervisor(const SupervisorSetup& setup) {
  const pid_t server = ::fork();
  if (server < 0) return Error::from_errno(errno, "cannot start the supervisor: fork");
  if (server == 0) return ok();
  std::vector<std::string> args = {setup.arguments.empty() ? "pagerfs" : setup.arguments[0], kCommand,
                                   std::to_string(server), setup.mountpoint, setup.directory,
                                   setup.foreground ? "fg" : "bg", "--"};
  args.insert(args.end(), setup.arguments.begin(), setup.arguments.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  install_descriptors(setup.fuse_fd, setup.journal_fd, setup.control_fd);
  ::execv("/proc/self/exe", argv.data());
  // Nothing holds the connection but the server now: it goes on alone.
  std::fprintf(stderr, "pagerfs: cannot start the supervisor: exec: %s\n", std::strerror(errno));
  ::_exit(1);
}

bool is_supervisor_command(int argc, char** argv) { return argc > 1 && std::strcmp(argv[1], kCommand) == 0; }

int run_supervisor(int argc, char** argv) {
  // pagerfs --supervise SERVER_PID MOUNTPOINT DIRECTORY fg|bg -- ARGUMENTS...
  if (argc < 8 || std::strcmp(argv[6], "--") != 0) {
    std::fprintf(stderr, "pagerfs: --supervise is internal (started by pagerfs itself)\n");
    return 2;
  }
  const pid_t server = static_cast<pid_t>(std::strtol(argv[2], nullptr, 10));
  const bool foreground = std::strcmp(argv[5], "fg") == 0;
  std::shared_ptr<spdlog::logger> log;
  if (foreground) {
    log = std::make_shared<spdlog::logger>("supervisor", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    log->set_pattern("pagerfs supervisor: [%l] %v");
  } else {
    log = std::make_shared<spdlog::logger>(
        "supervisor", std::make_shared<spdlog::sinks::syslog_sink_mt>("pagerfs", LOG_PID, LOG_DAEMON, false));
    log->set_pattern("supervisor: %v");
  }
  if (server <= 0) {
    log->error("--supervise: bad server pid '{}'", argv[2]);
    return 2;
  }
  std::vector<std::string> arguments(argv + 7, argv + argc);
  if (arguments.empty()) arguments.emplace_back("pagerfs");
  return Supervisor(server, argv[3], argv[4], std::move(arguments), log).run();
}

}  // namespace pagerfs
