// The daemon's side of /dev/fuse, through fuse_session_custom_io(): the one
// place that sees the FUSE protocol below libfuse, for what libfuse 3.14
// cannot do itself: kernel features newer than libfuse (a request timeout),
// taking over a live connection, and handing it over (retire_session_io).
//
// Request timeout (kernel 6.14+): libfuse 3.14 knows nothing of
// FUSE_REQUEST_TIMEOUT, so the first server adds it to the INIT reply it
// sends: the kernel then aborts the connection (every reader gets ENOTCONN)
// when a request waits longer than that for its answer. It is the only way
// out when every process of the mount is gone but one killed server cannot
// finish dying: a thread of it waits in the kernel for a page that a
// reader's unanswered READ holds locked, so its descriptor of /dev/fuse is
// never closed and the kernel never learns the connection is dead
// (pagerfs(8), A MOUNT THAT OUTLIVES ITS DAEMON).
//
// A server that mounts (Mode::first) reads and writes the device as libfuse
// would, and records the INIT request the kernel sends first in the
// takeover journal. A server started on a connection that is already live
// (Mode::successor: its predecessor was killed, or is being upgraded) never
// gets an INIT from the kernel, and libfuse answers everything before INIT
// with EIO. So its first read returns the recorded INIT instead: libfuse
// negotiates again, with the same options and the same kernel offer, and
// reaches the state the predecessor had. The reply to that INIT is
// swallowed (the kernel expects none), and every other read waits until it
// has been. Then FUSE_NOTIFY_RESEND (kernel 6.9+) tells the kernel to queue
// again every request the predecessor had read and not answered: they are
// served by the successor, and their readers never see an error. On an
// older kernel the notification fails; that is logged, and those readers
// wait until the connection is aborted.
//
// One session per process: libfuse passes the session's userdata (the
// Filesystem) to the callbacks, not ours, hence the single instance.
//
// Thread safety: the callbacks run on every session worker thread at once;
// install() once, before the session loop starts.
#pragma once

#include <fuse_lowlevel.h>

#include <memory>

#include "fuse/takeover_journal.h"
#include "pagerfs/util/error.h"

namespace spdlog {
class logger;
}

namespace pagerfs {

enum class SessionMode { first, successor };

struct SessionIoOptions {
  SessionMode mode = SessionMode::first;
  // Records the kernel's INIT for successors (first); holds the INIT to
  // replay (successor). Null for a mount without supervisor (first only).
  // Outlives the session.
  TakeoverJournal* journal = nullptr;
  // first: seconds a request may wait for its answer before the kernel
  // aborts the connection (0: no limit; the kernel raises anything below 15
  // to 15 and checks every 15 s). A successor inherits what the first server
  // negotiated.
  uint16_t request_timeout = 0;
};

// Routes the session's device I/O through this module, on `fd` (the session
// keeps using it, and closes it when destroyed).
Result<void> install_session_io(fuse_session* se, int fd, const SessionIoOptions& options,
                                std::shared_ptr<spdlog::logger> log);

// Retires this server (a live upgrade: supervisor.h): from now on no worker
// reads a request, and the session loop returns once the requests being
// served are answered; the connection stays up for the successor.
// Async-signal-safe.
void retire_session_io() noexcept;

}  // namespace pagerfs
