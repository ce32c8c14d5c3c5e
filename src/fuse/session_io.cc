#include "fuse/session_io.h"

#include <linux/fuse.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <spdlog/spdlog.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

#include "util/mutex.h"

namespace pagerfs {
namespace {

// Not in bookworm's <linux/fuse.h> (kernel 6.1 headers): protocol 7.43.
constexpr int32_t kNotifyResend = 7;                       // kernel 6.9+
constexpr uint32_t kFlags2RequestTimeout = 1u << (42 - 32);  // FUSE_REQUEST_TIMEOUT, kernel 6.14+
constexpr uint32_t kFlags2Passthrough = 1u << (37 - 32);      // FUSE_PASSTHROUGH, kernel 6.9+
constexpr uint32_t kOpenPassthrough = 1u << 7;                // FOPEN_PASSTHROUGH
// Backing files live on a plain file system: nothing stacks below them.
constexpr uint32_t kMaxStackDepth = 1;

// struct fuse_backing_map and its ioctls on /dev/fuse (protocol 7.40).
struct BackingMap {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned long kBackingOpen = _IOW(229, 1, BackingMap);
constexpr unsigned long kBackingClose = _IOW(229, 2, uint32_t);

// struct fuse_open_out as of protocol 7.40 (bookworm's calls backing_id padding).
struct OpenOut {
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;
};
static_assert(sizeof(OpenOut) == 16 && sizeof(BackingMap) == 16);

// struct fuse_init_in and fuse_init_out as of protocol 7.43; the kernel
// takes a shorter reply, and libfuse 3.14 sends all 64 bytes.
struct InitIn {
  uint32_t major, minor, max_readahead, flags, flags2;
  uint32_t unused[11];
};
struct InitOut {
  uint32_t major, minor, max_readahead, flags;
  uint16_t max_background, congestion_threshold;
  uint32_t max_write, time_gran;
  uint16_t max_pages, map_alignment;
  uint32_t flags2, max_stack_depth;
  uint16_t request_timeout;
  uint16_t unused[11];
};
static_assert(sizeof(InitIn) == 64 && sizeof(InitOut) == 64);

struct SessionIo {
  SessionIoOptions options;
  std::shared_ptr<spdlog::logger> log;
  std::vector<std::byte> init;  // successor: the INIT to replay
  uint64_t init_unique = 0;     // successor: its unique
  int retire_fd = -1;           // an eventfd: readable once the server retires
  int device_fd = -1;           // the session's /dev/fuse descriptor (ioctls)
  // first: the INIT being answered (0: none), and what the kernel offers of
  // what libfuse does not know. Read on every reply: atomics, not the mutex.
  std::atomic<uint64_t> pending_init_unique{0};
  std::atomic<bool> kernel_offers_timeout{false};
  std::atomic<bool> kernel_offers_passthrough{false};
  std::atomic<bool> passthrough{false};  // negotiated (or inherited)
  // successor: init_answered, read without the mutex on every reply.
  std::atomic<bool> replay_done{false};

  Mutex mu;
  CondVar init_answered_cv;
  bool init_handed GUARDED_BY(mu) = false;    // successor: a read returned the INIT
  bool init_answered GUARDED_BY(mu) = false;  // successor: libfuse replied to it
  bool init_recorded GUARDED_BY(mu) = false;  // first: the kernel's INIT is in the journal
};

SessionIo* g_io = nullptr;  // set once by install_session_io, before the loop

// Set by reply_open_passthrough() around its fuse_reply_open(), which writes
// the reply on this thread: the backing id to put into it, and whether it was.
struct PendingOpen {
  int32_t backing_id = 0;  // 0: no OPEN reply to patch on this thread
  bool patched = false;
};
thread_local PendingOpen t_open;

void send_resend(int fd) {
  fuse_out_header out{};
  out.len = sizeof out;
  out.error = kNotifyResend;  // a notification: unique 0, the code in error
  out.unique = 0;
  if (::write(fd, &out, sizeof out) != static_cast<ssize_t>(sizeof out)) {
    g_io->log->warn("takeover: the kernel refused FUSE_NOTIFY_RESEND ({}): requests the previous server had read "
                    "are not answered until the connection is aborted",
                    std::strerror(errno));
  } else {
    g_io->log->info("takeover: requests the previous server had not answered are queued again");
  }
}

// The kernel's INIT, read by the first server: recorded for successors, and
// its reply marked for patching.
void note_init(SessionIo& io, std::span<const std::byte> request, uint64_t unique) {
  InitIn offer{};
  std::memcpy(&offer, request.data() + sizeof(fuse_in_header),
              std::min(sizeof offer, request.size() - sizeof(fuse_in_header)));
  const bool ext = (offer.flags & FUSE_INIT_EXT) != 0;
  io.kernel_offers_timeout = ext && (offer.flags2 & kFlags2RequestTimeout) != 0;
  io.kernel_offers_passthrough = ext && (offer.flags2 & kFlags2Passthrough) != 0;
  io.pending_init_unique = unique;
  if (io.options.journal == nullptr) return;
  MutexLock lock(io.mu);
  if (io.init_recorded) return;
  io.init_recorded = true;
  if (auto recorded = io.options.journal->record_init(request); !recorded) {
    io.log->warn("takeover: {}: this mount cannot be taken over", recorded.error().message());
  }
}

// Adds to libfuse's INIT reply what libfuse 3.14 does not know: the request
// timeout and passthrough, if asked for and the kernel offers them. iov[1]
// is the reply's fuse_init_out.
ssize_t write_init_reply(SessionIo& io, int fd, iovec* iov, int count) {
  io.pending_init_unique = 0;
  fuse_out_header out{};
  std::memcpy(&out, iov[0].iov_base, sizeof out);
  const uint16_t timeout = io.options.request_timeout;
  const bool wanted = timeout != 0 || io.options.passthrough;
  if (out.error != 0 || count != 2 || iov[1].iov_len < offsetof(InitOut, unused) || !wanted) {
    return ::writev(fd, iov, count);
  }
  InitOut reply{};
  std::memcpy(&reply, iov[1].iov_base, std::min(sizeof reply, iov[1].iov_len));
  bool patched = false;
  if (timeout != 0 && !io.kernel_offers_timeout) {
    io.log->info("the kernel has no request timeout (6.14+): -o request_timeout={} is not enforced", timeout);
  } else if (timeout != 0) {
    reply.flags2 |= kFlags2RequestTimeout;
    reply.request_timeout = timeout;
    patched = true;
  }
  if (io.options.passthrough && !io.kernel_offers_passthrough) {
    io.log->info("the kernel offers no passthrough (6.9+, CONFIG_FUSE_PASSTHROUGH): every file is served "
                 "through the pager");
  } else if (io.options.passthrough && (reply.flags & FUSE_WRITEBACK_CACHE) != 0) {
    io.log->warn("passthrough not asked for: the writeback cache is on");
  } else if (io.options.passthrough) {
    reply.flags2 |= kFlags2Passthrough;
    reply.max_stack_depth = kMaxStackDepth;
    patched = true;
    // Before the reply: once the kernel has it, a successor may be serving
    // passthrough opens, and must know.
    if (io.options.journal != nullptr) {
      if (auto recorded = io.options.journal->record_passthrough(); !recorded) {
        io.log->warn("takeover: {}: a successor would not know passthrough is on; not asked for",
                     recorded.error().message());
        reply.flags2 &= ~kFlags2Passthrough;
        reply.max_stack_depth = 0;
      }
    }
    io.passthrough = (reply.flags2 & kFlags2Passthrough) != 0;
  }
  if (!patched) return ::writev(fd, iov, count);
  reply.flags |= FUSE_INIT_EXT;
  iovec patched_iov[2] = {iov[0], {&reply, iov[1].iov_len}};
  const ssize_t n = ::writev(fd, patched_iov, 2);
  if (n < 0) {
    io.passthrough = false;
  } else {
    if ((reply.flags2 & kFlags2RequestTimeout) != 0) io.log->debug("request timeout: {} s", timeout);
    if (io.passthrough) io.log->info("passthrough: the kernel may read and map cached files itself");
  }
  return n;
}

// An OPEN reply of reply_open_passthrough(): FOPEN_PASSTHROUGH and the
// backing id go into its fuse_open_out (iov[1]). Anything of another shape
// is sent as it is.
ssize_t write_open_reply(int fd, iovec* iov, int count) {
  const int32_t backing_id = std::exchange(t_open.backing_id, 0);  // one reply per call
  fuse_out_header out{};
  std::memcpy(&out, iov[0].iov_base, sizeof out);
  if (count != 2 || iov[0].iov_len != sizeof out || iov[1].iov_len != sizeof(OpenOut) || out.error != 0 ||
      out.len != sizeof out + sizeof(OpenOut)) {
    g_io->log->error("passthrough: an OPEN reply of an unexpected shape ({} pieces, {} bytes): sent without",
                     count, static_cast<uint32_t>(out.len));
    return ::writev(fd, iov, count);
  }
  OpenOut reply{};
  std::memcpy(&reply, iov[1].iov_base, sizeof reply);
  reply.open_flags |= kOpenPassthrough;
  reply.backing_id = backing_id;
  iovec patched[2] = {iov[0], {&reply, sizeof reply}};
  const ssize_t n = ::writev(fd, patched, 2);
  t_open.patched = n >= 0;
  return n;
}

ssize_t io_read(int fd, void* buf, size_t len, void*) {
  SessionIo& io = *g_io;
  if (io.options.mode == SessionMode::successor) {
    MutexLock lock(io.mu);
    if (!io.init_handed) {
      io.init_handed = true;
      if (len < io.init.size()) {
        errno = EINVAL;
        return -1;
      }
      std::memcpy(buf, io.init.data(), io.init.size());
      return static_cast<ssize_t>(io.init.size());
    }
    // Nothing before INIT has been answered: libfuse would fail it.
    io.init_answered_cv.wait(io.mu, [&io]() REQUIRES(io.mu) { return io.init_answered; });
  }
  // A retiring server reads no more requests: every worker's read ends as if
  // the connection had (ENODEV), and the session loop returns; what is left
  // unanswered is resent to the successor.
  pollfd fds[2] = {{fd, POLLIN, 0}, {io.retire_fd, POLLIN, 0}};
  while (::poll(fds, 2, -1) < 0) {
    if (errno != EINTR) return -1;
  }
  if ((fds[1].revents & POLLIN) != 0) {
    errno = ENODEV;
    return -1;
  }
  const ssize_t n = ::read(fd, buf, len);
  if (io.options.mode == SessionMode::first && n >= static_cast<ssize_t>(sizeof(fuse_in_header))) {
    fuse_in_header in{};
    std::memcpy(&in, buf, sizeof in);
    if (in.opcode == FUSE_INIT) {
      const int saved = errno;
      note_init(io, {static_cast<const std::byte*>(buf), static_cast<size_t>(n)}, in.unique);
      errno = saved;
    }
  }
  return n;
}

ssize_t io_writev(int fd, iovec* iov, int count, void*) {
  SessionIo& io = *g_io;
  if (count == 0 || iov[0].iov_len < sizeof(fuse_out_header)) return ::writev(fd, iov, count);
  if (t_open.backing_id != 0) return write_open_reply(fd, iov, count);
  const uint64_t init = io.pending_init_unique.load();
  if (init != 0 && init == static_cast<const fuse_out_header*>(iov[0].iov_base)->unique) {
    return write_init_reply(io, fd, iov, count);
  }
  if (io.options.mode == SessionMode::successor && !io.replay_done.load(std::memory_order_acquire)) {
    fuse_out_header out{};
    std::memcpy(&out, iov[0].iov_base, sizeof out);
    bool swallow = false;
    {
      MutexLock lock(io.mu);
      if (!io.init_answered && out.unique == io.init_unique) {
        io.init_answered = true;
        io.replay_done.store(true, std::memory_order_release);
        swallow = true;
      }
    }
    if (swallow) {
      if (out.error != 0) {
        io.log->error("takeover: the replayed INIT failed ({}): the session cannot serve this connection",
                      std::strerror(-out.error));
      }
      send_resend(fd);
      io.init_answered_cv.notify_all();
      ssize_t total = 0;
      for (int k = 0; k < count; ++k) total += static_cast<ssize_t>(iov[k].iov_len);
      return total;
    }
  }
  return ::writev(fd, iov, count);
}

}  // namespace

Result<void> install_session_io(fuse_session* se, int fd, const SessionIoOptions& options,
                                std::shared_ptr<spdlog::logger> log) {
  if (g_io != nullptr) return Error(errc::invalid_argument, "session io: installed twice");
  auto io = std::make_unique<SessionIo>();
  io->options = options;
  io->log = std::move(log);
  if (options.mode == SessionMode::successor) {
    if (options.journal == nullptr) return Error(errc::invalid_argument, "takeover: no journal");
    io->init = options.journal->inherited().init;
    fuse_in_header in{};
    if (io->init.size() < sizeof in) {
      return Error(errc::corrupt_blob, "takeover: the journal holds no INIT request to replay");
    }
    std::memcpy(&in, io->init.data(), sizeof in);
    if (in.opcode != FUSE_INIT || in.len != io->init.size()) {
      return Error(errc::corrupt_blob, "takeover: the journal's INIT request is malformed");
    }
    io->init_unique = in.unique;
    io->passthrough = options.journal->inherited().passthrough;
    if (io->passthrough) io->log->info("takeover: passthrough is on (the first server negotiated it)");
  }
  io->device_fd = fd;
  io->retire_fd = ::eventfd(0, EFD_CLOEXEC);
  if (io->retire_fd < 0) return Error::from_errno(errno, "session io: eventfd");
  fuse_custom_io callbacks{};
  callbacks.read = io_read;
  callbacks.writev = io_writev;
  g_io = io.release();  // lives as long as the process: the session may be used until exit
  if (const int rc = fuse_session_custom_io(se, &callbacks, fd); rc != 0) {
    return Error::from_errno(-rc, "fuse_session_custom_io");
  }
  return ok();
}

bool passthrough_negotiated() noexcept { return g_io != nullptr && g_io->passthrough.load(); }

Result<int32_t> open_backing(int fd) {
  if (!passthrough_negotiated()) return Error(errc::invalid_argument, "passthrough is not on");
  BackingMap map{fd, 0, 0};
  const int id = ::ioctl(g_io->device_fd, kBackingOpen, &map);
  if (id < 0) return Error::from_errno(errno, "FUSE_DEV_IOC_BACKING_OPEN");
  return static_cast<int32_t>(id);
}

Result<void> close_backing(int32_t id) {
  if (g_io == nullptr) return Error(errc::invalid_argument, "session io: not installed");
  const uint32_t arg = static_cast<uint32_t>(id);
  if (::ioctl(g_io->device_fd, kBackingClose, &arg) != 0) {
    return Error::from_errno(errno, "FUSE_DEV_IOC_BACKING_CLOSE");
  }
  return ok();
}

int reply_open_passthrough(fuse_req_t req, const fuse_file_info* fi, int32_t backing_id) {
  if (backing_id <= 0) {
    const int rc = fuse_reply_open(req, fi);
    return rc != 0 ? rc : 1;
  }
  // The kernel takes only FOPEN_NOFLUSH and the direct-io flags beside
  // FOPEN_PASSTHROUGH (FOPEN_PASSTHROUGH_MASK): keep_cache would fail the
  // open (EIO). The file's own page cache is not used by passthrough.
  fuse_file_info passthrough = *fi;
  passthrough.keep_cache = 0;
  t_open = PendingOpen{backing_id, false};
  const int rc = fuse_reply_open(req, &passthrough);
  const bool patched = t_open.patched;
  t_open = PendingOpen{};
  if (rc != 0) return rc;
  return patched ? 0 : 1;
}

void retire_session_io() noexcept {
  if (g_io == nullptr) return;
  const uint64_t one = 1;
  (void)!::write(g_io->retire_fd, &one, sizeof one);
}

}  // namespace pagerfs
