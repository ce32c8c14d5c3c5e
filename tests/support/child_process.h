// A long-running child process that a test starts and always ends: a server
// the test talks to (nginx, the fault proxy), as opposed to run() of
// subprocess.h, which waits for a command to finish and collects its output.
//
// The owner ends exactly the process it started, by its pid: SIGTERM, then
// SIGKILL after a bound, then waitpid(). The pid cannot be reused meanwhile,
// as the child stays unreaped (a zombie at worst) until this object reaps it.
// If the test binary itself dies without running destructors (a crash, a
// timeout's SIGKILL), the kernel sends the child SIGKILL (PR_SET_PDEATHSIG),
// so no server outlives its test holding a port.
//
// PR_SET_PDEATHSIG fires when the *thread* that started the child exits, not
// the process: start children on the test's own thread, never in a
// std::async task or a thread that ends before the child should.
//
// Thread safety: one owner thread; pid() may be read from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace pagerfs::testing {

// How a child ended, from waitpid().
struct ExitStatus {
  bool signaled = false;
  int code = 0;                  // the exit code, or the signal number when signaled
  std::string describe() const;  // "exit 3", "signal 9 (Killed)"
};

struct SpawnOptions {
  // "NAME=value" entries that are added to, or replace, the parent's environment.
  std::vector<std::string> env{};
  // The child's working directory; empty: the parent's.
  std::string cwd{};
  // Files the child's standard output and error are written to (created or
  // truncated); empty: inherited. The same path for both: one file, in order.
  std::string stdout_path{};
  std::string stderr_path{};
};

class ChildProcess {
 public:
  // Starts argv[0] (looked up in PATH if it has no '/') with its standard
  // input on /dev/null. Throws std::system_error if it cannot be executed
  // (the errno of the failed execve, e.g. ENOENT).
  explicit ChildProcess(const std::vector<std::string>& argv, const SpawnOptions& options = {});
  // stop().
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The child's pid, valid until it has been reaped (and kept afterwards for
  // messages and for tests that check the process is gone).
  pid_t pid() const noexcept { return pid_; }

  // True until the child has exited; reaps it when it has.
  bool running();

  // Waits up to `timeout` for the child to exit by itself; its status, or
  // nullopt if it is still running.
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);

  // Sends SIGTERM, waits up to `grace`, then SIGKILL, and reaps the child.
  // Returns how it ended (also when it had already exited).
  ExitStatus stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

  // How the child ended, once it has been reaped.
  const std::optional<ExitStatus>& exit_status() const noexcept { return status_; }

 private:
  pid_t pid_ = -1;
  bool reaped_ = true;  // no child to end (also when moved from)
  std::optional<ExitStatus> status_;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
// released). Another process may take it before the caller binds it: servers
// that bind it retry with another port (NginxServer does).
uint16_t pick_free_port();

// True when a TCP connection to 127.0.0.1:port is accepted now.
bool can_connect(uint16_t port);

// For a server of ours that binds port 0 itself and writes the port it got
// to `port_file` (renamed into place: no other process can take the port
// between choosing and binding): waits until it accepts connections there
// and returns the port. If it exits first, or is not ready within
// `timeout` (then it is stopped), returns the reason ("exited (...)", "did
// not accept connections within N s") for the caller's exception.
std::variant<uint16_t, std::string> wait_for_port_file(ChildProcess& process, const std::string& port_file,
                                                       std::chrono::seconds timeout);

}  // namespace pagerfs::testing
