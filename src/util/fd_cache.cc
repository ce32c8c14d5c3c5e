#include "util/fd_cache.h"

#include <fcntl.h>

#include <cerrno>

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
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, mode));
  if (!fd) return Error::from_errno(errno, "open '" + path + "'");
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
