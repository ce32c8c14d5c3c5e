// A successor server rebuilding what its predecessors on the same FUSE
// connection handed to the kernel (takeover_journal.h).
#include <spdlog/spdlog.h>

#include "fuse/filesystem.h"

namespace pagerfs {

void Filesystem::restore(const TakeoverJournal::Contents& contents) {
  const MountView::Restored restored = view_.restore(contents, [this](std::string_view name) {
    return catalog_.load(name);
  });
  logger_->info("takeover: {} image(s) and {} blob inode(s) of the previous server restored", restored.images,
                restored.blobs);
  if (restored.stale_images > 0) {
    logger_->warn("takeover: {} image(s) changed or went away since the previous server loaded them: their open "
                  "files and directories now fail with ENOENT",
                  restored.stale_images);
  }
}

}  // namespace pagerfs
