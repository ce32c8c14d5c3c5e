// An OCI runtime bundle for an image of a store: `pagerfsctl bundle`.
//
// A runtime (crun, runc) starts a container from a directory holding
// config.json; its root.path names the container's root file system, here
// the image's tree in a pagerfs mount (MOUNT/images/NAME, read-only) or a
// writable overlay over it. The process is the image config's (the OCI image
// spec's conversion rules, conversion.md): args are Entrypoint + Cmd (a
// command given by the caller replaces Cmd), env is Env (PATH added when
// missing), cwd is WorkingDir, and the user is resolved inside the image:
// "name", "uid", "name:group", "uid:gid", names looked up in the image's own
// /etc/passwd and /etc/group, with the groups that list the user as
// additional gids. An image packed from a directory has no config: a
// command must then be given, and it runs as root in "/".
//
// The rest is what `runc spec` and docker give every container: new pid,
// ipc, uts, mount and network namespaces (only a loopback interface), /proc,
// a tmpfs /dev with devpts, shm and mqueue, a read-only /sys, the masked and
// read-only paths of /proc, docker's default capabilities (for uid 0 only),
// no new privileges, RLIMIT_NOFILE 1024.
//
// The image is untrusted: its /etc/passwd is opened with openat2(2)
// RESOLVE_IN_ROOT, so a symlink in the image resolves inside the image and
// never reads a host file; files and lines are bounded; a user or group not
// found is an error, never root. A read-only root needs the directories the
// runtime mounts over (/proc, /dev, /sys): their absence is an error that
// says to use a writable root.
//
// Thread safety: pure functions over values, and reads of the rootfs.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pagerfs/util/error.h"

namespace pagerfs::oci {

struct BundleOptions {
  std::string rootfs;               // the container's root: absolute path, a directory
  bool writable = false;            // root.readonly = false (an overlay over the image)
  std::vector<std::string> args;    // when not empty, replaces the image's Cmd
  std::optional<std::string> user;  // replaces the image's User
  bool terminal = false;  // process.terminal (runtimes then need a console socket or a tty)
  std::string hostname;   // empty: "container"
};

struct ProcessUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;
};

// Resolves an image config's User ("" is root) inside the tree open as
// `rootfs_fd`.
Result<ProcessUser> resolve_user(int rootfs_fd, const std::string& user);

// The runtime config (config.json) for the image whose config is
// `image_config` (nullopt: an image without one) in `options.rootfs`.
Result<nlohmann::json> runtime_config(const std::optional<std::vector<std::byte>>& image_config,
                                      const BundleOptions& options);

// Writes `config` as DIR/config.json (DIR created if missing; an existing
// config.json replaced atomically), mode 0644.
Result<void> write_bundle(const std::string& dir, const nlohmann::json& config);

}  // namespace pagerfs::oci
