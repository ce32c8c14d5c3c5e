#include "fuse/session_io.h"

#include <linux/fuse.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <spdlog/spdlog.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "util/mutex.h"

namespace pagerfs {
namespace {

// Not in bookworm's <linux/fuse.h> (kernel 6.1 headers); kernel 6.9+.
constexpr int32_t kNotifyResend = 7;

struct SessionIo {
  SessionMode mode = SessionMode::first;
  TakeoverJournal* journal = nullptr;
  std::shared_ptr<spdlog::logger> log;
  std::vector<std::byte> init;  // successor: the INIT to replay
  uint64_t init_unique = 0;
  int retire_fd = -1;  // an eventfd: readable once the server retires

  Mutex mu;
  CondVar init_answered_cv;
  bool init_handed GUARDED_BY(mu) = false;    // successor: a read returned the INIT
  bool init_answered GUARDED_BY(mu) = false;  // successor: libfuse replied to it
  bool init_recorded GUARDED_BY(mu) = false;  // first: the kernel's INIT is in the journal
};

SessionIo* g_io = nullptr;  // set once by install_session_io, before the loop

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

ssize_t io_read(int fd, void* buf, size_t len, void*) {
  SessionIo& io = *g_io;
  if (io.mode == SessionMode::successor) {
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
  if (io.mode == SessionMode::first && n >= static_cast<ssize_t>(sizeof(fuse_in_header))) {
    fuse_in_header in{};
    std::memcpy(&in, buf, sizeof in);
    if (in.opcode == FUSE_INIT) {
      const int saved = errno;
      MutexLock lock(io.mu);
      if (!io.init_recorded) {
        io.init_recorded = true;
        if (auto recorded = io.journal->record_init({static_cast<const std::byte*>(buf), static_cast<size_t>(n)});
            !recorded) {
          io.log->warn("takeover: {}: this mount cannot be taken over", recorded.error().message());
        }
      }
      errno = saved;
    }
  }
  return n;
}

ssize_t io_writev(int fd, iovec* iov, int count, void*) {
  SessionIo& io = *g_io;
  if (io.mode == SessionMode::successor && count > 0 && iov[0].iov_len >= sizeof(fuse_out_header)) {
    fuse_out_header out{};
    std::memcpy(&out, iov[0].iov_base, sizeof out);
    bool swallow = false;
    {
      MutexLock lock(io.mu);
      if (!io.init_answered && out.unique == io.init_unique) {
        io.init_answered = true;
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

Result<void> install_session_io(fuse_session* se, int fd, SessionMode mode, TakeoverJournal& journal,
                                std::shared_ptr<spdlog::logger> log) {
  if (g_io != nullptr) return Error(errc::invalid_argument, "session io: installed twice");
  auto io = std::make_unique<SessionIo>();
  io->mode = mode;
  io->journal = &journal;
  io->log = std::move(log);
  if (mode == SessionMode::successor) {
    io->init = journal.inherited().init;
    fuse_in_header in{};
    if (io->init.size() < sizeof in) {
      return Error(errc::corrupt_blob, "takeover: the journal holds no INIT request to replay");
    }
    std::memcpy(&in, io->init.data(), sizeof in);
    if (in.opcode != FUSE_INIT || in.len != io->init.size()) {
      return Error(errc::corrupt_blob, "takeover: the journal's INIT request is malformed");
    }
    io->init_unique = in.unique;
  }
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

void retire_session_io() noexcept {
  if (g_io == nullptr) return;
  const uint64_t one = 1;
  (void)!::write(g_io->retire_fd, &one, sizeof one);
}

}  // namespace pagerfs
