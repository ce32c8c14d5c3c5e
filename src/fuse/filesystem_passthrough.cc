// Which opens the kernel serves from a backing file itself (passthrough):
// the provider offers the file, passthrough_opens.h decides, session_io.h
// registers it and sends the reply.
//
// A successor on a connection does not know which opens its predecessors
// left live. The journal tells it which inodes they left in passthrough
// mode, and with which backing file: it answers every open of those with
// that file, for good (adopt()). Any other inode they handed out may have
// cached opens live: it serves those cached, for good. Inodes it hands out
// first are decided as by the first server.
#include <spdlog/spdlog.h>

#include "fuse/filesystem.h"
#include "fuse/session_io.h"

namespace pagerfs {

void Filesystem::set_passthrough(std::shared_ptr<BackingProvider> provider) {
  backing_provider_ = std::move(provider);
  if (!backing_provider_) return;
  passthrough_ = std::make_unique<PassthroughOpens>(PassthroughOpens::Backend{
      [](int fd) { return open_backing(fd); },
      [this](int32_t id) {
        if (auto closed = close_backing(id); !closed) {
          logger_->warn("passthrough: backing file {}: {}", id, closed.error().message());
        }
      },
      [this](fuse_ino_t ino, int32_t id) {
        if (journal_ != nullptr) journal_->record_backing(ino, id);
      }});
}

void Filesystem::restore_passthrough(const TakeoverJournal::Contents& contents) {
  if (contents.backings.empty()) return;
  if (!passthrough_) {
    logger_->warn("takeover: {} inode(s) are in passthrough mode, but this server was not asked for passthrough: "
                  "their opens fail until the previous server's close",
                  contents.backings.size());
    return;
  }
  for (const auto& [ino, id] : contents.backings) passthrough_->adopt(ino, id);
  logger_->info("takeover: {} inode(s) in passthrough mode keep their backing files", contents.backings.size());
}

bool Filesystem::inherited(fuse_ino_t ino) const {
  if ((ino & MountView::kBlobBit) != 0) return inherited_blobs_.contains(ino);
  const uint64_t image = ino >> 32;  // image number + 1; 0: a fixed directory
  return image != 0 && image - 1 < inherited_images_;
}

std::optional<PassthroughOpens::Mode> Filesystem::begin_open(fuse_ino_t ino, const MountView::Node& node,
                                                             Handle& handle, bool executed) {
  if (!passthrough_ || !passthrough_negotiated()) return std::nullopt;
  const BackingProvider::OpenFile file{ino, node.digest, handle.blob, handle.offset, handle.length};
  PassthroughOpens::BackingSource source;
  if (inherited(ino)) {
    inherited_cached_opens_.fetch_add(1, std::memory_order_relaxed);
  } else if (!passthrough_off_.load(std::memory_order_relaxed)) {
    source = [&]() { return backing_provider_->backing_for(file); };
  }
  PassthroughOpens::Decision decision = passthrough_->begin(ino, source);
  if (decision.outcome == PassthroughOpens::Outcome::failed) {
    const Error& error = *decision.error;
    const int err = to_errno(error);
    // Not root, or not the kernel we asked: no registration will ever work.
    if ((err == EPERM || err == ENOTTY) && !passthrough_off_.exchange(true)) {
      logger_->warn("passthrough off: {} (needs CAP_SYS_ADMIN); files are served through the pager",
                    error.message());
    } else if (!passthrough_failure_logged_.exchange(true)) {
      logger_->warn("passthrough: inode {}: {}; served through the pager (further failures are only counted)", ino,
                    error.message());
    }
  }
  if (!decision.mode.passthrough() && !passthrough_off_.load(std::memory_order_relaxed)) {
    // An executable is mapped, not read whole: its exec says it is hot.
    if (executed) {
      backing_provider_->read_whole(file);
    } else {
      handle.whole_read = std::make_shared<WholeRead>();
      handle.whole_read->file = file;
    }
  }
  return decision.mode;
}

void Filesystem::count_served(WholeRead& whole, uint64_t bytes) {
  const uint64_t served = whole.served.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  if (served >= whole.file.length && !whole.noted.exchange(true)) backing_provider_->read_whole(whole.file);
}

void Filesystem::end_open(fuse_ino_t ino, std::optional<PassthroughOpens::Mode> mode) {
  if (mode && passthrough_) passthrough_->end(ino, *mode);
}

nlohmann::json Filesystem::passthrough_json() const {
  const PassthroughOpens::Stats s = passthrough_ ? passthrough_->stats() : PassthroughOpens::Stats{};
  nlohmann::json out = {{"enabled", passthrough_ != nullptr},
          {"negotiated", passthrough_negotiated()},
          {"off", passthrough_off_.load()},
          {"passthrough_opens", s.passthrough_opens},
          {"cached_opens", s.cached_opens},
          {"refused_by_mode", s.refused},
          {"inherited_cached_opens", inherited_cached_opens_.load()},
          {"backing_registrations", s.registrations},
          {"backing_registration_failures", s.registration_failures},
          {"live_backings", s.live_backings}};
  if (backing_provider_) out.update(backing_provider_->stats());
  return out;
}

}  // namespace pagerfs
