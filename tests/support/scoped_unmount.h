// Unmounts whatever is mounted at a path when the scope ends, even when a
// test fails: for mounts no MountedStore owns (a pagerfs mount that
// mount(8) started, an overlay, a tmpfs). Lazy (umount -l), repeated while
// something is still mounted there (mounts may be stacked); a pagerfs
// daemon that mount(8) started exits by itself once unmounted.
//
// Thread safety: one owner.
#pragma once

#include <string>
#include <utility>

#include "support/mount_fixture.h"
#include "support/subprocess.h"

namespace pagerfs::testing {

class ScopedUnmount {
 public:
  explicit ScopedUnmount(std::string path) : path_(std::move(path)) {}
  ~ScopedUnmount() {
    for (int i = 0; i < 8 && mount_info(path_); ++i) run({"umount", "-l", path_});
    if (is_pagerfs_mount(path_)) run({"fusermount3", "-u", "-z", path_});
  }
  ScopedUnmount(const ScopedUnmount&) = delete;
  ScopedUnmount& operator=(const ScopedUnmount&) = delete;

 private:
  std::string path_;
};

}  // namespace pagerfs::testing
