// The FUSE file system: the low-level operations over a mount view, the
// layer stack and the pager, with per-operation counters.
//
// Content is immutable, so the kernel may cache everything forever: entry
// and attribute timeouts are DBL_MAX, files keep their page cache across
// opens (keep_cache), and reads are answered through the page cache (no
// direct_io, which would break shared mmap). After each READ reply the rest
// of the decoded read-ahead window is pushed into the page cache with
// fuse_lowlevel_notify_store, so later faults there never reach us.
//
// The code is split by concept: the operations (filesystem.cc), extended
// attributes (filesystem_xattr.cc), ioctls (filesystem_ioctl.cc), what
// appears in the store after mounting (filesystem_late.cc), the control
// commands (filesystem_control.cc) and which opens the kernel serves from a
// backing file itself (filesystem_passthrough.cc).
//
// Thread safety: the operations run concurrently on the session's worker
// threads, the control commands on the control socket's thread; every member
// is either immutable after start() or synchronised. The two mutexes here
// (handles_mu_, info_mu_) are never held together, nor while calling into
// the view, the catalog, the layer stack or the pager (each locks only
// itself), so there is no lock order to keep.
#pragma once

#include <dirent.h>
#include <fuse_lowlevel.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fuse/backing_provider.h"
#include "fuse/mount_view.h"
#include "fuse/page_cache_supplier.h"
#include "fuse/passthrough_opens.h"
#include "fuse/prefetcher.h"
#include "fuse/read_recorder.h"
#include "fuse/reply_guard.h"
#include "pagerfs/layers/layer_stack.h"
#include "pagerfs/pager/pager.h"
#include "pagerfs/store/image_catalog.h"
#include "pagerfs/store/store.h"
#include "util/lru_cache.h"
#include "util/mutex.h"
#include "util/rate_limiter.h"

namespace spdlog {
class logger;
}

namespace pagerfs {

class Filesystem {
 public:
  enum class Op {
    lookup, getattr, readlink, open, read, release, opendir, readdir, readdirplus,
    statfs, getxattr, listxattr, forget, releasedir, ioctl, denied, count
  };

  // Reads nothing of the store: blobs are found on lookup, images on lookup
  // or when images/ is listed.
  Filesystem(Store store, std::shared_ptr<LayerStack> stack, std::string control_path, uint64_t readahead,
             std::shared_ptr<spdlog::logger> logger);
  ~Filesystem();
  Filesystem(const Filesystem&) = delete;
  Filesystem& operator=(const Filesystem&) = delete;

  // Set once, before the session loop starts (after daemonizing: threads).
  void start(fuse_session* session, std::shared_ptr<Pager> pager) {
    pager_ = std::move(pager);
    if (prefetch_mode_ != PrefetchMode::none) prefetcher_ = std::make_unique<Prefetcher>(pager_, prefetch_options_, logger_);
    supplier_.start(session);
  }
  // Stops the prefetcher and the page cache supplier; before the session is destroyed.
  void stop() {
    if (prefetcher_) prefetcher_->stop();
    supplier_.stop();
  }
  Pager& pager() { return *pager_; }
  // Loads every image of the store that the view does not show yet and the
  // catalog finds usable (when images/ is listed; never at mount). A broken image costs that image
  // only: it is left out, logged (rate-limited) and counted in stats, and
  // looking it up fails with EIO.
  void load_images();

  // The operations (fuse_ops.cc routes the table here).
  void init(fuse_conn_info* conn);
  void lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  void getattr(fuse_req_t req, fuse_ino_t ino);
  void readlink(fuse_req_t req, fuse_ino_t ino);
  void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  // Replies through `reply` (reply_guard.h): the data first, then the rest
  // of the window goes to the page cache supplier, which cannot fail it.
  void read(ReplyGuard& reply, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi);
  void release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi);
  // readdir with each entry's attributes: `ls -l`, `find` and `tar` over an
  // image need no LOOKUP per entry.
  void readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi);
  void releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  // The kernel dropped `nlookup` references to `ino`: no reply.
  void forget(fuse_ino_t ino, uint64_t nlookup);
  void statfs(fuse_req_t req, fuse_ino_t ino);
  void getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);
  void listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
  // The inode flags lsattr(1) and overlayfs ask for (none); ENOTTY for any
  // other ioctl (filesystem_ioctl.cc).
  void ioctl(fuse_req_t req, unsigned int cmd, size_t out_size);

  // Counts an operation (and its failure) for stats.
  void count(Op op, std::chrono::nanoseconds elapsed, bool failed);

  // Control commands.
  nlohmann::json stats_json() const;
  std::string dump() const;
  // `path` is relative to the mount root: blobs/sha256/<hex>, images/<name>/<file>.
  Result<void> prewarm(const std::string& path, uint64_t offset, uint64_t length);
  Result<void> drop_caches();
  // Records the reads served from now on (read_recorder.h).
  void start_recording();
  // Ends the recording and returns it as the prefetch profile of image
  // `image` (only the blobs the image names), in the text format; with
  // `save`, it is also written into the store as the image's profile.
  Result<std::string> stop_recording(const std::string& image, bool save);

  // This server is number `generation` on its connection (0: the one that
  // mounted), and records what a successor needs in `journal` (outlives
  // this); before start().
  void set_takeover(TakeoverJournal* journal, uint32_t generation) {
    view_.set_journal(journal);
    journal_ = journal;
    generation_ = generation;
    next_fh_ = (uint64_t{generation} << 40) + 1;
  }
  // Asks the supervisor to replace this server by one running `binary`
  // (absolute; empty: the installed pagerfs); an error if not supervised.
  Result<void> request_upgrade(const std::string& binary);
  // A successor's first step: the images and blob inodes its predecessors
  // handed to the kernel (logged); before start().
  void restore(const TakeoverJournal::Contents& contents);

  // Opens of files `provider` has a backing file for are answered with
  // passthrough when the kernel allows it (session_io.h): the kernel then
  // reads and maps that file itself, and no READ reaches us. Before start();
  // none: every open is served through the pager.
  void set_passthrough(std::shared_ptr<BackingProvider> provider);

  // The store is the mount's own directory of a remote-only store (nothing
  // written there outlives the mount); before start().
  void set_remote_only() { remote_only_ = true; }
  // What to prefetch of an image when it is first used; before start().
  void set_prefetch(PrefetchMode mode, Prefetcher::Options options) {
    prefetch_mode_ = mode;
    prefetch_options_ = options;
  }

 private:
  struct BlobInfo {
    uint64_t byte_size = 0;
    uint32_t chunk_size = 0;
    uint64_t stored_size = 0;  // of the blob file
    struct timespec mtime {};
  };
  struct OpStats {
    std::atomic<uint64_t> calls{0}, errors{0};
    LatencyHistogram latency;
  };

  // A listing of the store's blobs/sha256 in progress (fi->fh of an open
  // blobs/sha256): the FUSE offset of an entry is the stream's telldir()
  // position after it, so a listing resumes where any reply stopped.
  struct BlobDirStream {
    Mutex mu;
    DIR* dir GUARDED_BY(mu) = nullptr;
    ~BlobDirStream();
  };

  Result<BlobInfo> blob_info(const Digest& digest);
  Result<struct stat> attributes(fuse_ino_t ino);
  // An image packed after mounting, if the catalog finds it usable (added to
  // the view); nullopt if none exists. A failure is logged (rate-limited).
  Result<std::optional<fuse_ino_t>> load_late_image(std::string_view name);
  // What the prefetcher is to fetch of image `name` (prefetch_mode_) when
  // it is first used: its profile's ranges of the blobs it names, or all of
  // its blobs. A profile that cannot be read is logged and skipped.
  std::vector<Prefetcher::Task> prefetch_tasks(std::string_view name, const image::Manifest& manifest);
  // Whether the mount can read blob `digest`: in the view, or known to the
  // layer stack (the catalog's question for an image's blobs).
  bool blob_present(const Digest& digest) const;
  // LOOKUP of blobs/sha256/<name>: the store (the layer stack) decides.
  void lookup_blob(fuse_req_t req, const char* name);
  // Fills a directory listing reply; `plus` adds each entry's attributes.
  void reply_directory(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, bool plus, fuse_file_info* fi);
  // The same for blobs/sha256, streamed from the store's directory.
  void reply_blob_directory(fuse_req_t req, BlobDirStream& stream, size_t size, off_t offset, bool plus);

  const Store store_;
  const std::shared_ptr<LayerStack> stack_;
  MountView view_;
  const std::string control_path_;
  const uint64_t readahead_;
  std::shared_ptr<spdlog::logger> logger_;
  std::shared_ptr<Pager> pager_;
  PageCacheSupplier supplier_{16u << 20};  // 32 read-ahead windows: never full in scripts/bench
  struct stat store_stat_ {};
  // The mount's owner (the daemon's effective ids): the owner of the fixed
  // directories and of every blob of blobs/sha256, which are owner-only
  // whatever -o allow_other says.
  const uid_t owner_uid_ = ::geteuid();
  const gid_t owner_gid_ = ::getegid();

  // Bytes served to one cached open (replies and read-ahead pushed), shared
  // with the read-ahead that runs after a reply (the handle may be gone).
  struct WholeRead {
    BackingProvider::OpenFile file;
    std::atomic<uint64_t> served{0};
    std::atomic<bool> noted{false};
  };
  // An open file: the blob it reads and where in it the file's bytes are
  // (a whole blob: [0, byte_size); a packed file: its range of the pack).
  // A passthrough open keeps one too: the kernel should send it no READ,
  // but one that comes is served.
  struct Handle {
    std::shared_ptr<PagedBlob> blob;
    uint64_t offset = 0;
    uint64_t length = 0;
    // How the open was answered, if passthrough_ counts it (not for a
    // handle of a predecessor).
    std::optional<PassthroughOpens::Mode> mode;
    // With passthrough, an open served through the pager counts what it
    // served: once that is the whole file, it is worth a backing file.
    std::shared_ptr<WholeRead> whole_read;
  };
  // Opens what `node` (a blob or an image file) reads; the failure logged.
  Result<std::unique_ptr<Handle>> open_handle(fuse_ino_t ino, const MountView::Node& node);
  // The handle numbered `fh` (fi->fh); one the kernel got from a predecessor
  // on this connection is opened again. Null if that fails (logged).
  Handle* find_handle(fuse_ino_t ino, uint64_t fh) EXCLUDES(handles_mu_);
  // Decides how an open of `ino` is answered (passthrough_opens.h), if
  // passthrough is on; counted until end_open(). filesystem_passthrough.cc.
  std::optional<PassthroughOpens::Mode> begin_open(fuse_ino_t ino, const MountView::Node& node, Handle& handle,
                                                   bool executed);
  // A cached open served `bytes` more: tells the provider once it was the
  // whole file. filesystem_passthrough.cc.
  void count_served(WholeRead& whole, uint64_t bytes);
  void end_open(fuse_ino_t ino, std::optional<PassthroughOpens::Mode> mode);
  // Whether a predecessor on this connection handed `ino` to the kernel: it
  // may have opens live in a mode this server does not know.
  bool inherited(fuse_ino_t ino) const;
  // restore()'s part for them: the inodes in passthrough mode.
  void restore_passthrough(const TakeoverJournal::Contents& contents);
  nlohmann::json passthrough_json() const;
  Result<std::unique_ptr<BlobDirStream>> open_blob_dir_stream();
  BlobDirStream* find_blob_dir_stream(uint64_t fh) EXCLUDES(handles_mu_);

  // Open files and blobs/sha256 listings by number (fi->fh). Numbers are
  // never pointers, and each server of a connection numbers from its own
  // generation << 40 on: a successor recognises the numbers it did not give
  // (takeover).
  Mutex handles_mu_;
  std::unordered_map<uint64_t, std::unique_ptr<Handle>> handles_ GUARDED_BY(handles_mu_);
  std::unordered_map<uint64_t, std::unique_ptr<BlobDirStream>> dir_streams_ GUARDED_BY(handles_mu_);
  std::atomic<uint64_t> next_fh_{1};
  std::atomic<uint64_t> inherited_handles_{0};  // opened again after a takeover
  TakeoverJournal* journal_ = nullptr;  // set before start(); none: not supervised
  uint32_t generation_ = 0;
  // What restore() found the predecessors handed out (inherited()).
  std::unordered_set<fuse_ino_t> inherited_blobs_;
  uint64_t inherited_images_ = 0;  // image numbers below this

  // Passthrough: set before start(); none without.
  std::shared_ptr<BackingProvider> backing_provider_;
  std::unique_ptr<PassthroughOpens> passthrough_;
  std::atomic<bool> passthrough_off_{false};  // the kernel refuses every registration
  std::atomic<bool> passthrough_failure_logged_{false};
  std::atomic<uint64_t> inherited_cached_opens_{0};  // served cached: inherited()

  // Blob geometry from blob headers, the most recently used few: memory
  // stays bounded however many blobs are looked up.
  static constexpr uint64_t kBlobInfoEntries = 4096;
  Mutex info_mu_;
  LruCache<Digest, BlobInfo, DigestHash> info_ GUARDED_BY(info_mu_){kBlobInfoEntries};
  std::atomic<uint64_t> blob_header_reads_{0};

  // Which images are usable (and the images that failed, with their retry
  // policy and counters); failures are logged at most once per 10 s.
  RateLimiter image_log_limit_{std::chrono::seconds(10)};
  ImageCatalog catalog_;

  std::array<OpStats, static_cast<size_t>(Op::count)> ops_;

  ReadRecorder recorder_;
  bool remote_only_ = false;  // set before start()
  PrefetchMode prefetch_mode_ = PrefetchMode::none;  // set before start()
  Prefetcher::Options prefetch_options_;
  std::unique_ptr<Prefetcher> prefetcher_;  // made by start(); none without prefetching
};

}  // namespace pagerfs
