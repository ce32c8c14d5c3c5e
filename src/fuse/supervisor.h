// The supervisor: a small process of ours that holds a mount's FUSE
// connection (/dev/fuse), its takeover journal and its control socket, and
// starts a new server on the same connection when the serving process dies
// (kill -9, a crash, the OOM killer), so that readers of the mount never see
// an error: the mount outlives its daemon.
//
// The process that mounted splits in two once it is a daemon, before any
// thread starts: the child goes on serving (generation 0), the parent
// becomes the supervisor by exec'ing this binary (`pagerfs --supervise ...`,
// internal), so that it holds nothing but the three descriptors, at fixed
// numbers 3, 4 and 5. When the server dies while the connection lives, the
// supervisor starts a successor: this binary again, with the original
// arguments and directory, and PAGERFS_TAKEOVER=GENERATION:MOUNTPOINT in
// its environment; the successor takes the connection over (session_io.h)
// and restores what its predecessors handed to the kernel
// (takeover_journal.h). A server that died with a thread stuck in the kernel
// (a FUSE_NOTIFY_STORE waiting for a page that a READ it read holds locked)
// never finishes exiting; the supervisor sees its main thread gone and
// starts the successor anyway: answering that READ frees the stuck thread.
//
// A live upgrade (SIGHUP to the supervisor, or `pagerfsctl upgrade`, which
// names the binary through the journal): the new server starts, opens and
// checks everything, and says it is ready on a socket; only then is the old
// one retired (SIGUSR2: it reads no more requests, answers those it has, and
// exits without unmounting); once it has exited, the new one is told to go:
// it reads the journal again, replays INIT and serves. A new server that
// fails to get ready is stopped, and the old one goes on. The successors
// started after a crash run the upgraded binary from then on.
//
// SIGTERM and SIGINT to the supervisor are passed to the server (which
// unmounts lazily, as without a supervisor); the supervisor exits, with the
// server's status, once the server is gone and the connection has ended.
// Five servers in a row that die before they serve (they cannot start) are a
// crash loop: the supervisor gives up (and, as root, aborts the connection
// so that readers get ENOTCONN rather than wait). Servers killed while
// serving are replaced however often that happens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pagerfs/util/error.h"

namespace pagerfs {

// The descriptors a supervisor and each server it starts share.
inline constexpr int kSupervisedFuseFd = 3;
inline constexpr int kSupervisedJournalFd = 4;
inline constexpr int kSupervisedControlFd = 5;

// What a successor server is told by its supervisor.
struct Takeover {
  uint32_t generation = 0;  // 1 for the first successor, then 2, ...
  std::string mountpoint;   // absolute: the live mount it serves
  // A live upgrade: the socket on which the successor says it is ready and
  // waits to be told to go (-1: the predecessor is dead; go at once).
  int handoff_fd = -1;
};
// The takeover this process was started for, if any (from the environment,
// which is then cleared so that children do not inherit it).
Result<std::optional<Takeover>> takeover_from_environment();

struct SupervisorSetup {
  int fuse_fd = -1;
  int journal_fd = -1;
  int control_fd = -1;
  std::string mountpoint;  // absolute
  std::string directory;   // where relative arguments are resolved
  bool foreground = false;
  std::vector<std::string> arguments;  // the command line, argv[0] included
};
// Splits the calling process (single-threaded, mounted, daemonized unless in
// the foreground): returns in the child, which serves; the parent becomes
// the supervisor and never returns. An error if it could not fork.
Result<void> split_off_supervisor(const SupervisorSetup& setup);

// A live upgrade's successor, ready to serve: tells its supervisor and waits
// until the old server has retired. An error if the upgrade was called off.
Result<void> wait_for_handoff(int fd);

// True when argv asks for the supervisor (`pagerfs --supervise ...`).
bool is_supervisor_command(int argc, char** argv);
// The supervisor's main; returns the exit status.
int run_supervisor(int argc, char** argv);

}  // namespace pagerfs
