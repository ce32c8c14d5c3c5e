// The daemon's side of /dev/fuse, through fuse_session_custom_io(): the one
// place that sees the FUSE protocol below libfuse, for what libfuse 3.14
// cannot do itself. Today: taking over a live connection, and handing it
// over (retire_session_io).
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

// Routes the session's device I/O through this module, on `fd` (the session
// keeps using it, and closes it when destroyed). `journal` outlives the
// session. successor: the journal must hold an INIT.
Result<void> install_session_io(fuse_session* se, int fd, SessionMode mode, TakeoverJournal& journal,
                                std::shared_ptr<spdlog::logger> log);

// Retires this server (a live upgrade: supervisor.h): from now on no worker
// reads a request, and the session loop returns once the requests being
// served are answered; the connection stays up for the successor.
// Async-signal-safe.
void retire_session_io() noexcept;

}  // namespace pagerfs
