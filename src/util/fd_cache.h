// A bounded cache of open read-only file descriptors, least recently used
// evicted first. An fd handed out stays open until its last user drops it,
// even if the cache evicts it meanwhile.
//
// Thread safety: open() and forget() may be called concurrently (one
// internal mutex, never held while opening or closing a file).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "pagerfs/util/error.h"
#include "util/lru_cache.h"
#include "util/mutex.h"
#include "util/unique_fd.h"

namespace pagerfs {

class FdCache {
 public:
  explicit FdCache(size_t capacity) : open_(capacity == 0 ? 1 : capacity) {}

  // The open fd of `path` (opened with `flags`, and `mode` if it creates
  // the file, on a miss, by open_regular_file(): only a regular file, never
  // through a symbolic link).
  Result<std::shared_ptr<const UniqueFd>> open(const std::string& path, int flags, mode_t mode = 0600)
      EXCLUDES(mu_);
  // Drops `path` from the cache (e.g. after it was deleted or replaced).
  void forget(const std::string& path) EXCLUDES(mu_);

 private:
  Mutex mu_;
  // By path, one unit of cost per fd.
  LruCache<std::string, std::shared_ptr<const UniqueFd>> open_ GUARDED_BY(mu_);
};

}  // namespace pagerfs
