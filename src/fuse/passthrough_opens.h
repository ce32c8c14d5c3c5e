// Which opens of a file the kernel may serve from a backing file itself
// (FUSE passthrough, session_io.h), and the backing files' registrations.
//
// The kernel's rules (fs/fuse/iomode.c): an inode is either in cached mode
// (opens without passthrough are live: reads go through the page cache and
// READ requests) or in passthrough mode (opens with FOPEN_PASSTHROUGH are
// live, all with the same backing file). An open that asks for the other
// mode while one is live fails, and so does a passthrough open with another
// backing file: the user's open() gets EIO. So each open is decided knowing
// what is open on its inode:
//   - passthrough opens live with backing file B: passthrough with B (no new
//     backing file is asked for);
//   - cached opens live: cached (a backing file offered is refused);
//   - nothing live: passthrough if a backing file is offered and the kernel
//     takes it, else cached.
// A backing file is registered with the kernel on the first passthrough
// open of an inode and its registration dropped when the last one ends
// (the kernel keeps its own reference for files still open, e.g. mapped).
//
// The kernel applies an open's mode when it gets the OPEN reply, and drops
// it before it sends the RELEASE: so what is counted here (from begin(),
// before the reply, to end(), at RELEASE) always holds what the kernel has,
// and a decision made here never conflicts with it.
//
// Thread safety: begin() and end() run on every FUSE worker at once. One
// mutex guards the inodes' counts; the backend and the backing source are
// called without it (an ioctl, a file open), and a race between two first
// opens of an inode is settled under it (the loser's registration is
// dropped, and it shares the winner's).
#pragma once

#include <fuse_lowlevel.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>

#include "pagerfs/util/error.h"
#include "util/mutex.h"
#include "util/unique_fd.h"

namespace pagerfs {

class PassthroughOpens {
 public:
  // The kernel: registers a backing file (its id, > 0), drops a registration
  // (session_io.h's open_backing and close_backing; fakes in tests).
  // `record`, if set, is told every change of an inode's backing file (its
  // id; 0: dropped), in order, under the lock, before the reply that the
  // change is for: the takeover journal, for a successor (adopt()).
  struct Backend {
    std::function<Result<int32_t>(int fd)> open;
    std::function<void(int32_t id)> close;
    std::function<void(fuse_ino_t ino, int32_t id)> record;
  };
  // How an open is to be answered.
  struct Mode {
    int32_t backing_id = 0;  // > 0: passthrough with this backing file; 0: cached
    bool passthrough() const noexcept { return backing_id > 0; }
  };
  enum class Outcome {
    registered,  // passthrough, with a backing file registered for it
    shared,      // passthrough, with the backing file of the inode's live opens
    no_backing,  // cached: no backing file was offered
    refused,     // cached: a backing file was offered, but cached opens are live
    failed,      // cached: the kernel did not take the backing file (error)
  };
  struct Decision {
    Mode mode;
    Outcome outcome = Outcome::no_backing;
    std::optional<Error> error;  // failed: what the kernel said
  };
  // A backing file for the inode being opened (read-only, its bytes exactly
  // the file's), or nullopt: served cached. Called at most once per begin(),
  // never while the inode has passthrough opens live (while cached ones are,
  // a file offered is refused, and counted: it was wanted).
  using BackingSource = std::function<std::optional<UniqueFd>()>;

  struct Stats {
    uint64_t passthrough_opens = 0;  // opens answered with passthrough
    uint64_t cached_opens = 0;
    uint64_t refused = 0;            // of those, offered a backing file but cached opens were live
    uint64_t registrations = 0;      // backing files the kernel took
    uint64_t registration_failures = 0;
    uint64_t live_backings = 0;      // registered now
  };

  explicit PassthroughOpens(Backend backend) : backend_(std::move(backend)) {}
  PassthroughOpens(const PassthroughOpens&) = delete;
  PassthroughOpens& operator=(const PassthroughOpens&) = delete;

  // Decides how an open of `ino` is answered, and counts it as live until
  // end(ino, mode). `source` may be empty (nothing to offer).
  Decision begin(fuse_ino_t ino, const BackingSource& source) EXCLUDES(mu_);
  // An open that begin() decided has ended (RELEASE), or was never
  // delivered to the kernel. Drops the backing file's registration after
  // the inode's last passthrough open.
  void end(fuse_ino_t ino, Mode mode) EXCLUDES(mu_);

  // A successor's start: a predecessor left `ino` in passthrough mode with
  // backing file `backing_id` (still registered). How many of its opens are
  // live is unknown, so the inode keeps that file for good: every open of it
  // shares it, and it is never dropped (nor recorded again).
  void adopt(fuse_ino_t ino, int32_t backing_id) EXCLUDES(mu_);

  Stats stats() const EXCLUDES(mu_);

 private:
  static constexpr uint32_t kForever = UINT32_MAX;  // adopted: never ends
  struct Inode {
    uint32_t cached = 0;       // live cached opens
    uint32_t passthrough = 0;  // live passthrough opens, all with backing_id (or kForever)
    int32_t backing_id = 0;
  };

  const Backend backend_;
  mutable Mutex mu_;
  std::unordered_map<fuse_ino_t, Inode> inodes_ GUARDED_BY(mu_);  // those with live opens
  Stats stats_ GUARDED_BY(mu_);
};

}  // namespace pagerfs
