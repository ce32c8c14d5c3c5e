// A successor server rebuilding what its predecessors on the same FUSE
// connection handed to the kernel (takeover_journal.h).
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>

#include "fuse/filesystem.h"

namespace pagerfs {

void Filesystem::restore(const TakeoverJournal::Contents& contents) {
  for (const auto& blob : contents.blobs) inherited_blobs_.insert(blob.ino);
  for (const auto& image : contents.images) {
    inherited_images_ = std::max<uint64_t>(inherited_images_, uint64_t{image.number} + 1);
  }
  restore_passthrough(contents);
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

Result<void> Filesystem::request_upgrade(const std::string& binary) {
  if (journal_ == nullptr) {
    return Error(errc::invalid_argument, "this mount has no supervisor to upgrade it (mounted with -f or -o nosupervise)");
  }
  if (!binary.empty() && (binary[0] != '/' || ::access(binary.c_str(), X_OK) != 0)) {
    return Error(errc::invalid_argument, "upgrade: '" + binary + "' is not an absolute path to an executable");
  }
  PAGERFS_TRYV(TakeoverJournal::request_upgrade(journal_->fd(), binary));
  // Our parent is the supervisor: it starts the new server, then retires us.
  if (::kill(::getppid(), SIGHUP) != 0) return Error::from_errno(errno, "upgrade: signal the supervisor");
  logger_->info("upgrade to {} asked for", binary.empty() ? "the installed pagerfs" : binary);
  return ok();
}

}  // namespace pagerfs
