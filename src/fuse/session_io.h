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
// Passthrough (kernel 6.9+, CONFIG_FUSE_PASSTHROUGH): libfuse 3.14 cannot
// ask for it either. When asked (SessionIoOptions::passthrough) and the
// kernel offers it, the first server adds FUSE_PASSTHROUGH and a stack depth
// of 1 (backing files live on a plain file system) to the INIT reply, and
// records in the takeover journal that it did: a successor never sees INIT.
// Then open_backing() registers a file with the kernel, and
// reply_open_passthrough() answers an OPEN so that the kernel reads and maps
// that file itself, without a READ (passthrough_opens.h decides which opens
// may).
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
  // first: ask the kernel for passthrough (if it offers it). A successor
  // inherits what the first server negotiated.
  bool passthrough = false;
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

// Whether the kernel serves passthrough opens on this connection: false
// until the first server has answered INIT; a successor knows from the
// journal. Any thread.
bool passthrough_negotiated() noexcept;

// Registers `fd` (a regular file on a file system that stacks nothing) as a
// backing file of the connection (FUSE_DEV_IOC_BACKING_OPEN): its id (> 0)
// for reply_open_passthrough(). The kernel holds its own reference: `fd` may
// be closed at once. EPERM: not negotiated, or no CAP_SYS_ADMIN in the
// initial user namespace; ELOOP: the file lives on a stacking file system.
Result<int32_t> open_backing(int fd);
// Drops the connection's reference to backing file `id`
// (FUSE_DEV_IOC_BACKING_CLOSE); files opened with it keep theirs.
Result<void> close_backing(int32_t id);

// fuse_reply_open() with FOPEN_PASSTHROUGH and `backing_id` added to the
// reply, and without keep_cache: the kernel fails a passthrough open with
// any flag but noflush and the direct-io ones. (libfuse 3.14 sends the
// reply from the calling thread, through this module.) Returns fuse_reply_open()'s result (0: sent; negative: not
// delivered, e.g. the open was interrupted), or 1 if the reply was sent but
// without passthrough (it did not have the shape of an OPEN reply: logged).
int reply_open_passthrough(fuse_req_t req, const fuse_file_info* fi, int32_t backing_id);

}  // namespace pagerfs
