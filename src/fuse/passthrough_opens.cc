#include "fuse/passthrough_opens.h"

#include <string>
#include <utility>

namespace pagerfs {

PassthroughOpens::Decision PassthroughOpens::begin(fuse_ino_t ino, const BackingSource& source) {
  {
    MutexLock lock(mu_);
    if (auto it = inodes_.find(ino); it != inodes_.end() && it->second.passthrough > 0) {
      if (it->second.passthrough != kForever) ++it->second.passthrough;
      ++stats_.passthrough_opens;
      return {Mode{it->second.backing_id}, Outcome::shared, std::nullopt};
    }
  }
  // Outside the lock: the source may open a file, the kernel takes an ioctl.
  std::optional<UniqueFd> backing = source ? source() : std::nullopt;
  int32_t registered = 0;
  std::optional<Error> error;
  if (backing && *backing) {
    // Opens that went live meanwhile decide (below): no registration then.
    bool decided = false;
    {
      MutexLock lock(mu_);
      decided = inodes_.contains(ino);
    }
    if (!decided) {
      auto id = backend_.open(backing->get());
      if (id && id.value() > 0) {
        registered = id.value();
      } else {
        error = id ? Error(errc::invalid_argument, "backing id " + std::to_string(id.value())) : id.error();
      }
    }
  }
  const bool offered = backing && *backing;
  backing.reset();  // the kernel holds its own reference

  Decision decision;
  int32_t unused = 0;  // a registration another open of the inode made needless
  {
    MutexLock lock(mu_);
    Inode& inode = inodes_[ino];
    if (registered != 0) ++stats_.registrations;
    if (inode.passthrough > 0) {  // another first open won
      if (inode.passthrough != kForever) ++inode.passthrough;
      unused = registered;
      decision = {Mode{inode.backing_id}, Outcome::shared, std::nullopt};
    } else if (registered != 0 && inode.cached == 0) {
      inode.passthrough = 1;
      inode.backing_id = registered;
      ++stats_.live_backings;
      if (backend_.record) backend_.record(ino, registered);
      decision = {Mode{registered}, Outcome::registered, std::nullopt};
    } else {
      ++inode.cached;
      unused = registered;
      decision.outcome = error ? Outcome::failed : offered ? Outcome::refused : Outcome::no_backing;
      decision.error = std::move(error);
    }
    if (decision.mode.passthrough()) {
      ++stats_.passthrough_opens;
    } else {
      ++stats_.cached_opens;
      if (decision.outcome == Outcome::refused) ++stats_.refused;
      if (decision.outcome == Outcome::failed) ++stats_.registration_failures;
    }
  }
  if (unused != 0) backend_.close(unused);
  return decision;
}

void PassthroughOpens::end(fuse_ino_t ino, Mode mode) {
  int32_t drop = 0;
  {
    MutexLock lock(mu_);
    const auto it = inodes_.find(ino);
    if (it == inodes_.end()) return;  // not begun here
    Inode& inode = it->second;
    if (mode.passthrough() && inode.passthrough > 0 && inode.passthrough != kForever &&
        inode.backing_id == mode.backing_id) {
      if (--inode.passthrough == 0) {
        drop = std::exchange(inode.backing_id, 0);
        --stats_.live_backings;
        if (backend_.record) backend_.record(ino, 0);
      }
    } else if (!mode.passthrough() && inode.cached > 0) {
      --inode.cached;
    }
    if (inode.cached == 0 && inode.passthrough == 0) inodes_.erase(it);
  }
  if (drop != 0) backend_.close(drop);
}

void PassthroughOpens::adopt(fuse_ino_t ino, int32_t backing_id) {
  MutexLock lock(mu_);
  Inode& inode = inodes_[ino];
  if (inode.passthrough == 0) ++stats_.live_backings;
  inode.backing_id = backing_id;
  inode.passthrough = kForever;
}

PassthroughOpens::Stats PassthroughOpens::stats() const {
  MutexLock lock(mu_);
  return stats_;
}

}  // namespace pagerfs
