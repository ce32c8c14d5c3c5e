#include "util/fd_cache.h"

#include "util/safe_open.h"

namespace pagerfs {

Result<std::shared_ptr<const UniqueFd>> FdCache::open(const std::string& path, int flags, mode_t mode) {
  {
    std::lock_guard lock(mu_);
    if (auto it = by_path_.find(path); it != by_path_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
  }
  // Open outside the lock: a slow disk must not block hits on other files.
  // The files are a store's or a cache's: a FIFO or a symlink under a
  // blob's name is refused, never waited on or followed.
  PAGERFS_TRY(fd, open_regular_file(path, flags, mode));
  auto shared = std::make_shared<const UniqueFd>(std::move(fd));
  std::lock_guard lock(mu_);
  if (auto it = by_path_.find(path); it != by_path_.end()) return it->second->second;  // lost a race
  lru_.emplace_front(path, shared);
  by_path_[path] = lru_.begin();
  while (lru_.size() > capacity_) {
    by_path_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return shared;
}

void FdCache::forget(const std::string& path) {
  std::lock_guard lock(mu_);
  if (auto it = by_path_.find(path); it != by_path_.end()) {
    lru_.erase(it->second);
    by_path_.erase(it);
  }
}

}  // namespace pagerfs
