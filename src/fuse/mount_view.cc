#include "fuse/mount_view.h"

#include <algorithm>


namespace pagerfs {
namespace {

constexpr uint64_t kEntryBits = 32;
constexpr fuse_ino_t kEntryMask = (fuse_ino_t{1} << kEntryBits) - 1;

}  // namespace

Error MountView::failed(const Image& image, Error error) const {
  if (error_log_ && image.manifest.first_error()) error_log_(image, error);
  return error;
}

Result<mode_t> MountView::type_bits(const Image& image, uint32_t entry) const {
  const image::Manifest& m = image.manifest;
  auto target = m.resolve(entry);
  if (!target) return failed(image, target.error());
  auto e = m.entry(target.value());
  if (!e) return failed(image, e.error());
  return static_cast<mode_t>(e.value().mode) & S_IFMT;
}

fuse_ino_t MountView::derived_blob_ino(const Digest& digest) noexcept {
  uint64_t bits = 0;
  for (size_t i = 0; i < 8; ++i) bits = bits << 8 | digest.bytes()[i];
  return kBlobBit | bits >> 1;
}

fuse_ino_t MountView::free_blob_ino(const Digest& digest) const {
  // Two digests whose first 63 bits agree (one can be made to, with work):
  // the later one takes the next number no held blob has.
  fuse_ino_t ino = derived_blob_ino(digest);
  for (auto it = blobs_.find(ino); it != blobs_.end() && it->second.digest != digest; it = blobs_.find(ino)) {
    ino = kBlobBit | ((ino + 1) & ~kBlobBit);
  }
  return ino;
}

fuse_ino_t MountView::hold_blob(const Digest& digest, std::optional<image::Content> packed) {
  WriterLock lock(mu_);
  if (auto it = blob_inos_.find(digest); it != blob_inos_.end()) {
    ++blobs_.at(it->second).lookups;
    return it->second;
  }
  const fuse_ino_t ino = free_blob_ino(digest);
  // Recorded before the reply that hands the inode to the kernel, and under
  // the lock, so that no other lookup replies with it before it is recorded.
  if (journal_ != nullptr) journal_->record_blob({ino, digest, packed});
  blobs_.emplace(ino, BlobNode{digest, 1, std::move(packed)});
  try {
    blob_inos_.emplace(digest, ino);
  } catch (...) {
    blobs_.erase(ino);
    throw;
  }
  return ino;
}

fuse_ino_t MountView::blob_ino(const Digest& digest) const {
  ReaderLock lock(mu_);
  if (auto it = blob_inos_.find(digest); it != blob_inos_.end()) return it->second;
  return free_blob_ino(digest);
}

void MountView::forget(fuse_ino_t ino, uint64_t nlookup) {
  if ((ino & kBlobBit) == 0) return;
  WriterLock lock(mu_);
  auto it = blobs_.find(ino);
  if (it == blobs_.end()) return;
  if (it->second.lookups > nlookup) {
    it->second.lookups -= nlookup;
    return;
  }
  blob_inos_.erase(it->second.digest);
  blobs_.erase(it);
}

size_t MountView::blob_inode_count() const {
  ReaderLock lock(mu_);
  return blobs_.size();
}

fuse_ino_t MountView::add_image(std::string name, image::Manifest manifest) {
  WriterLock lock(mu_);
  if (auto it = image_index_.find(name); it != image_index_.end()) return images_[it->second]->base;
  const fuse_ino_t base = static_cast<fuse_ino_t>(images_.size() + 1) << kEntryBits;
  if (journal_ != nullptr) journal_->record_image({static_cast<uint32_t>(images_.size()), name, manifest.checksum()});
  images_.push_back(std::make_unique<Image>(Image{name, std::move(manifest), base}));
  image_index_[std::move(name)] = images_.size() - 1;
  return images_.back()->base;
}

bool MountView::has_blob(const Digest& digest) const {
  ReaderLock lock(mu_);
  return blob_inos_.contains(digest);
}

size_t MountView::image_count() const {
  ReaderLock lock(mu_);
  return image_index_.size();
}

MountView::Restored MountView::restore(const TakeoverJournal::Contents& contents, const ImageLoader& load) {
  Restored restored;
  // Images first, in their numbers' order: a number the predecessor gave
  // must mean the same image, or nothing.
  std::vector<const TakeoverJournal::ImageRecord*> images;
  for (const auto& image : contents.images) images.push_back(&image);
  std::sort(images.begin(), images.end(), [](auto* a, auto* b) { return a->number < b->number; });
  for (const TakeoverJournal::ImageRecord* record : images) {
    std::unique_ptr<Image> image;
    auto loaded = load(record->name);
    if (loaded && loaded.value() && loaded.value()->checksum() == record->checksum) {
      image = std::make_unique<Image>(Image{record->name, std::move(*loaded.value()), 0});
    } else {
      ++restored.stale_images;
    }
    WriterLock lock(mu_);
    if (record->number < images_.size() || record->number > kMaxRestoredImages) continue;  // a repeat
    while (images_.size() < record->number) images_.push_back(nullptr);  // a record lost: its inodes are stale
    if (image) {
      image->base = static_cast<fuse_ino_t>(images_.size() + 1) << kEntryBits;
      image_index_[image->name] = images_.size();
      ++restored.images;
    }
    images_.push_back(std::move(image));
  }
  WriterLock lock(mu_);
  for (const auto& blob : contents.blobs) {
    if ((blob.ino & kBlobBit) == 0) continue;
    if (auto old = blobs_.find(blob.ino); old != blobs_.end()) blob_inos_.erase(old->second.digest);
    if (auto old = blob_inos_.find(blob.digest); old != blob_inos_.end()) blobs_.erase(old->second);
    // The kernel's lookup count is unknown: an inherited inode is never
    // forgotten (memory: what the kernel held when the predecessor died).
    blobs_.insert_or_assign(blob.ino, BlobNode{blob.digest, kInheritedLookups, blob.packed});
    blob_inos_.insert_or_assign(blob.digest, blob.ino);
  }
  restored.blobs = blobs_.size();
  return restored;
}

Result<std::optional<image::Content>> MountView::find_packed(const Digest& digest) const {
  std::vector<const Image*> images;
  {
    ReaderLock lock(mu_);
    for (const auto& image : images_) {
      if (image) images.push_back(image.get());
    }
  }
  for (const Image* image : images) {
    auto found = image->manifest.find_content(digest);
    if (!found) return failed(*image, found.error());
    if (found.value() && found.value()->packed()) return found;
  }
  return std::optional<image::Content>();
}

Result<std::unordered_set<Digest, DigestHash>> MountView::image_blobs(std::string_view name) const {
  const Image* image = nullptr;
  {
    ReaderLock lock(mu_);
    const auto it = image_index_.find(std::string(name));
    if (it == image_index_.end()) return Error::from_errno(ENOENT, "image '" + std::string(name) + "'");
    image = images_[it->second].get();  // images are never removed
  }
  std::unordered_set<Digest, DigestHash> blobs;
  for (uint32_t k = 0; k < image->manifest.blob_count(); ++k) {
    PAGERFS_TRY(record, image->manifest.blob_at(k));
    blobs.insert(record.digest);
  }
  return blobs;
}

uint64_t MountView::image_entry_errors() const {
  ReaderLock lock(mu_);
  uint64_t n = 0;
  for (const auto& image : images_) n += image ? image->manifest.entry_errors() : 0;
  return n;
}

uint64_t MountView::image_entry_count() const {
  ReaderLock lock(mu_);
  uint64_t n = 0;
  for (const auto& image : images_) n += image ? image->manifest.size() : 0;
  return n;
}

const MountView::Image* MountView::image_of(fuse_ino_t ino) const {
  const uint64_t number = ino >> kEntryBits;
  if (number == 0 || number > images_.size()) return nullptr;
  const Image* image = images_[number - 1].get();  // null: a predecessor's image that changed
  return image != nullptr && (ino & kEntryMask) < image->manifest.size() ? image : nullptr;
}

Result<MountView::Node> MountView::node(fuse_ino_t ino) const {
  if (is_fixed_dir(ino)) return Node{};
  auto unknown = [&] { return Error::from_errno(ENOENT, "inode " + std::to_string(ino)); };
  const Image* image = nullptr;
  {
    ReaderLock lock(mu_);
    if ((ino & kBlobBit) != 0) {
      auto it = blobs_.find(ino);
      if (it == blobs_.end()) return unknown();
      return Node{.kind = Node::Kind::blob,
                  .digest = it->second.digest,
                  .content = it->second.packed,
                  .image = nullptr,
                  .entry = 0};
    }
    image = image_of(ino);
  }
  if (!image) return unknown();
  const image::Manifest& m = image->manifest;
  auto entry = m.resolve(static_cast<uint32_t>(ino & kEntryMask));
  if (!entry) return failed(*image, entry.error());
  auto e = m.entry(entry.value());
  if (!e) return failed(*image, e.error());
  if (e.value().type == image::EntryType::file) {
    auto content = m.content(e.value());
    if (!content) return failed(*image, content.error());
    return Node{.kind = Node::Kind::image_file,
                .digest = content.value().digest,
                .content = content.value(),
                .image = image,
                .entry = entry.value()};
  }
  return Node{.kind = Node::Kind::image_entry,
              .digest = Digest(),
              .content = std::nullopt,
              .image = image,
              .entry = entry.value()};
}

bool MountView::is_dir(fuse_ino_t ino) const {
  if (is_fixed_dir(ino)) return true;
  const auto n = node(ino);
  if (!n || n.value().kind != Node::Kind::image_entry) return false;
  const auto e = n.value().image->manifest.entry(n.value().entry);
  return e && e.value().type == image::EntryType::directory;
}

Result<fuse_ino_t> MountView::image_entry_ino(const Image& image, uint32_t entry) const {
  auto target = image.manifest.resolve(entry);
  if (!target) return failed(image, target.error());
  return image.base | target.value();
}

Result<std::optional<fuse_ino_t>> MountView::lookup(fuse_ino_t parent, std::string_view name) const {
  using Found = std::optional<fuse_ino_t>;
  if (name == "." || name == "..") return Found();  // the kernel resolves these itself
  switch (parent) {
    case kRoot:
      if (name == "blobs") return Found(kBlobsDir);
      if (name == "images") return Found(kImagesDir);
      return Found();
    case kBlobsDir:
      if (name == "sha256") return Found(kShaDir);
      return Found();
    case kShaDir: {
      if (!Digest::is_canonical_hex(name)) return Found();
      const Digest digest = Digest::parse(name).value();
      ReaderLock lock(mu_);
      auto it = blob_inos_.find(digest);
      if (it == blob_inos_.end()) return Found();
      return Found(it->second);
    }
    case kImagesDir: {
      ReaderLock lock(mu_);
      auto it = image_index_.find(std::string(name));
      if (it == image_index_.end()) return Found();
      return Found(images_[it->second]->base);
    }
    default:
      break;
  }
  const Image* image = nullptr;
  {
    ReaderLock lock(mu_);
    image = image_of(parent);
  }
  if (!image) return Found();
  const auto dir = static_cast<uint32_t>(parent & kEntryMask);
  auto e = image->manifest.entry(dir);
  if (!e) return failed(*image, e.error());
  if (e.value().type != image::EntryType::directory) return Found();
  auto child = image->manifest.find_child(dir, name);
  if (!child) return failed(*image, child.error());
  if (!child.value()) return Found();
  PAGERFS_TRY(ino, image_entry_ino(*image, *child.value()));
  return Found(ino);
}

Result<std::optional<fuse_ino_t>> MountView::resolve(std::string_view path) const {
  fuse_ino_t ino = kRoot;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    const std::string_view name = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
    if (name.empty()) continue;  // "a//b", a trailing '/'
    PAGERFS_TRY(next, lookup(ino, name));
    if (!next) return next;
    ino = *next;
  }
  return std::optional<fuse_ino_t>(ino);
}

Result<fuse_ino_t> MountView::parent_of(fuse_ino_t dir) const {
  switch (dir) {
    case kRoot:
    case kBlobsDir:
    case kImagesDir:
      return kRoot;
    case kShaDir:
      return kBlobsDir;
    default:
      break;
  }
  const Image* image = nullptr;
  {
    ReaderLock lock(mu_);
    image = image_of(dir);
  }
  if (!image) return kRoot;
  const auto entry = static_cast<uint32_t>(dir & kEntryMask);
  if (entry == 0) return kImagesDir;
  auto e = image->manifest.entry(entry);
  if (!e) return failed(*image, e.error());
  return image->base | e.value().parent;
}

Result<struct stat> MountView::image_attributes(const Image& image, uint32_t entry, fuse_ino_t ino) const {
  const image::Manifest& m = image.manifest;
  auto target = m.resolve(entry);
  if (!target) return failed(image, target.error());
  auto decoded = m.entry(target.value());
  if (!decoded) return failed(image, decoded.error());
  const image::Entry& e = decoded.value();
  struct stat st {};
  st.st_ino = ino;
  st.st_mode = e.mode;
  st.st_nlink = e.nlink;
  st.st_uid = e.uid;
  st.st_gid = e.gid;
  st.st_mtim = {static_cast<time_t>(e.mtime_sec), static_cast<long>(e.mtime_nsec)};
  st.st_ctim = st.st_atim = st.st_mtim;
  st.st_blksize = 128 * 1024;  // invites large reads (cat, cp size their buffers by it)
  switch (e.type) {
    case image::EntryType::file:       // content bytes
    case image::EntryType::symlink:    // target length
    case image::EntryType::directory:  // the source's st_size
      st.st_size = static_cast<off_t>(e.size);  // < 2^63: Manifest::parse checks
      break;
    case image::EntryType::special:
      st.st_rdev = static_cast<dev_t>(e.ref);
      break;
    case image::EntryType::hardlink:
      break;  // resolved above
  }
  st.st_blocks = MountView::blocks_of(static_cast<uint64_t>(st.st_size));
  return st;
}

Result<std::vector<MountView::Entry>> MountView::list(fuse_ino_t dir, size_t offset, size_t max) const {
  std::vector<Entry> out;
  PAGERFS_TRY(parent, parent_of(dir));
  auto emit = [&](size_t position, auto make) {
    if (position >= offset && out.size() < max) out.push_back(make());
  };
  emit(0, [&] { return Entry{".", dir, S_IFDIR}; });
  emit(1, [&] { return Entry{"..", parent, S_IFDIR}; });
  size_t position = 2;
  switch (dir) {
    case kRoot:
      emit(position++, [] { return Entry{"blobs", kBlobsDir, S_IFDIR}; });
      emit(position++, [] { return Entry{"images", kImagesDir, S_IFDIR}; });
      return out;
    case kBlobsDir:
      emit(position++, [] { return Entry{"sha256", kShaDir, S_IFDIR}; });
      return out;
    case kShaDir:
      return out;  // the store's directory, streamed by Filesystem
    case kImagesDir: {
      ReaderLock lock(mu_);
      for (size_t i = offset > position ? offset - position : 0; i < images_.size() && out.size() < max; ++i) {
        if (images_[i]) out.push_back({images_[i]->name, images_[i]->base, S_IFDIR});
      }
      return out;
    }
    default:
      break;
  }
  const Image* image = nullptr;
  {
    ReaderLock lock(mu_);
    image = image_of(dir);
  }
  if (!image) return out;
  const image::Manifest& m = image->manifest;
  auto children = m.children(static_cast<uint32_t>(dir & kEntryMask));
  if (!children) return failed(*image, children.error());
  const auto [first, count] = children.value();
  for (size_t i = offset > position ? offset - position : 0; i < count && out.size() < max; ++i) {
    const uint32_t child = first + static_cast<uint32_t>(i);
    auto e = m.entry(child);
    if (!e) return failed(*image, e.error());
    if (e.value().parent != (dir & kEntryMask)) {
      return failed(*image, Error(errc::corrupt_blob, "image manifest: entry " + std::to_string(child) +
                                                          " is in the child slice of another directory"));
    }
    PAGERFS_TRY(ino, image_entry_ino(*image, child));
    PAGERFS_TRY(type, type_bits(*image, child));
    out.push_back({std::string(e.value().name), ino, type});
  }
  return out;
}

}  // namespace pagerfs
