// Opening the files and directories of a store or a cache directory: trees
// that another user or program may have written, where any name can hold a
// FIFO, a device, a socket or a symbolic link instead of what we expect.
//
// A plain open() of a FIFO blocks until a writer appears (forever, in an
// uninterruptible FUSE worker), a device's open() runs its driver, and a
// symbolic link sends us to a file the tree does not hold. Every open of such
// a file goes through these functions: they open without blocking
// (O_NONBLOCK), refuse a final symbolic link (O_NOFOLLOW) unless told to
// follow it, never acquire a controlling terminal (O_NOCTTY), and accept only
// what fstat() says is a regular file (or a directory). Refusals are one
// line: "'<path>' is not a regular file (a FIFO)".
//
// Thread safety: stateless; safe from any thread.
#pragma once

#include <sys/types.h>

#include <string>

#include "pagerfs/util/error.h"
#include "pagerfs/util/file.h"
#include "util/unique_fd.h"

namespace pagerfs {

// Opens `path` with `flags` (O_RDONLY, O_RDWR, O_CREAT with `mode`, O_TRUNC,
// ...; O_CLOEXEC is always added) if it is a regular file. The descriptor is
// blocking again when returned. O_TRUNC takes effect only once the file is
// known to be regular. Fails with errc::not_a_regular_file for anything
// else, and with the errno of open() otherwise (ENOENT for a missing file).
Result<UniqueFd> open_regular_file(const std::string& path, int flags, mode_t mode = 0600,
                                   Symlinks symlinks = Symlinks::refuse);

// Opens the directory `path` read-only (O_DIRECTORY), refusing a symbolic
// link unless told to follow it: ENOTDIR with "'<path>' is not a directory
// (a symbolic link)" for what is not a directory, ENOENT if it is missing.
Result<UniqueFd> open_directory(const std::string& path, Symlinks symlinks = Symlinks::refuse);

// "a FIFO", "a symbolic link", ... for the file type in `mode` (st_mode).
const char* file_type_name(mode_t mode) noexcept;

}  // namespace pagerfs
