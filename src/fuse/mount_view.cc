#include "fuse/mount_view.h"

#include <mutex>

namespace pagerfs {

MountView::MountView(std::vector<Digest> digests) : digests_(std::move(digests)) {
  for (size_t i = 0; i < digests_.size(); ++i) inos_[digests_[i]] = kFirstBlob + i;
}

std::optional<fuse_ino_t> MountView::lookup(fuse_ino_t parent, std::string_view name) const {
  if (parent == kRoot && name == "blobs") return kBlobsDir;
  if (parent == kBlobsDir && name == "sha256") return kShaDir;
  if (parent != kShaDir || !Digest::is_canonical_hex(name)) return std::nullopt;
  const Digest digest = Digest::parse(name).value();
  std::shared_lock lock(mu_);
  auto it = inos_.find(digest);
  if (it == inos_.end()) return std::nullopt;
  return it->second;
}

fuse_ino_t MountView::add(const Digest& digest) {
  std::unique_lock lock(mu_);
  auto [it, inserted] = inos_.try_emplace(digest, kFirstBlob + digests_.size());
  if (inserted) digests_.push_back(digest);
  return it->second;
}

std::optional<Digest> MountView::digest_of(fuse_ino_t ino) const {
  if (ino < kFirstBlob) return std::nullopt;
  std::shared_lock lock(mu_);
  if (ino - kFirstBlob >= digests_.size()) return std::nullopt;
  return digests_[ino - kFirstBlob];
}

size_t MountView::blob_count() const {
  std::shared_lock lock(mu_);
  return digests_.size();
}

std::vector<MountView::Entry> MountView::list(fuse_ino_t dir, size_t offset, size_t max) const {
  std::vector<Entry> all;
  all.push_back({".", dir, true});
  all.push_back({"..", parent_of(dir), true});
  if (dir == kRoot) all.push_back({"blobs", kBlobsDir, true});
  if (dir == kBlobsDir) all.push_back({"sha256", kShaDir, true});
  std::vector<Entry> out;
  for (size_t i = offset; i < all.size() && out.size() < max; ++i) out.push_back(all[i]);
  if (dir != kShaDir) return out;
  std::shared_lock lock(mu_);
  for (size_t i = std::max(offset, all.size()) - all.size(); i < digests_.size() && out.size() < max; ++i) {
    out.push_back({digests_[i].hex(), kFirstBlob + i, false});
  }
  return out;
}

}  // namespace pagerfs
