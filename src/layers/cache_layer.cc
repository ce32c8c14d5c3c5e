// The cache layer itself: which blobs and extents it holds, its budget, and
// the Layer calls. The files of one blob and their format are in
// cached_blob.{h,cc}.
#include "pagerfs/layers/cache_layer.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "layers/cached_blob.h"
#include "util/directory.h"
#include "util/fd_cache.h"
#include "util/lru_cache.h"
#include "util/mutex.h"
#include "util/posix_io.h"
#include "util/safe_open.h"
#include "util/unique_fd.h"

namespace pagerfs {
namespace {

using cache_disk::CachedBlob;
using cache_disk::kAbsent;
using cache_disk::kPending;
using cache_disk::kVersionText;
using cache_disk::sector_checksum;

// One extent of one cached blob: the unit of eviction. The blob outlives its
// entry: forget_blob() removes a blob's extents before dropping it.
struct ExtentRef {
  CachedBlob* blob;
  uint64_t extent;
  bool operator==(const ExtentRef&) const = default;
};

struct ExtentRefHash {
  size_t operator()(const ExtentRef& r) const noexcept {
    return std::hash<const void*>{}(r.blob) ^ (r.extent * 0x9e3779b97f4a7c15ull);
  }
};

// Thread safety: every Layer call may come from any thread. mu_ guards the
// index of blobs, the extent order and the byte count; a blob's sector
// entries are atomics, read and claimed without it (cached_blob.h), and the
// bytes are read and written without it. Lock order: mu_, then the FdCache's
// own lock (evictions open files with mu_ held; fds_ never calls back).
class CacheLayer final : public Layer {
 public:
  CacheLayer(std::string dir, const CacheLayerOptions& options, std::shared_ptr<spdlog::logger> logger)
      : dir_(std::move(dir)), blobs_dir_(dir_ + "/blobs"), options_(options),
        logger_(logger ? std::move(logger) : spdlog::default_logger()),
        fds_(options.max_open_files) {}

  Result<void> init() EXCLUDES(mu_);

  std::string_view type() const noexcept override { return "cache"; }
  uint32_t sector_size() const noexcept override { return options_.sector_size; }
  bool is_read_cache() const noexcept override { return true; }

  Result<std::optional<uint64_t>> blob_size(const Digest& digest) override EXCLUDES(mu_) {
    MutexLock lock(mu_);
    auto it = blobs_.find(digest);
    if (it == blobs_.end()) return std::optional<uint64_t>();
    return std::optional<uint64_t>(it->second->size);
  }

  Result<void> read(const BlobExtent& blob, std::span<std::byte> out, SectorMarker& marker) override EXCLUDES(mu_);
  Result<void> write_no_overwrite(const BlobExtent& blob, uint64_t first_sector,
                                  std::span<const std::byte> data) override EXCLUDES(mu_);
  Result<void> invalidate(const BlobExtent& blob, uint64_t first_sector, uint64_t count) override EXCLUDES(mu_);
  Result<void> sync() override EXCLUDES(mu_);
  Result<void> drop() override EXCLUDES(mu_) {
    MutexLock lock(mu_);
    // Extents with fills in progress move to the front and stay; each
    // extent is visited once.
    for (size_t n = extents_.size(); n > 0 && !extents_.empty(); --n) evict_oldest_extent();
    return ok();
  }

 private:
  std::string data_path(const Digest& d) const { return blobs_dir_ + "/" + d.hex() + ".data"; }
  std::string map_path(const Digest& d) const { return blobs_dir_ + "/" + d.hex() + ".map"; }
  uint64_t extent_count(uint64_t sectors) const {
    return (sectors + options_.extent_sectors - 1) / options_.extent_sectors;
  }

  std::shared_ptr<CachedBlob> find(const Digest& digest) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    auto it = blobs_.find(digest);
    return it == blobs_.end() ? nullptr : it->second;
  }
  Result<std::shared_ptr<CachedBlob>> find_or_create(const BlobExtent& blob) EXCLUDES(mu_);
  Result<void> load_map(const std::string& hex) EXCLUDES(mu_);

  // One more sector of `extent` is present or pending; the extent is now
  // the most recently used.
  void hold_sector(CachedBlob* b, uint64_t extent) REQUIRES(mu_);
  // One sector of `extent` is no longer held (dropped, or its fill failed).
  void release_sector(CachedBlob* b, uint64_t extent) REQUIRES(mu_);
  // Evicts the stored sectors of an extent that holds sectors; one with
  // pending fills stays, as the most recently used. Returns sectors freed.
  uint64_t evict_extent(CachedBlob* b, uint64_t extent) REQUIRES(mu_);
  void evict_oldest_extent() REQUIRES(mu_) {
    const ExtentRef victim = extents_.oldest_key();
    evict_extent(victim.blob, victim.extent);
  }
  void forget_blob(const Digest& digest) REQUIRES(mu_);
  // The eviction order gained or lost an extent of `b`. Losing the last one
  // retires the blob: out of the index, its files removed (a map of absent
  // sectors over a data file of holes holds nothing). `b` may be freed.
  void extent_added(CachedBlob* b) REQUIRES(mu_) { ++b->extents_held; }
  void extent_removed(CachedBlob* b) REQUIRES(mu_);
  void publish_usage() REQUIRES(mu_) {
    stats().bytes_cached.store(used_, std::memory_order_relaxed);
    stats().blobs_cached.store(blobs_.size(), std::memory_order_relaxed);
  }

  // Drops one sector whose stored bytes failed a check; false if it was
  // evicted or replaced meanwhile.
  bool drop_sector(CachedBlob& b, uint64_t sector, uint64_t expected) EXCLUDES(mu_);

  // Removes a retired blob's files (nothing of it is cached).
  void remove_files(const Digest& digest) REQUIRES(mu_);

  const std::string dir_;
  const std::string blobs_dir_;
  const CacheLayerOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  FdCache fds_;

  Mutex mu_;
  std::unordered_map<Digest, std::shared_ptr<CachedBlob>, DigestHash> blobs_ GUARDED_BY(mu_);
  // The extents that hold present or pending sectors, with how many, least
  // recently used first out. Unbounded: the budget is in bytes, used_, which
  // also counts the pending sectors of a blob forgotten while being filled
  // (their filler releases them).
  LruCache<ExtentRef, uint32_t, ExtentRefHash> extents_ GUARDED_BY(mu_);
  uint64_t used_ GUARDED_BY(mu_) = 0;  // bytes of present and pending sectors
};

Result<void> CacheLayer::init() {
  // DIR is the user's name and may be a symbolic link; DIR/blobs is ours,
  // may not be one, and is owner-only: it holds the bytes of blobs that may
  // be private (files and maps are created 0600).
  for (const std::string& d : {dir_, blobs_dir_}) {
    if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) {
      return Error::from_errno(errno, "cache directory '" + d + "'");
    }
    auto fd = open_directory(d, d == dir_ ? Symlinks::follow : Symlinks::refuse);
    if (!fd) return fd.error().with_context("cache directory");
    if (::access(d.c_str(), R_OK | W_OK | X_OK) != 0) {
      return Error::from_errno(errno, "cache directory '" + d + "' is not usable");
    }
    struct stat st {};
    if (d == blobs_dir_ && ::fstat(fd.value().get(), &st) == 0 && (st.st_mode & 0077) != 0) {
      if (::fchmod(fd.value().get(), 0700) == 0) {
        logger_->info("cache '{}': made '{}' owner-only (mode 0700, was {:04o})", dir_, d, st.st_mode & 07777);
      } else {
        logger_->warn("cache '{}': '{}' has mode {:04o} and cannot be made 0700: {}", dir_, d,
                      st.st_mode & 07777, std::strerror(errno));
      }
    }
  }
  // The version file: a cache of another format version is wiped.
  const std::string version_path = dir_ + "/VERSION";
  std::string version(64, '\0');
  {
    auto fd = open_regular_file(version_path, O_RDONLY);
    const ssize_t n = fd ? ::read(fd.value().get(), version.data(), version.size()) : -1;
    version.resize(n > 0 ? static_cast<size_t>(n) : 0);
    if (!fd && fd.error().code() == errc::not_a_regular_file) {
      logger_->warn("cache '{}': {}, replacing it", dir_, fd.error().message());
    }
  }
  if (version != kVersionText) {
    if (!version.empty()) logger_->warn("cache '{}': unknown format, starting empty", dir_);
    // Remove our files only.
    PAGERFS_TRYV(for_each_entry(blobs_dir_, [&](const DirectoryEntry& e) {
      if (e.name.ends_with(".map") || e.name.ends_with(".data")) {
        ::unlink((blobs_dir_ + "/" + std::string(e.name)).c_str());
      }
    }));
    // A new file, whatever was under the name (a FIFO or a link included).
    if (::unlink(version_path.c_str()) != 0 && errno != ENOENT) {
      return Error::from_errno(errno, "replace '" + version_path + "'");
    }
    PAGERFS_TRY(fd, open_regular_file(version_path, O_WRONLY | O_CREAT | O_EXCL, 0600));
    PAGERFS_TRYV(pwrite_all(fd.get(), std::as_bytes(std::span(kVersionText, sizeof kVersionText - 1)), 0,
                            "'" + version_path + "'"));
  }

  // Index what the cache holds. The map entries are trusted only as far as
  // the checksum check on every read: no rebuild is needed after a crash.
  PAGERFS_TRY(names, list_entry_names(blobs_dir_));
  for (const std::string& name : names) {
    const std::string hex = name.substr(0, name.find('.'));
    if (!Digest::is_canonical_hex(hex)) continue;
    if (name == hex + ".map") {
      if (auto loaded = load_map(hex); !loaded) {
        logger_->warn("cache '{}': dropping {}: {}", dir_, hex, loaded.error().message());
        ::unlink((blobs_dir_ + "/" + hex + ".map").c_str());
        ::unlink((blobs_dir_ + "/" + hex + ".data").c_str());
      }
    } else if (name == hex + ".data" && ::access((blobs_dir_ + "/" + hex + ".map").c_str(), F_OK) != 0) {
      ::unlink((blobs_dir_ + "/" + name).c_str());  // data without a map holds nothing usable
    }
  }
  MutexLock lock(mu_);
  while (used_ > options_.budget_bytes && !extents_.empty()) evict_oldest_extent();
  publish_usage();
  return ok();
}

Result<void> CacheLayer::load_map(const std::string& hex) {
  const Digest digest = Digest::parse(hex).value();
  PAGERFS_TRY(b, cache_disk::load_blob_map(map_path(digest), data_path(digest), digest, options_.sector_size));
  MutexLock lock(mu_);
  if (blobs_.contains(digest)) return ok();
  for (uint64_t e = 0; e < extent_count(b->sectors); ++e) {
    const uint64_t first = e * options_.extent_sectors;
    const uint64_t end = std::min(b->sectors, first + options_.extent_sectors);
    uint32_t held = 0;
    for (uint64_t s = first; s < end; ++s) held += b->entries[s].load(std::memory_order_relaxed) > kPending ? 1 : 0;
    if (held == 0) continue;
    extents_.insert({b.get(), e}, held);
    extent_added(b.get());
    used_ += uint64_t{held} * options_.sector_size;
  }
  if (b->extents_held == 0) {
    remove_files(digest);  // nothing cached: not worth an index entry
    return ok();
  }
  blobs_[b->digest] = b;
  return ok();
}

Result<std::shared_ptr<CachedBlob>> CacheLayer::find_or_create(const BlobExtent& blob) {
  MutexLock lock(mu_);
  if (auto it = blobs_.find(blob.digest); it != blobs_.end()) {
    if (it->second->size == blob.size) return it->second;
    // The store's blob file changed size (repacked): what we hold is stale.
    logger_->warn("cache '{}': {} changed size, dropping it", dir_, blob.digest.str());
    forget_blob(blob.digest);
  }
  const std::string map = map_path(blob.digest), data = data_path(blob.digest);
  fds_.forget(map);
  fds_.forget(data);
  PAGERFS_TRYV(cache_disk::create_blob_files(map, data, options_.sector_size, blob.size));
  auto b = std::make_shared<CachedBlob>(blob.digest, blob.size, blob.sector_count(options_.sector_size));
  blobs_[blob.digest] = b;
  return b;
}

void CacheLayer::forget_blob(const Digest& digest) {
  auto it = blobs_.find(digest);
  if (it == blobs_.end()) return;
  // Out of the index first, so that losing its last extent below does not
  // retire it (its files are about to be replaced by the caller).
  const std::shared_ptr<CachedBlob> keep = std::move(it->second);
  blobs_.erase(it);
  CachedBlob* b = keep.get();
  for (uint64_t e = 0; e < extent_count(b->sectors); ++e) {
    if (extents_.contains({b, e})) evict_extent(b, e);
    // Pending fills: their bytes are released by the filler.
    if (extents_.erase({b, e})) extent_removed(b);
  }
  publish_usage();
}

void CacheLayer::extent_removed(CachedBlob* b) {
  if (--b->extents_held != 0) return;
  auto it = blobs_.find(b->digest);
  if (it == blobs_.end() || it->second.get() != b) return;  // forgotten already
  const Digest digest = b->digest;
  blobs_.erase(it);  // may free *b
  remove_files(digest);
  publish_usage();
}

void CacheLayer::remove_files(const Digest& digest) {
  for (const std::string& path : {map_path(digest), data_path(digest)}) {
    fds_.forget(path);
    ::unlink(path.c_str());
  }
}

void CacheLayer::hold_sector(CachedBlob* b, uint64_t extent) {
  if (uint32_t* held = extents_.get({b, extent})) {
    ++*held;
  } else {
    extents_.insert({b, extent}, 1);
    extent_added(b);
  }
}

void CacheLayer::release_sector(CachedBlob* b, uint64_t extent) {
  used_ -= options_.sector_size;
  // Absent for a blob forgotten meanwhile: only its bytes were still counted.
  if (uint32_t* held = extents_.peek({b, extent}); held && --*held == 0) {
    extents_.erase({b, extent});
    extent_removed(b);
  }
}

uint64_t CacheLayer::evict_extent(CachedBlob* b, uint64_t extent) {
  const uint64_t ss = options_.sector_size;
  const uint64_t first = extent * options_.extent_sectors;
  const uint64_t end = std::min(b->sectors, first + options_.extent_sectors);
  auto map_fd = fds_.open(map_path(b->digest), O_RDWR);
  auto data_fd = fds_.open(data_path(b->digest), O_RDWR);
  const uint64_t freed = cache_disk::evict_sectors(*b, first, end, options_.sector_size,
                                                   map_fd ? map_fd.value()->get() : -1,
                                                   data_fd ? data_fd.value()->get() : -1);
  const ExtentRef ref{b, extent};
  uint32_t& held = *extents_.peek(ref);
  held -= static_cast<uint32_t>(freed);
  used_ -= freed * ss;
  if (freed > 0) {
    stats().evictions.fetch_add(1, std::memory_order_relaxed);
    stats().bytes_evicted.fetch_add(freed * ss, std::memory_order_relaxed);
  }
  publish_usage();
  if (held == 0) {
    extents_.erase(ref);
    extent_removed(b);  // last: may free *b
  } else {
    extents_.touch(ref);  // pending fills: retry later
  }
  return freed;
}

bool CacheLayer::drop_sector(CachedBlob& b, uint64_t sector, uint64_t expected) {
  if (!b.entries[sector].compare_exchange_strong(expected, kAbsent)) return false;  // evicted meanwhile
  MutexLock lock(mu_);
  if (auto map_fd = fds_.open(map_path(b.digest), O_RDWR)) cache_disk::clear_map_entry(map_fd.value()->get(), sector);
  release_sector(&b, sector / options_.extent_sectors);
  publish_usage();
  return true;
}

Result<void> CacheLayer::read(const BlobExtent& blob, std::span<std::byte> out, SectorMarker& marker) {
  std::shared_ptr<CachedBlob> b = find(blob.digest);
  if (!b || b->size != blob.size) return ok();
  const uint64_t ss = options_.sector_size;
  const uint64_t first = marker.first();
  std::shared_ptr<const UniqueFd> fd;
  std::vector<uint64_t> touched;
  for (uint64_t i = 0; i < marker.count();) {
    if (b->entries[first + i].load(std::memory_order_acquire) <= kPending) {
      ++i;
      continue;
    }
    uint64_t j = i + 1;
    while (j < marker.count() && b->entries[first + j].load(std::memory_order_acquire) > kPending) ++j;
    if (!fd) {
      auto opened = fds_.open(data_path(b->digest), O_RDWR);
      // Retired meanwhile (every extent evicted, its files removed): a miss.
      if (!opened && opened.error().code() == std::errc::no_such_file_or_directory) return ok();
      if (!opened) return opened.error();
      fd = opened.value();
    }
    const uint64_t from = i * ss;
    const uint64_t to = std::min<uint64_t>(out.size(), j * ss);
    PAGERFS_TRY(got, pread_some(fd->get(), out.subspan(from, to - from), (first + i) * ss,
                                "'" + data_path(b->digest) + "'"));
    for (uint64_t k = i; k < j; ++k) {
      const uint64_t s_from = k * ss;
      const uint64_t s_to = std::min<uint64_t>(to, s_from + ss);
      const uint64_t expected = b->entries[first + k].load(std::memory_order_acquire);
      if (expected <= kPending) continue;
      if (from + got < s_to ||
          sector_checksum(out.subspan(s_from, s_to - s_from), first + k) != expected) {
        drop_sector(*b, first + k, expected);  // torn, evicted meanwhile, or damaged on disk
        continue;
      }
      marker.mark(first + k);
      const uint64_t extent = (first + k) / options_.extent_sectors;
      if (touched.empty() || touched.back() != extent) touched.push_back(extent);
    }
    i = j;
  }
  if (!touched.empty()) {
    MutexLock lock(mu_);
    if (blobs_.contains(blob.digest) && blobs_[blob.digest] == b) {
      for (uint64_t e : touched) extents_.touch({b.get(), e});
    }
  }
  return ok();
}

Result<void> CacheLayer::write_no_overwrite(const BlobExtent& blob, uint64_t first_sector,
                                            std::span<const std::byte> data) {
  const uint64_t ss = options_.sector_size;
  const uint64_t count = (data.size() + ss - 1) / ss;
  if (count == 0) return ok();
  PAGERFS_TRY(b, find_or_create(blob));
  if (first_sector + count > b->sectors) return Error(errc::invalid_argument, "fill past the end of the blob");

  // Claim the absent sectors; the ones another fill holds or claimed are skipped.
  std::vector<bool> claimed(count, false);
  uint64_t claimed_count = 0;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t expected = kAbsent;
    if (b->entries[first_sector + i].compare_exchange_strong(expected, kPending)) {
      claimed[i] = true;
      ++claimed_count;
    }
  }
  if (claimed_count == 0) return ok();
  auto release = [&](bool accounted) {
    MutexLock lock(mu_);
    for (uint64_t i = 0; i < count; ++i) {
      if (!claimed[i]) continue;
      uint64_t pending = kPending;
      b->entries[first_sector + i].compare_exchange_strong(pending, kAbsent);
      if (accounted) release_sector(b.get(), (first_sector + i) / options_.extent_sectors);
    }
    publish_usage();
  };

  // Make room, least recently used extents first.
  {
    MutexLock lock(mu_);
    const uint64_t needed = claimed_count * ss;
    if (auto it = blobs_.find(b->digest); it == blobs_.end() || it->second != b) {
      // Another fill replaced this blob (its size changed) since we found it:
      // the eviction order must not name a blob the layer no longer holds.
      for (uint64_t i = 0; i < count; ++i) {
        if (claimed[i]) b->entries[first_sector + i].store(kAbsent, std::memory_order_release);
      }
      return ok();
    }
    size_t attempts = extents_.size();
    while (used_ + needed > options_.budget_bytes && !extents_.empty() && attempts-- > 0) evict_oldest_extent();
    if (auto it = blobs_.find(b->digest); used_ + needed > options_.budget_bytes || it == blobs_.end() ||
                                          it->second != b) {
      // Larger than the budget: cache nothing rather than thrash. Or the
      // eviction just retired this very blob (its last extent went): its
      // files are gone; the next fill starts it afresh.
      for (uint64_t i = 0; i < count; ++i) {
        if (claimed[i]) b->entries[first_sector + i].store(kAbsent, std::memory_order_release);
      }
      return ok();
    }
    used_ += needed;
    for (uint64_t i = 0; i < count; ++i) {
      if (claimed[i]) hold_sector(b.get(), (first_sector + i) / options_.extent_sectors);
    }
    publish_usage();
  }

  auto data_fd = fds_.open(data_path(b->digest), O_RDWR);
  auto map_fd = fds_.open(map_path(b->digest), O_RDWR);
  if (!data_fd || !map_fd) {
    release(true);
    return (!data_fd ? data_fd.error() : map_fd.error());
  }
  // Runs of claimed sectors: data first, then the map entries, then publish.
  for (uint64_t i = 0; i < count;) {
    if (!claimed[i]) {
      ++i;
      continue;
    }
    // One extent at most per write, so a disk that fills up keeps what fit.
    uint64_t j = i + 1;
    while (j < count && claimed[j] && (first_sector + j) % options_.extent_sectors != 0) ++j;
    const uint64_t from = i * ss;
    const uint64_t to = std::min<uint64_t>(data.size(), j * ss);
    std::vector<uint64_t> sums(j - i);
    for (uint64_t k = i; k < j; ++k) {
      const uint64_t s_from = k * ss;
      sums[k - i] = sector_checksum(data.subspan(s_from, std::min<uint64_t>(to, s_from + ss) - s_from),
                                    first_sector + k);
    }
    auto wrote = pwrite_all(data_fd.value()->get(), data.subspan(from, to - from), (first_sector + i) * ss,
                            "'" + data_path(b->digest) + "'");
    if (wrote) {
      wrote = cache_disk::write_map_entries(map_fd.value()->get(), first_sector + i, sums,
                                            "'" + map_path(b->digest) + "'");
    }
    if (!wrote) {
      // Sectors before this run are published and stay; release the rest.
      for (uint64_t k = 0; k < i; ++k) claimed[k] = false;
      release(true);
      return wrote.error();
    }
    for (uint64_t k = i; k < j; ++k) {
      b->entries[first_sector + k].store(sums[k - i], std::memory_order_release);
    }
    i = j;
  }
  stats().fills.fetch_add(1, std::memory_order_relaxed);
  stats().bytes_filled.fetch_add(claimed_count * ss, std::memory_order_relaxed);
  return ok();
}

Result<void> CacheLayer::invalidate(const BlobExtent& blob, uint64_t first_sector, uint64_t count) {
  std::shared_ptr<CachedBlob> b = find(blob.digest);
  if (!b || b->size != blob.size || first_sector >= b->sectors) return ok();
  const uint64_t end = std::min(b->sectors, first_sector + count);
  std::shared_ptr<const UniqueFd> data_fd;
  uint64_t dropped = 0;
  for (uint64_t s = first_sector; s < end; ++s) {
    // Pending sectors belong to a fill in progress: its bytes are new ones,
    // not the damaged ones that were served.
    const uint64_t v = b->entries[s].load(std::memory_order_acquire);
    if (v <= kPending) continue;
    // The map entry first (a remount does not serve it again), then the
    // data: its space is freed as eviction frees it.
    if (!drop_sector(*b, s, v)) continue;
    ++dropped;
    if (!data_fd) {
      auto opened = fds_.open(data_path(b->digest), O_RDWR);
      // Retired by this very drop (its last sector): its files are gone.
      if (!opened && opened.error().code() == std::errc::no_such_file_or_directory) break;
      if (!opened) return opened.error();
      data_fd = opened.value();
    }
    cache_disk::punch_sectors(data_fd->get(), s, 1, options_.sector_size);
  }
  stats().sectors_invalidated.fetch_add(dropped, std::memory_order_relaxed);
  return ok();
}

Result<void> CacheLayer::sync() {
  std::vector<std::shared_ptr<CachedBlob>> all;
  {
    MutexLock lock(mu_);
    for (auto& [digest, b] : blobs_) all.push_back(b);
  }
  for (const auto& b : all) {
    for (const std::string& path : {data_path(b->digest), map_path(b->digest)}) {
      auto opened = fds_.open(path, O_RDWR);
      if (!opened && opened.error().code() == std::errc::no_such_file_or_directory) break;  // retired meanwhile
      PAGERFS_TRY(fd, std::move(opened));
      if (::fdatasync(fd->get()) != 0) return Error::from_errno(errno, "sync '" + path + "'");
    }
  }
  return ok();
}

}  // namespace

Result<std::shared_ptr<Layer>> make_cache_layer(const std::string& dir, const CacheLayerOptions& options,
                                                std::shared_ptr<spdlog::logger> logger) {
  if (options.sector_size == 0 || (options.sector_size & (options.sector_size - 1)) != 0 ||
      options.extent_sectors == 0) {
    return Error(errc::invalid_argument, "bad cache geometry");
  }
  auto layer = std::make_shared<CacheLayer>(dir, options, std::move(logger));
  PAGERFS_TRYV(layer->init());
  return std::shared_ptr<Layer>(layer);
}

}  // namespace pagerfs
