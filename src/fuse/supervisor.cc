#include "fuse/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "fuse/kernel_mount.h"
#include "fuse/takeover_journal.h"

namespace pagerfs {
namespace {

constexpr const char* kTakeoverVariable = "PAGERFS_TAKEOVER";
constexpr const char* kCommand = "--supervise";
constexpr int kCrashLoopRestarts = 5;
constexpr std::chrono::milliseconds kTick{20};

// The connection lives until the kernel ends it (unmounted and no file
// open, or aborted): then its descriptor polls POLLERR.
bool connection_alive(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) >= 0 && (p.revents & (POLLERR | POLLNVAL)) == 0;
}

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
      } else if (sig == SIGHUP) {
        log_->info("SIGHUP ignored");
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
    ++generation_;
    const std::string takeover = std::to_string(generation_) + ":" + mountpoint_;
    std::vector<char*> argv;
    for (auto& a : arguments_) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      log_->error("cannot start a server: fork: {}", std::strerror(errno));
      return false;
    }
    if (pid == 0) {
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      if (::chdir(directory_.c_str()) != 0) (void)::chdir("/");
      ::setenv(kTakeoverVariable, takeover.c_str(), 1);
      ::execv("/proc/self/exe", argv.data());
      ::_exit(127);
    }
    log_->warn("server pid {} {}; server pid {} takes the mount over", server_, died, pid);
    server_ = pid;
    server_gone_ = false;
    server_status_ = 0;
    return true;
  }

  pid_t server_;
  bool server_gone_ = false;
  int server_status_ = 0;
  uint32_t generation_ = 0;
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
  return std::optional<Takeover>(std::move(t));
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
