#include "util/fd_cache.h"

#include <vector>

#include "util/safe_open.h"

namespace pagerfs {

Result<std::shared_ptr<const UniqueFd>> FdCache::open(const std::string& path, int flags, mode_t mode) {
  {
    MutexLock lock(mu_);
    if (const auto* fd = open_.get(path)) return *fd;
  }
  // Open outside the lock: a slow disk must not block hits on other files.
  // The files are a store's or a cache's: a FIFO or a symlink under a
  // blob's name is refused, never waited on or followed.
  PAGERFS_TRY(fd, open_regular_file(path, flags, mode));
  auto shared = std::make_shared<const UniqueFd>(std::move(fd));
  // Declared before the lock, so evicted fds are closed after it is released.
  std::vector<std::shared_ptr<const UniqueFd>> evicted;
  MutexLock lock(mu_);
  if (const auto* raced = open_.peek(path)) return *raced;  // lost a race
  open_.insert(path, shared, 1, [&](std::string&&, std::shared_ptr<const UniqueFd>&& old, uint64_t) {
    evicted.push_back(std::move(old));
  });
  return shared;
}

void FdCache::forget(const std::string& path) {
  std::shared_ptr<const UniqueFd> forgotten;  // closed (if last) after the lock is released
  MutexLock lock(mu_);
  if (auto* fd = open_.peek(path)) forgotten = std::move(*fd);
  open_.erase(path);
}

}  // namespace pagerfs
