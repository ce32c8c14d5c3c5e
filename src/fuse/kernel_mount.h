// The daemon's dealings with the kernel's side of a mount: the -o list it
// mounts with, the lazy unmount a signal asks for, the mount's read-ahead
// (its bdi) and, as a last resort, aborting its FUSE connection.
//
// Thread safety: each function may be called from any thread.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "pagerfs/util/error.h"

namespace spdlog {
class logger;
}

namespace pagerfs {

// Escapes a value for a FUSE -o list (commas and backslashes).
std::string escape_option(const std::string& value);

// Detaches the mount: new opens fail, open files keep being served, and the
// kernel ends the session when the last one closes (the squashfuse model).
void lazy_unmount(const std::string& mountpoint, spdlog::logger& log);

// The device number of the newest mount at `mountpoint` (an absolute path
// as the kernel shows it), from the text of /proc/self/mountinfo; 0 if no
// line names it. Mount points are matched after undoing the kernel's octal
// escapes (\040 for a space, ...).
dev_t mount_device_from_mountinfo(std::string_view mountinfo, std::string_view mountpoint);
// The file system type of that mount ("fuse.pagerfs"); empty if none.
std::string mount_type_from_mountinfo(std::string_view mountinfo, std::string_view mountpoint);

// A pagerfs mount at `mountpoint` whose connection is dead (ENOTCONN: its
// daemon died, or the kernel aborted it) is unmounted lazily, so that a new
// mount takes its place. A live mount is left alone (a new one goes on top,
// as before); another file system's dead mount is an error.
Result<void> clean_dead_mount(const std::string& mountpoint, spdlog::logger& log);

// Raises the mount's kernel read-ahead to ours (root only; best effort).
// Returns the mount's device number (0 if unknown). The number comes from
// /proc/self/mountinfo, never from a stat of the mount point: the daemon
// must make no system call on its own mount (a request it would have to
// answer itself; if it is killed meanwhile, the thread stays in D state and
// the daemon a zombie).
dev_t set_bdi_readahead(const std::string& mountpoint, uint64_t readahead, spdlog::logger& log);

// True while the kernel still serves our connection. The kernel ends a
// connection (its /dev/fuse fd then polls POLLERR) before it frees the
// mount's device number, so while this is true the number is still ours.
bool connection_alive(fuse_session* se);
// The same for a descriptor of the connection (a supervisor's).
bool connection_alive(int fuse_fd);

// Ends the FUSE connection at once (root only): every waiting request fails
// with ENOTCONN and the session loop returns. The connection is named by the
// mount's device number, which the kernel gives to the next mount once ours
// is gone: the caller checks connection_alive() first, so that another
// mount is never aborted.
bool abort_connection(dev_t dev, spdlog::logger& log);

}  // namespace pagerfs
