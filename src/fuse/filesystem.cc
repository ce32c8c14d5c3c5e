#include "fuse/filesystem.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

#include <cerrno>
#include <cfloat>
#include <cstring>

#include "fuse/session_io.h"
#include "util/safe_open.h"

namespace pagerfs {
namespace {

constexpr double kForever = DBL_MAX;  // content is immutable

}  // namespace

Filesystem::Filesystem(Store store, std::shared_ptr<LayerStack> stack, std::string control_path, uint64_t readahead,
                       std::shared_ptr<spdlog::logger> logger)
    : store_(std::move(store)), stack_(std::move(stack)),
      control_path_(std::move(control_path)), readahead_(readahead), logger_(std::move(logger)),
      catalog_(store_, ImageCatalog::Options{.on_failure = [this](const Error& error) {
                 uint64_t suppressed = 0;
                 if (!image_log_limit_.allow(&suppressed)) return;
                 logger_->warn("{} (image left out{})", error.message(),
                               suppressed ? ", " + std::to_string(suppressed) + " more image failure(s) not logged"
                                          : "");
               }}) {
  ::stat(store_.blobs_dir().c_str(), &store_stat_);
  view_.set_error_log([this](const MountView::Image& image, const Error& error) {
    logger_->error("image '{}': {} (this image's further malformed entries are counted in "
                   "image_entry_errors, not logged)", image.name, error.message());
  });
}

Filesystem::~Filesystem() = default;

Filesystem::BlobDirStream::~BlobDirStream() {
  MutexLock lock(mu);
  if (dir != nullptr) ::closedir(dir);
}

void Filesystem::count(Op op, std::chrono::nanoseconds elapsed, bool failed) {
  OpStats& s = ops_[static_cast<size_t>(op)];
  s.calls.fetch_add(1, std::memory_order_relaxed);
  if (failed) s.errors.fetch_add(1, std::memory_order_relaxed);
  s.latency.record(elapsed);
}

void Filesystem::init(fuse_conn_info* conn) {
  // Many reads in flight: the default of 12 background requests throttles
  // the kernel's read-ahead and mmap faults of several readers.
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  conn->max_readahead = static_cast<unsigned>(std::min<uint64_t>(readahead_, 1 << 20));
  conn->want &= ~static_cast<unsigned>(FUSE_CAP_AUTO_INVAL_DATA);  // content never changes
}

Result<Filesystem::BlobInfo> Filesystem::blob_info(const Digest& digest) {
  {
    MutexLock lock(info_mu_);
    if (const BlobInfo* info = info_.get(digest)) return *info;
  }
  // The header alone (128 bytes through the layer stack) gives the geometry.
  PAGERFS_TRY(size, stack_->blob_size(digest));
  blob_header_reads_.fetch_add(1, std::memory_order_relaxed);
  PAGERFS_TRY(header, read_blob_header(*stack_, {digest, size}));
  BlobInfo info;
  info.byte_size = header.byte_size;
  info.chunk_size = header.chunk_size;
  info.stored_size = size;
  struct stat st {};
  if (::stat(store_.blob_path(digest).c_str(), &st) != 0) st = store_stat_;  // served from a cache
  info.mtime = st.st_mtim;
  MutexLock lock(info_mu_);
  info_.insert(digest, info, 1, [](Digest&&, BlobInfo&&, uint64_t) {});
  return info;
}

Result<struct stat> Filesystem::attributes(fuse_ino_t ino) {
  PAGERFS_TRY(node, view_.node(ino));
  struct stat st {};
  st.st_ino = ino;
  st.st_blksize = 128 * 1024;  // invites large reads (cat, cp size their buffers by it)
  switch (node.kind) {
    case MountView::Node::Kind::fixed_dir:
      // blobs/ holds every file of every image, the most private ones too:
      // only the mount's owner (and root) may enter, whoever owns the
      // store's files (a store unpacked from elsewhere may carry any uid).
      // Images are checked entry by entry against their own modes.
      st.st_mode = S_IFDIR | (ino == MountView::kBlobsDir || ino == MountView::kShaDir ? 0500 : 0555);
      // 2 + subdirectories: find(1) relies on it.
      st.st_nlink = ino == MountView::kRoot        ? 4
                    : ino == MountView::kBlobsDir  ? 3
                    : ino == MountView::kImagesDir ? 2 + view_.image_count()
                                                   : 2;
      st.st_uid = owner_uid_;
      st.st_gid = owner_gid_;
      st.st_mtim = store_stat_.st_mtim;
      st.st_ctim = st.st_atim = st.st_mtim;
      return st;
    case MountView::Node::Kind::image_file:
    case MountView::Node::Kind::image_entry:
      return view_.image_attributes(*node.image, node.entry, ino);
    case MountView::Node::Kind::blob:
      break;
  }
  if (node.content) {
    // A content packed into another blob: its own bytes, owner-only.
    st.st_mode = S_IFREG | 0400;
    st.st_nlink = 1;
    st.st_size = static_cast<off_t>(node.content->length);
    st.st_blocks = MountView::blocks_of(node.content->length);
    st.st_uid = owner_uid_;
    st.st_gid = owner_gid_;
    st.st_mtim = st.st_ctim = st.st_atim = store_stat_.st_mtim;
    return st;
  }
  PAGERFS_TRY(info, blob_info(node.digest));
  st.st_mode = S_IFREG | 0400;  // owner-only, like blobs/ itself
  st.st_nlink = 1;
  st.st_size = static_cast<off_t>(info.byte_size);
  st.st_blocks = MountView::blocks_of(info.stored_size);  // what it costs on disk
  st.st_uid = owner_uid_;
  st.st_gid = owner_gid_;
  st.st_mtim = st.st_ctim = st.st_atim = info.mtime;
  return st;
}

void Filesystem::lookup_blob(fuse_req_t req, const char* name) {
  // Not a blob name, or a blob the store does not hold: no timeout, so a
  // blob packed later is found then.
  if (!Digest::is_canonical_hex(name)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  const Digest digest = Digest::parse(name).value();
  std::optional<image::Content> packed;
  if (!view_.has_blob(digest)) {
    // A name the store has but cannot serve (a FIFO, a symlink) is an I/O
    // error, logged; only a missing one is ENOENT.
    auto size = stack_->blob_size(digest);
    if (!size && to_errno(size.error()) == ENOENT) {
      // A content packed into another blob? The images' content tables say:
      // those loaded first, then every image (a miss lists images/).
      auto found = view_.find_packed(digest);
      if (found && !found.value()) {
        load_images();
        found = view_.find_packed(digest);
      }
      if (!found) {
        fuse_reply_err(req, to_errno(found.error()));  // logged once per image by the view
        return;
      }
      packed = found.value();
    }
    if (!size && !packed) {
      const int err = to_errno(size.error());
      if (err != ENOENT) logger_->warn("lookup {}: {}", name, size.error().message());
      fuse_reply_err(req, err);
      return;
    }
  }
  // One kernel reference per reply naming the inode: FORGET gives it back.
  const fuse_ino_t ino = view_.hold_blob(digest, std::move(packed));
  auto st = attributes(ino);
  if (!st) {
    view_.forget(ino, 1);
    logger_->warn("lookup {}: {}", name, st.error().message());
    fuse_reply_err(req, to_errno(st.error()));
    return;
  }
  fuse_entry_param e{};
  e.ino = ino;
  e.attr = st.value();
  e.attr_timeout = kForever;
  e.entry_timeout = kForever;
  if (fuse_reply_entry(req, &e) != 0) view_.forget(ino, 1);  // the kernel never got it
}

void Filesystem::forget(fuse_ino_t ino, uint64_t nlookup) { view_.forget(ino, nlookup); }

void Filesystem::lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (parent == MountView::kShaDir) {
    lookup_blob(req, name);
    return;
  }
  auto found = view_.lookup(parent, name);
  if (!found) {
    fuse_reply_err(req, to_errno(found.error()));  // logged once per image by the view
    return;
  }
  std::optional<fuse_ino_t> ino = found.value();
  if (!ino && parent == MountView::kImagesDir) {
    auto late = load_late_image(name);
    if (!late) {
      fuse_reply_err(req, EIO);  // logged by load_late_image
      return;
    }
    ino = late.value();
  }
  if (!ino) {
    if (MountView::is_fixed_dir(parent)) {
      // No timeout: a blob or an image added to the store later is found then.
      fuse_reply_err(req, ENOENT);
    } else {
      // An image never changes while mounted: its missing names stay missing.
      fuse_entry_param negative{};
      negative.entry_timeout = kForever;
      fuse_reply_entry(req, &negative);
    }
    return;
  }
  auto st = attributes(*ino);
  if (!st) {
    logger_->warn("lookup {}: {}", name, st.error().message());
    fuse_reply_err(req, to_errno(st.error()));
    return;
  }
  fuse_entry_param e{};
  e.ino = *ino;
  e.attr = st.value();
  e.attr_timeout = kForever;
  e.entry_timeout = kForever;
  fuse_reply_entry(req, &e);
}

void Filesystem::getattr(fuse_req_t req, fuse_ino_t ino) {
  auto st = attributes(ino);
  if (!st) {
    fuse_reply_err(req, to_errno(st.error()));
    return;
  }
  fuse_reply_attr(req, &st.value(), kForever);
}

void Filesystem::readlink(fuse_req_t req, fuse_ino_t ino) {
  const auto node = view_.node(ino);
  if (!node || node.value().kind != MountView::Node::Kind::image_entry) {
    fuse_reply_err(req, node ? EINVAL : to_errno(node.error()));
    return;
  }
  const image::Manifest& m = node.value().image->manifest;
  const auto entry = m.entry(node.value().entry);
  if (!entry) {
    fuse_reply_err(req, to_errno(entry.error()));
    return;
  }
  const image::Entry& e = entry.value();
  if (e.type != image::EntryType::symlink) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  fuse_reply_readlink(req, std::string(m.symlink_target(e)).c_str());
}

void Filesystem::open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  const auto found = view_.node(ino);
  if (!found) {
    fuse_reply_err(req, to_errno(found.error()));
    return;
  }
  const MountView::Node& node = found.value();
  if (node.kind == MountView::Node::Kind::fixed_dir || node.kind == MountView::Node::Kind::image_entry) {
    // Directories are opened with opendir; symlinks and special files never
    // reach open.
    fuse_reply_err(req, view_.is_dir(ino) ? EISDIR : EINVAL);
    return;
  }
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC) != 0) {
    fuse_reply_err(req, EROFS);
    return;
  }
  auto handle = open_handle(ino, node);
  if (!handle) {
    fuse_reply_err(req, to_errno(handle.error()));
    return;
  }
  // The handle holds the pager state; release() drops it (on_zero_children).
  const uint64_t fh = next_fh_.fetch_add(1, std::memory_order_relaxed);
  fi->fh = fh;
  fi->keep_cache = 1;
  fi->noflush = 1;
  // __FMODE_EXEC (not in the UAPI headers): the kernel opens a file to execute it.
  constexpr int kExecOpen = 040;
  handle.value()->mode = begin_open(ino, node, *handle.value(), (fi->flags & kExecOpen) != 0);
  const std::optional<PassthroughOpens::Mode> mode = handle.value()->mode;
  {
    MutexLock lock(handles_mu_);
    handles_.emplace(fh, std::move(handle).value());
  }
  const int sent = mode && mode->passthrough() ? reply_open_passthrough(req, fi, mode->backing_id)
                                               : fuse_reply_open(req, fi);
  if (sent == 0) return;
  std::unique_ptr<Handle> unsent;
  {
    MutexLock lock(handles_mu_);
    auto it = handles_.find(fh);
    if (sent > 0) {
      // Sent, but without passthrough (logged): the kernel has a cached open
      // this server cannot count as one.
      it->second->mode.reset();
    } else {
      unsent = std::move(it->second);  // the kernel never got it
      handles_.erase(it);
    }
  }
  end_open(ino, mode);
}

Result<std::unique_ptr<Filesystem::Handle>> Filesystem::open_handle(fuse_ino_t ino, const MountView::Node& node) {
  // An image file's blob is anchored by the table digest its manifest
  // records (none for a v1 manifest): a blob replaced by a self-consistent
  // forgery fails here, at open.
  auto blob = node.content ? pager_->open(node.content->blob, node.content->anchor())
                           : pager_->open(node.digest);
  uint64_t offset = 0;
  uint64_t length = 0;
  if (blob) {
    const uint64_t byte_size = blob.value()->byte_size();
    offset = node.content ? node.content->offset : 0;
    length = node.content ? node.content->length : byte_size;
    // The manifest's size is what stat showed: a whole blob of another size,
    // or a pack too short for the range, would be read cut or padded.
    const bool whole = !node.content || !node.content->packed();
    if (whole ? byte_size != length : offset > byte_size || length > byte_size - offset) {
      const std::string where = node.image ? "image '" + node.image->name + "': '" +
                                                 node.image->manifest.path(node.entry) + "'"
                                           : "content " + node.digest.str();
      blob = Error(errc::corrupt_blob, where + " has " + std::to_string(length) + " bytes at " +
                                           std::to_string(offset) + ", its blob " + blob.value()->digest().str() +
                                           " " + std::to_string(byte_size));
    }
  }
  if (!blob && node.image && blob.error().code() == std::errc::no_such_file_or_directory) {
    // The image names it, so it should be there: the store is damaged (the
    // image was loaded without asking for its blobs).
    blob = Error(errc::corrupt_blob, "image '" + node.image->name + "': '" + node.image->manifest.path(node.entry) +
                                         "': blob " + node.content->blob.str() + " is missing from the store");
  }
  if (!blob) {
    logger_->warn("open inode {}: {}", ino, blob.error().message());
    return blob.error();
  }
  return std::make_unique<Handle>(Handle{std::move(blob).value(), offset, length, std::nullopt, nullptr});
}

Filesystem::Handle* Filesystem::find_handle(fuse_ino_t ino, uint64_t fh) {
  {
    MutexLock lock(handles_mu_);
    if (auto it = handles_.find(fh); it != handles_.end()) return it->second.get();
  }
  // A handle this process never made: the kernel got it from a predecessor
  // on this connection (takeover). It is opened again, under the same number.
  auto found = view_.node(ino);
  if (!found || (found.value().kind != MountView::Node::Kind::blob &&
                 found.value().kind != MountView::Node::Kind::image_file)) {
    logger_->warn("inode {}: file handle {} is unknown, and so is the file", ino, fh);
    return nullptr;
  }
  auto handle = open_handle(ino, found.value());
  if (!handle) return nullptr;
  inherited_handles_.fetch_add(1, std::memory_order_relaxed);
  MutexLock lock(handles_mu_);
  return handles_.try_emplace(fh, std::move(handle).value()).first->second.get();  // a racing thread's, if first
}

void Filesystem::release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  std::unique_ptr<Handle> handle;
  {
    MutexLock lock(handles_mu_);
    if (auto it = handles_.find(fi->fh); it != handles_.end()) {
      handle = std::move(it->second);
      handles_.erase(it);
    }
  }
  if (handle) end_open(ino, handle->mode);
  handle.reset();  // outside the lock: the pager's state may take a while to free
  fuse_reply_err(req, 0);
}

void Filesystem::read(ReplyGuard& reply, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi) {
  // The kernel sends no READ after the RELEASE of its handle: the handle
  // outlives this call.
  const Handle* found = find_handle(ino, fi->fh);
  if (found == nullptr) {
    reply.err(EIO);
    return;
  }
  const Handle& handle = *found;
  const PagedBlob& blob = *handle.blob;
  const uint64_t length = handle.length;
  auto send = [&](Pager::Pieces pieces) {
    // Gathered straight from the decoded chunks. The pager pads the last page
    // with zeros, and a pack holds the next file there: the file ends at
    // `length`, so nothing past it is sent.
    const uint64_t off = static_cast<uint64_t>(offset);
    uint64_t left = off >= length ? 0 : length - off;
    std::vector<iovec> iov;
    iov.reserve(pieces.size());
    for (const auto piece : pieces) {
      if (left == 0) break;
      const size_t n = static_cast<size_t>(std::min<uint64_t>(piece.size(), left));
      iov.push_back({const_cast<std::byte*>(piece.data()), n});  // iovec is not const-correct
      left -= n;
    }
    reply.iov(iov.data(), static_cast<int>(iov.size()));
  };
  // The rest of the window goes to the page cache, from the supplier's
  // thread. This runs after the reply, so it must not throw: a copy that
  // cannot be made is dropped and counted (offer is noexcept).
  // `at` is a position in the blob; the page cache is the file's: only the
  // file's own pages are pushed (from a page boundary of the file to its
  // end; the kernel zero-fills the last page), nothing of a neighbour in a
  // pack, and nothing past the end, which would grow the file's size.
  const uint64_t base = handle.offset;
  // By value: a RELEASE may free the handle, and the blob with it, once the
  // reply is sent, before the supply runs.
  const Digest digest = blob.digest();
  const std::shared_ptr<WholeRead> whole = handle.whole_read;
  auto supply = [&, base, length, digest](uint64_t at, std::span<const std::byte> data) noexcept {
    constexpr uint64_t kPage = 4096;
    uint64_t begin = at;
    uint64_t end = at + data.size();
    begin = std::max(begin, base);
    end = std::min(end, base + length);
    if (begin >= end) return;
    uint64_t file_begin = begin - base;
    const uint64_t aligned = (file_begin + kPage - 1) / kPage * kPage;
    if (aligned >= end - base) return;
    begin += aligned - file_begin;
    file_begin = aligned;
    // Pages pushed to the page cache are read there without a READ: a
    // profile must name them too, or a replay leaves them to the reader.
    recorder_.record(digest, begin, end - begin);
    supplier_.offer(ino, file_begin, data.subspan(begin - at, end - begin));
    if (whole) count_served(*whole, end - begin);
  };
  // page_in does not throw, and returns an error only if `send` did not reply.
  const uint64_t file_offset = static_cast<uint64_t>(offset);
  if (file_offset >= length) {
    reply.iov(nullptr, 0);  // at or past the end: nothing
    return;
  }
  const uint64_t wanted = std::min<uint64_t>(size, length - file_offset);
  recorder_.record(blob.digest(), base + file_offset, wanted);
  auto result = pager_->page_in(blob, base + file_offset, size, send, supply);
  if (result && whole) count_served(*whole, wanted);
  if (!result) {
    logger_->error("read {} at {}: {}", blob.digest().str(), offset, result.error().message());
    reply.err(to_errno(result.error()));
  }
}

void Filesystem::opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (!view_.is_dir(ino)) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  if (ino == MountView::kImagesDir) {
    // Not cached: an image packed after mounting shows in the next listing.
    load_images();
  } else if (ino == MountView::kShaDir) {
    // Nor this one: the store's directory is streamed (a blob packed after
    // mounting shows in the next listing), never held whole in memory.
    auto stream = open_blob_dir_stream();
    if (!stream) {
      fuse_reply_err(req, to_errno(stream.error()));
      return;
    }
    const uint64_t fh = next_fh_.fetch_add(1, std::memory_order_relaxed);
    fi->fh = fh;
    {
      MutexLock lock(handles_mu_);
      dir_streams_.emplace(fh, std::move(stream).value());
    }
    if (fuse_reply_open(req, fi) != 0) {
      MutexLock lock(handles_mu_);
      dir_streams_.erase(fh);
    }
    return;
  } else {
    fi->keep_cache = 1;
    fi->cache_readdir = 1;
  }
  fuse_reply_open(req, fi);
}

Result<std::unique_ptr<Filesystem::BlobDirStream>> Filesystem::open_blob_dir_stream() {
  auto fd = open_directory(store_.blobs_dir());
  DIR* dir = fd ? ::fdopendir(fd.value().get()) : nullptr;
  if (dir == nullptr) {
    Error error = fd ? Error::from_errno(errno, "fdopendir") : fd.error();
    logger_->warn("list blobs: {}", error.message());
    return error;
  }
  (void)fd.value().release();  // the DIR owns it now
  auto stream = std::make_unique<BlobDirStream>();
  MutexLock lock(stream->mu);
  stream->dir = dir;
  return stream;
}

Filesystem::BlobDirStream* Filesystem::find_blob_dir_stream(uint64_t fh) {
  {
    MutexLock lock(handles_mu_);
    if (auto it = dir_streams_.find(fh); it != dir_streams_.end()) return it->second.get();
  }
  // Opened by a predecessor on this connection (takeover): its offsets are
  // telldir() positions of the same directory, which a new stream can seek to.
  auto stream = open_blob_dir_stream();
  if (!stream) return nullptr;
  MutexLock lock(handles_mu_);
  return dir_streams_.try_emplace(fh, std::move(stream).value()).first->second.get();
}

void Filesystem::releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  std::unique_ptr<BlobDirStream> stream;
  {
    MutexLock lock(handles_mu_);
    if (auto it = dir_streams_.find(fi->fh); it != dir_streams_.end()) {
      stream = std::move(it->second);
      dir_streams_.erase(it);
    }
  }
  fuse_reply_err(req, 0);
}

void Filesystem::reply_blob_directory(fuse_req_t req, BlobDirStream& stream, size_t size, off_t offset, bool plus) {
  std::vector<char> buf(size);
  size_t used = 0;
  MutexLock lock(stream.mu);
  // Offset 0 is the start; any other is a telldir() position this stream
  // gave in an earlier reply (the kernel passes back the last one it used).
  if (offset == 0) {
    ::rewinddir(stream.dir);
  } else {
    ::seekdir(stream.dir, static_cast<long>(offset));
  }
  for (;;) {
    errno = 0;
    const dirent* d = ::readdir(stream.dir);
    if (d == nullptr) {
      if (errno != 0 && used == 0) {
        const int err = errno;
        logger_->warn("list blobs: {}", std::strerror(err));
        fuse_reply_err(req, err);
        return;
      }
      break;
    }
    const std::string_view name = d->d_name;
    fuse_ino_t ino = 0;
    mode_t type = S_IFREG;
    if (name == ".") {
      ino = MountView::kShaDir, type = S_IFDIR;
    } else if (name == "..") {
      ino = MountView::kBlobsDir, type = S_IFDIR;
    } else if (Digest::is_canonical_hex(name)) {
      ino = view_.blob_ino(Digest::parse(name).value());  // what LOOKUP gives now
    } else {
      continue;  // temporaries and anything else that is not a blob
    }
    const off_t next = static_cast<off_t>(::telldir(stream.dir));
    size_t need = 0;
    if (!plus) {
      struct stat st {};
      st.st_ino = ino;
      st.st_mode = type;
      need = fuse_add_direntry(req, buf.data() + used, size - used, d->d_name, &st, next);
    } else {
      // A blob's attributes cost a header read: left to LOOKUP (ino 0).
      fuse_entry_param entry{};
      entry.attr.st_ino = ino;
      entry.attr.st_mode = type;
      need = fuse_add_direntry_plus(req, buf.data() + used, size - used, d->d_name, &entry, next);
    }
    if (need > size - used) break;  // the next reply seeks back to it
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void Filesystem::reply_directory(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, bool plus,
                                 fuse_file_info* fi) {
  if (!view_.is_dir(ino)) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  if (ino == MountView::kShaDir && fi != nullptr && fi->fh != 0) {
    BlobDirStream* stream = find_blob_dir_stream(fi->fh);
    if (stream == nullptr) {
      fuse_reply_err(req, EIO);
      return;
    }
    reply_blob_directory(req, *stream, size, offset, plus);
    return;
  }
  std::vector<char> buf(size);
  size_t used = 0;
  size_t position = static_cast<size_t>(offset);
  // An entry takes at least 24 bytes (readdir) or 152 (readdirplus).
  const size_t max_entries = size / (plus ? 152 : 24) + 1;
  auto listed = view_.list(ino, position, max_entries);
  if (!listed) {
    fuse_reply_err(req, to_errno(listed.error()));
    return;
  }
  for (const MountView::Entry& e : listed.value()) {
    const off_t next = static_cast<off_t>(++position);
    size_t need = 0;
    if (!plus) {
      struct stat st {};
      st.st_ino = e.ino;
      st.st_mode = e.type;
      need = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st, next);
    } else {
      fuse_entry_param entry{};
      entry.attr.st_ino = e.ino;
      entry.attr.st_mode = e.type;
      // Attributes that cost no I/O come with the entry; a blob's (its
      // header) and "." and ".." are left to LOOKUP (ino 0: no entry).
      const auto node = view_.node(e.ino);
      const bool cheap = e.name != "." && e.name != ".." && node &&
                         node.value().kind != MountView::Node::Kind::blob;
      if (cheap) {
        if (auto st = attributes(e.ino)) {
          entry.ino = e.ino;
          entry.attr = st.value();
          entry.attr_timeout = kForever;
          entry.entry_timeout = kForever;
        }
      }
      need = fuse_add_direntry_plus(req, buf.data() + used, size - used, e.name.c_str(), &entry, next);
    }
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void Filesystem::readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi) {
  reply_directory(req, ino, size, offset, false, fi);
}

void Filesystem::readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi) {
  reply_directory(req, ino, size, offset, true, fi);
}

void Filesystem::statfs(fuse_req_t req, fuse_ino_t) {
  struct statvfs sv {};
  ::statvfs(store_.blobs_dir().c_str(), &sv);
  struct statvfs out {};
  out.f_bsize = out.f_frsize = 4096;
  out.f_blocks = sv.f_blocks * sv.f_frsize / 4096;
  // The inodes this mount knows: the blobs the kernel holds and the entries
  // of the images loaded (the store is never counted: that would list it).
  out.f_files = view_.blob_inode_count() + view_.image_entry_count() + 4;
  out.f_namemax = 255;
  out.f_flag = ST_RDONLY;
  fuse_reply_statfs(req, &out);
}

}  // namespace pagerfs
