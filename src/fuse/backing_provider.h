// Where a file's bytes lie whole on a local disk, for the kernel to read and
// map them itself (FUSE passthrough: passthrough_opens.h, session_io.h).
//
// Thread safety: backing_for() runs on every FUSE worker at once.
#pragma once

#include <fuse_lowlevel.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "pagerfs/pager/pager.h"
#include "pagerfs/util/digest.h"
#include "util/unique_fd.h"

namespace pagerfs {

class BackingProvider {
 public:
  // The file being opened, and where the pager finds its bytes.
  struct OpenFile {
    fuse_ino_t ino = 0;
    Digest content;                         // the digest of the file's bytes
    std::shared_ptr<PagedBlob> blob;        // they are [offset, offset + length) of it
    uint64_t offset = 0;
    uint64_t length = 0;
  };

  virtual ~BackingProvider() = default;
  // A descriptor of a regular file whose bytes are exactly those of `file`,
  // or nullopt: the open is served through the pager.
  // The file must be on a file system that stacks nothing (ext4, xfs, btrfs,
  // tmpfs; not FUSE, not overlayfs) and must not change while the kernel
  // holds it: it keeps its own reference from the first passthrough open of
  // the inode to the last close (or munmap), and reads it with the daemon's
  // credentials. The descriptor is closed as soon as it is registered.
  // Asked only when the inode has no passthrough open live.
  virtual std::optional<UniqueFd> backing_for(const OpenFile& file) = 0;
  // The file was served whole to a reader through the pager (as many bytes
  // as it holds), or executed: worth a backing file for its next opens.
  virtual void read_whole(const OpenFile& file) = 0;
  // Figures for `pagerfsctl stats` (merged into "passthrough").
  virtual nlohmann::json stats() const = 0;
};

class Materializer;

// The backing files of -o passthrough: materialized files (materializer.h).
std::shared_ptr<BackingProvider> make_materialized_backing_provider(std::shared_ptr<Materializer> materializer);

}  // namespace pagerfs
