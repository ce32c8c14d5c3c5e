#include "fuse/filesystem.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cfloat>
#include <cstring>

#include "pagerfs/blob_format.h"

namespace pagerfs {
namespace {

constexpr double kForever = DBL_MAX;  // content is immutable
constexpr const char* kXattrDigest = "user.pagerfs.digest";
constexpr const char* kXattrChunkSize = "user.pagerfs.chunk_size";
constexpr const char* kXattrStoredSize = "user.pagerfs.stored_size";
constexpr const char* kXattrControl = "user.pagerfs.control";

const char* op_name(Filesystem::Op op) {
  static constexpr const char* kNames[] = {"lookup", "getattr", "open", "read", "release", "opendir",
                                           "readdir", "statfs", "getxattr", "listxattr", "denied"};
  return kNames[static_cast<size_t>(op)];
}

nlohmann::json histogram_json(const LatencyHistogram::Snapshot& h) {
  return {{"count", h.count}, {"mean_us", h.mean_us()}, {"p50_us", h.quantile_us(0.5)},
          {"p99_us", h.quantile_us(0.99)}};
}

// Replies with an xattr value, or its size when size == 0 (the protocol).
void reply_xattr(fuse_req_t req, const std::string& value, size_t size) {
  if (size == 0) {
    fuse_reply_xattr(req, value.size());
  } else if (size < value.size()) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, value.data(), value.size());
  }
}

}  // namespace

Filesystem::Filesystem(Store store, std::shared_ptr<LayerStack> stack, std::vector<Digest> digests,
                       std::string control_path, uint64_t readahead, std::shared_ptr<spdlog::logger> logger)
    : store_(std::move(store)), stack_(std::move(stack)), view_(std::move(digests)),
      control_path_(std::move(control_path)), readahead_(readahead), logger_(std::move(logger)) {
  ::stat(store_.blobs_dir().c_str(), &store_stat_);
}

Filesystem::~Filesystem() {
  for (Handle* handle : handles_) delete handle;
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

Result<Filesystem::BlobInfo> Filesystem::blob_info(fuse_ino_t ino) {
  {
    std::lock_guard lock(info_mu_);
    if (auto it = info_.find(ino); it != info_.end()) return it->second;
  }
  const std::optional<Digest> digest = view_.digest_of(ino);
  if (!digest) return Error::from_errno(ENOENT, "inode " + std::to_string(ino));
  // The header alone (128 bytes through the layer stack) gives the geometry.
  PAGERFS_TRY(size, stack_->blob_size(*digest));
  std::array<std::byte, format::kHeaderSize> header_bytes{};
  const size_t n = std::min<uint64_t>(size, header_bytes.size());
  PAGERFS_TRYV(stack_->read({*digest, size}, 0, std::span(header_bytes).first(n)));
  auto header = format::decode_header(std::span(header_bytes).first(n), size);
  if (!header) return header.error().with_context(digest->str());
  BlobInfo info;
  info.byte_size = header.value().byte_size;
  info.chunk_size = header.value().chunk_size;
  info.stored_size = size;
  struct stat st {};
  if (::stat(store_.blob_path(*digest).c_str(), &st) != 0) st = store_stat_;  // served from a cache
  info.mtime = st.st_mtim;
  info.uid = st.st_uid;
  info.gid = st.st_gid;
  std::lock_guard lock(info_mu_);
  info_[ino] = info;
  return info;
}

Result<struct stat> Filesystem::attributes(fuse_ino_t ino) {
  struct stat st {};
  st.st_ino = ino;
  st.st_blksize = 128 * 1024;  // invites large reads (cat, cp size their buffers by it)
  if (MountView::is_dir(ino)) {
    st.st_mode = S_IFDIR | 0555;
    st.st_nlink = ino == MountView::kShaDir ? 2 : 3;
    st.st_uid = store_stat_.st_uid;
    st.st_gid = store_stat_.st_gid;
    st.st_mtim = store_stat_.st_mtim;
    st.st_ctim = st.st_atim = st.st_mtim;
    return st;
  }
  PAGERFS_TRY(info, blob_info(ino));
  st.st_mode = S_IFREG | 0444;
  st.st_nlink = 1;
  st.st_size = static_cast<off_t>(info.byte_size);
  st.st_blocks = static_cast<blkcnt_t>((info.stored_size + 511) / 512);  // what it costs on disk
  st.st_uid = info.uid;
  st.st_gid = info.gid;
  st.st_mtim = st.st_ctim = st.st_atim = info.mtime;
  return st;
}

void Filesystem::lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  std::optional<fuse_ino_t> ino = view_.lookup(parent, name);
  if (!ino && parent == MountView::kShaDir && Digest::is_canonical_hex(name)) {
    // Packed after mounting? The store decides.
    const Digest digest = Digest::parse(name).value();
    if (stack_->blob_size(digest)) ino = view_.add(digest);
  }
  if (!ino) {
    // A negative entry with no timeout: a blob packed later is found then.
    fuse_reply_err(req, ENOENT);
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

Result<std::shared_ptr<PagedBlob>> Filesystem::open_blob(fuse_ino_t ino) {
  const std::optional<Digest> digest = view_.digest_of(ino);
  if (!digest) return Error::from_errno(ENOENT, "inode " + std::to_string(ino));
  return pager_->open(*digest);
}

void Filesystem::open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (MountView::is_dir(ino)) {
    fuse_reply_err(req, EISDIR);
    return;
  }
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC) != 0) {
    fuse_reply_err(req, EROFS);
    return;
  }
  auto blob = open_blob(ino);
  if (!blob) {
    logger_->warn("open inode {}: {}", ino, blob.error().message());
    fuse_reply_err(req, to_errno(blob.error()));
    return;
  }
  // The handle holds the pager state; release() drops it (on_zero_children).
  auto handle = std::make_unique<Handle>(std::move(blob).value());
  fi->fh = reinterpret_cast<uint64_t>(handle.get());
  fi->keep_cache = 1;
  fi->noflush = 1;
  {
    std::lock_guard lock(handles_mu_);
    handles_.insert(handle.get());
  }
  if (fuse_reply_open(req, fi) == 0) {
    handle.release();
  } else {
    std::lock_guard lock(handles_mu_);
    handles_.erase(handle.get());
  }
}

void Filesystem::release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  auto* handle = reinterpret_cast<Handle*>(fi->fh);
  {
    std::lock_guard lock(handles_mu_);
    handles_.erase(handle);
  }
  delete handle;
  fuse_reply_err(req, 0);
}

void Filesystem::read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi) {
  const PagedBlob& blob = **reinterpret_cast<Handle*>(fi->fh);
  const uint64_t byte_size = blob.byte_size();
  auto reply = [&](std::span<const std::byte> data) {
    // The pager pads the last page with zeros; the file ends at byte_size.
    const uint64_t off = static_cast<uint64_t>(offset);
    const size_t n = off >= byte_size ? 0 : static_cast<size_t>(std::min<uint64_t>(data.size(), byte_size - off));
    fuse_reply_buf(req, reinterpret_cast<const char*>(data.data()), n);
  };
  // The rest of the window goes to the page cache, from the supplier's thread.
  auto supply = [&](uint64_t at, std::span<const std::byte> data) { supplier_.offer(ino, at, data); };
  auto result = pager_->page_in(blob, static_cast<uint64_t>(offset), size, reply, supply);
  if (!result) {
    logger_->error("read {} at {}: {}", blob.digest().str(), offset, result.error().message());
    fuse_reply_err(req, to_errno(result.error()));
  }
}

void Filesystem::opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (!MountView::is_dir(ino)) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  fi->keep_cache = 1;
  fi->cache_readdir = 1;
  fuse_reply_open(req, fi);
}

void Filesystem::readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info*) {
  if (!MountView::is_dir(ino)) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  std::vector<char> buf(size);
  size_t used = 0;
  size_t position = static_cast<size_t>(offset);
  for (const MountView::Entry& e : view_.list(ino, position, size / 24 + 1)) {
    struct stat st {};
    st.st_ino = e.ino;
    st.st_mode = e.is_dir ? S_IFDIR : S_IFREG;
    const size_t need = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st,
                                          static_cast<off_t>(++position));
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void Filesystem::statfs(fuse_req_t req, fuse_ino_t) {
  struct statvfs sv {};
  ::statvfs(store_.blobs_dir().c_str(), &sv);
  struct statvfs out {};
  out.f_bsize = out.f_frsize = 4096;
  out.f_blocks = sv.f_blocks * sv.f_frsize / 4096;
  out.f_files = view_.blob_count() + 3;
  out.f_namemax = 255;
  out.f_flag = ST_RDONLY;
  fuse_reply_statfs(req, &out);
}

void Filesystem::getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  const std::string key = name;
  if (ino == MountView::kRoot && key == kXattrControl) return reply_xattr(req, control_path_, size);
  const std::optional<Digest> digest = view_.digest_of(ino);
  if (!digest) {
    fuse_reply_err(req, ENODATA);
    return;
  }
  if (key == kXattrDigest) return reply_xattr(req, digest->str(), size);
  if (key == kXattrChunkSize || key == kXattrStoredSize) {
    auto info = blob_info(ino);
    if (!info) {
      fuse_reply_err(req, to_errno(info.error()));
      return;
    }
    const uint64_t v = key == kXattrChunkSize ? info.value().chunk_size : info.value().stored_size;
    return reply_xattr(req, std::to_string(v), size);
  }
  fuse_reply_err(req, ENODATA);
}

void Filesystem::listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  std::string names;
  if (ino == MountView::kRoot) names = std::string(kXattrControl) + '\0';
  if (view_.digest_of(ino)) {
    names = std::string(kXattrDigest) + '\0' + kXattrChunkSize + '\0' + kXattrStoredSize + '\0';
  }
  reply_xattr(req, names, size);
}

nlohmann::json Filesystem::stats_json() const {
  nlohmann::json fuse;
  for (size_t i = 0; i < ops_.size(); ++i) {
    const OpStats& s = ops_[i];
    fuse[op_name(static_cast<Op>(i))] = {{"calls", s.calls.load()}, {"errors", s.errors.load()},
                                         {"latency", histogram_json(s.latency.snapshot())}};
  }
  const PageCacheSupplier::Stats supplied = supplier_.stats();
  fuse["notify_store"] = {{"calls", supplied.stored}, {"bytes", supplied.bytes},
                          {"dropped", supplied.dropped}, {"failures", supplied.failed}};
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& layer : stack_->layers()) {
    const LayerStats::Snapshot s = layer->stats().snapshot();
    layers.push_back({{"type", std::string(layer->type())},
                      {"reads", s.reads},
                      {"sectors_hit", s.sectors_hit},
                      {"sectors_missed", s.sectors_missed},
                      {"bytes_read", s.bytes_read},
                      {"fills", s.fills},
                      {"bytes_filled", s.bytes_filled},
                      {"evictions", s.evictions},
                      {"bytes_evicted", s.bytes_evicted},
                      {"errors", s.errors},
                      {"fill_errors", s.fill_errors},
                      {"bytes_cached", s.bytes_cached},
                      {"read_latency", histogram_json(s.read_latency)}});
  }
  const PagerStats p = pager_->stats();
  nlohmann::json failures = nlohmann::json::object();
  for (const auto& [err, n] : p.failures) failures[std::strerror(err)] = n;
  nlohmann::json pager = {{"faults", p.faults},
                          {"bytes_requested", p.bytes_requested},
                          {"bytes_supplied", p.bytes_supplied},
                          {"chunks_decoded", p.chunks_decoded},
                          {"readahead_chunks", p.readahead_chunks},
                          {"random_faults", p.random_faults},
                          {"chunk_cache_hits", p.chunk_cache_hits},
                          {"chunk_cache_misses", p.chunk_cache_misses},
                          {"coalesced_waits", p.coalesced_waits},
                          {"fetches", p.fetches},
                          {"bytes_fetched", p.bytes_fetched},
                          {"chunk_cache_bytes", p.chunk_cache_bytes},
                          {"open_blobs", p.open_blobs},
                          {"failures", failures},
                          {"decode_latency", histogram_json(p.decode_latency)},
                          {"fault_latency", histogram_json(p.fault_latency)}};
  return {{"store", store_.root()}, {"blobs", view_.blob_count()}, {"fuse", fuse}, {"pager", pager},
          {"layers", layers}};
}

std::string Filesystem::dump() const {
  std::string out = "pagerfs: store " + store_.root() + ", " + std::to_string(view_.blob_count()) + " blob(s)\n";
  out += pager_->dump();
  for (const auto& layer : stack_->layers()) {
    const auto s = layer->stats().snapshot();
    out += "layer " + std::string(layer->type()) + ": " + std::to_string(s.reads) + " reads, " +
           std::to_string(s.errors) + " errors, " + std::to_string(s.bytes_cached) + " bytes cached\n";
  }
  return out;
}

Result<void> Filesystem::prewarm(const std::string& path, uint64_t offset, uint64_t length) {
  std::string_view rel = path;
  while (rel.starts_with('/')) rel.remove_prefix(1);
  if (!rel.starts_with("blobs/sha256/")) {
    return Error(errc::invalid_argument, "'" + path + "' is not a blob in this mount");
  }
  rel.remove_prefix(13);
  PAGERFS_TRY(digest, Digest::parse(rel));
  PAGERFS_TRY(blob, pager_->open(digest));
  const uint64_t end = range::saturating_add(offset, length);
  return pager_->prewarm(*blob, {{offset, std::min(end, blob->byte_size())}});
}

Result<void> Filesystem::drop_caches() {
  pager_->drop_chunk_cache();
  return stack_->drop_caches();
}

}  // namespace pagerfs
