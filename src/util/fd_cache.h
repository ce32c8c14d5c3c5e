// A bounded cache of open read-only file descriptors, least recently used
// evicted first. An fd handed out stays open until its last user drops it,
// even if the cache evicts it meanwhile.
//
// Thread safety: open() and forget() may be called concurrently.
#pragma once

#include <sys/types.h>

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "pagerfs/util/error.h"
#include "util/unique_fd.h"

namespace pagerfs {

class FdCache {
 public:
  explicit FdCache(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  // The open fd of `path` (opened with `flags`, and `mode` if it creates
  // the file, on a miss, by open_regular_file(): only a regular file, never
  // through a symbolic link).
  Result<std::shared_ptr<const UniqueFd>> open(const std::string& path, int flags, mode_t mode = 0600);
  // Drops `path` from the cache (e.g. after it was deleted or replaced).
  void forget(const std::string& path);

 private:
  using Lru = std::list<std::pair<std::string, std::shared_ptr<const UniqueFd>>>;
  const size_t capacity_;
  std::mutex mu_;
  Lru lru_;                                                 // guarded by mu_, most recent first
  std::unordered_map<std::string, Lru::iterator> by_path_;  // guarded by mu_
};

}  // namespace pagerfs
