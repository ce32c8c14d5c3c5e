// A real pagerfs mount for integration tests, always cleaned up: the
// destructor stops the daemon it started (by pid: SIGTERM, then SIGKILL)
// and, as a last resort, lazily unmounts with `fusermount3 -u -z`.
//
// Thread safety: one owner; is_mounted() may be called from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace pagerfs::testing {

// True when this machine can mount FUSE file systems; tests skip (exit 77
// semantics via GTEST_SKIP) otherwise, unless PAGERFS_REQUIRE_FUSE is set.
bool fuse_available();

// The mount at `path` as /proc/self/mountinfo shows it (the one on top),
// or nullopt if nothing is mounted there.
struct MountInfo {
  std::string device;   // "major:minor" (a FUSE mount's minor is its connection)
  std::string options;  // the per-mount options, e.g. "rw,nosuid,nodev,relatime"
  std::string type;     // e.g. "fuse.pagerfs"
};
std::optional<MountInfo> mount_info(const std::string& path);

// True when `path` is a mount point of type fuse.pagerfs.
bool is_pagerfs_mount(const std::string& path);

class MountedStore {
 public:
  // Runs `pagerfs STORE MOUNTPOINT -f -o <options>` and waits until mounted.
  // Throws std::runtime_error (with the daemon's log) if it does not mount.
  // `launcher`, if given, is an argv prefix that must exec the daemon in
  // place (its pid is the daemon's), e.g. NetworkHost::enter(); its first
  // element is an absolute path.
  MountedStore(const std::string& store, const std::string& mountpoint,
               const std::vector<std::string>& options = {},
               const std::vector<std::string>& launcher = {});
  ~MountedStore();
  MountedStore(const MountedStore&) = delete;
  MountedStore& operator=(const MountedStore&) = delete;

  const std::string& path() const noexcept { return mountpoint_; }
  std::string blob(const std::string& hex) const { return mountpoint_ + "/blobs/sha256/" + hex; }
  pid_t pid() const noexcept { return pid_; }
  std::string log() const;

  // The daemon's child processes: the servers of a supervised mount
  // (-o supervise: pid() is then the supervisor's).
  std::vector<pid_t> children() const;

  // Sends `sig` to the daemon.
  void signal(int sig);
  // Waits for the daemon to exit; returns its exit status, or -1 on timeout
  // (and -signal if it died of a signal).
  int wait_exit(std::chrono::milliseconds timeout);

 private:
  std::string mountpoint_;
  std::string log_path_;
  pid_t pid_ = -1;
};

}  // namespace pagerfs::testing
