#include "pagerfs/store/image_packer.h"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <thread>
#include <unordered_set>

#include "pagerfs/util/digest.h"
#include "store/tree_scan.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace pagerfs {
namespace {

// Files at least this large are compressed one at a time with every thread;
// smaller ones are packed side by side, one thread each, which keeps both
// cores busy on trees of many small files.
constexpr uint64_t kLargeFile = 32u << 20;

struct Hashed {
  Digest digest;
  uint64_t size = 0;
};

// Hashes what `fd` holds from its current offset to the end.
Result<Hashed> hash_fd(int fd, const std::string& path, std::vector<std::byte>& buffer) {
  auto input = fd_input_stream(fd, path);
  Sha256 sha;
  Hashed out;
  for (;;) {
    PAGERFS_TRY(n, input->read_some(buffer));
    if (n == 0) break;
    sha.update(std::span(buffer).first(n));
    out.size += n;
  }
  out.digest = sha.finish();
  return out;
}

// Shared state of one pack, used by every packing thread: what is guarded
// is written GUARDED_BY(mu_); the rest is set in the constructor (the
// references, whose objects are read concurrently but not written while
// files are packed) or atomic.
//
// Why every digest the manifest names is in the store: a file's entry gets
// either the digest of what Store::pack() returned (stored), or the digest
// its content hashed to. In the second case the digest is in `stored_` if the
// store had it, or was claimed by another file that was to pack it. That
// file may have changed between its hash and its pack, and stored another
// digest instead; so after every file is done, each file whose digest is not
// in `stored_` is packed again, directly, and takes the digest pack()
// returns (see pack_image). The manifest is written only if every digest it
// names is in `stored_`.
class PackState {
 public:
  PackState(const Store& store, const ImagePackOptions& options, TreeScan& scan)
      : store_(store), options_(options), scan_(scan), entries_(scan.entries) {
    progress_.files_total = scan.files.size();
    for (const TreeScan::File& f : scan.files) progress_.bytes_total += f.size;
  }

  // Hashes one file and packs its content unless the store or another file
  // of the tree already has it.
  void process(const TreeScan::File& file, unsigned writer_threads) EXCLUDES(mu_) {
    if (failed_.load(std::memory_order_relaxed)) return;
    auto done = process_file(file, writer_threads);
    MutexLock lock(mu_);
    if (!done && !error_) error_ = done.error().with_context("pack '" + file.source + "'");
    if (!done) failed_ = true;
    ++progress_.files_done;
    progress_.bytes_done += file.size;
    if (options_.on_progress) options_.on_progress(progress_);
  }

  // Packs one file without deduplicating against other files (see above).
  Result<void> repack(const TreeScan::File& file, unsigned writer_threads) EXCLUDES(mu_) {
    auto done = [&]() -> Result<void> {
      PAGERFS_TRY(fd, open_scanned_file(scan_, file));
      PAGERFS_TRY(xattrs, read_fd_xattrs(fd.get(), file.source));
      PAGERFS_TRY(packed, pack_fd(fd.get(), file, writer_threads));
      record(file, packed, std::move(xattrs));
      return ok();
    }();
    if (!done) return done.error().with_context("pack '" + file.source + "'");
    return ok();
  }

  // Whether `digest` is known to be in the store.
  bool stored(const Digest& digest) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return stored_.contains(digest);
  }

  std::optional<Error> error() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return error_;
  }
  uint64_t new_blobs() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return new_blobs_;
  }
  uint64_t new_blob_bytes() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return new_blob_bytes_;
  }

 private:
  Result<void> process_file(const TreeScan::File& file, unsigned writer_threads) EXCLUDES(mu_) {
    thread_local std::vector<std::byte> buffer(1u << 20);
    // One fd for everything read of the file: its xattrs, its hash and the
    // content packed, so all three are of the file the scan saw.
    PAGERFS_TRY(fd, open_scanned_file(scan_, file));
    PAGERFS_TRY(xattrs, read_fd_xattrs(fd.get(), file.source));
    ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    PAGERFS_TRY(hashed, hash_fd(fd.get(), file.source, buffer));
    if (options_.test_hooks.hashed) options_.test_hooks.hashed(file.source);
    bool mine = false;
    {
      MutexLock lock(mu_);
      mine = claimed_.insert(hashed.digest).second;
    }
    if (mine) {
      if (store_.has_blob(hashed.digest)) {
        MutexLock lock(mu_);
        stored_.insert(hashed.digest);
      } else {
        if (::lseek(fd.get(), 0, SEEK_SET) != 0) return Error::from_errno(errno, "seek in '" + file.source + "'");
        // What was packed is what the image names, even if the file changed
        // after it was hashed.
        PAGERFS_TRY(packed, pack_fd(fd.get(), file, writer_threads));
        hashed = packed;
      }
    }
    record(file, hashed, std::move(xattrs));
    return ok();
  }

  // Packs what `fd` holds from its offset as a blob; returns what was stored.
  Result<Hashed> pack_fd(int fd, const TreeScan::File& file, unsigned writer_threads) EXCLUDES(mu_) {
    auto input = fd_input_stream(fd, file.source);
    BlobWriterOptions blob = options_.blob;
    blob.threads = writer_threads;
    blob.on_progress = nullptr;
    PAGERFS_TRY(packed, store_.pack(*input, blob, Store::Durability::deferred));
    const Hashed out{packed.header.digest, packed.header.byte_size};
    MutexLock lock(mu_);
    claimed_.insert(out.digest);
    stored_.insert(out.digest);
    if (!packed.already_present) {
      ++new_blobs_;
      new_blob_bytes_ += packed.file_size;
    }
    return out;
  }

  void record(const TreeScan::File& file, const Hashed& content, std::vector<image::Xattr> xattrs)
      EXCLUDES(mu_) {
    MutexLock lock(mu_);
    image::EntrySpec& entry = entries_[file.entry];
    entry.digest = content.digest;
    entry.size = content.size;
    entry.xattrs = std::move(xattrs);
  }

  const Store& store_;
  const ImagePackOptions& options_;
  std::atomic<bool> failed_{false};
  // The root fd and the files to open, read by every thread.
  const TreeScan& scan_;
  mutable Mutex mu_;
  std::vector<image::EntrySpec>& entries_ GUARDED_BY(mu_);  // scan_.entries, filled in as files are packed
  // Hashed by some file, which packs it if needed.
  std::unordered_set<Digest, DigestHash> claimed_ GUARDED_BY(mu_);
  std::unordered_set<Digest, DigestHash> stored_ GUARDED_BY(mu_);  // known to be in the store
  ImagePackProgress progress_ GUARDED_BY(mu_);
  std::optional<Error> error_ GUARDED_BY(mu_);
  uint64_t new_blobs_ GUARDED_BY(mu_) = 0;
  uint64_t new_blob_bytes_ GUARDED_BY(mu_) = 0;
};

}  // namespace

Result<ImagePackResult> pack_image(const Store& store, const std::string& name, const std::string& dir,
                                   const ImagePackOptions& options) {
  PAGERFS_TRYV(image::validate_image_name(name));
  PAGERFS_TRYV(validate(options.blob));
  PAGERFS_TRY(scan, scan_tree(dir));
  if (options.test_hooks.scanned) options.test_hooks.scanned();
  const unsigned threads =
      options.blob.threads != 0 ? options.blob.threads : std::max(1u, std::thread::hardware_concurrency());

  // Largest first: the big ones alone, then the rest in parallel, longest
  // first so that no thread is left with a long file at the end.
  std::vector<const TreeScan::File*> order;
  for (const TreeScan::File& f : scan.files) order.push_back(&f);
  std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->size > b->size; });
  PackState state(store, options, scan);
  auto small = order.begin();
  for (; small != order.end() && (*small)->size >= kLargeFile; ++small) state.process(**small, threads);
  {
    boost::asio::thread_pool pool(threads);
    for (auto it = small; it != order.end(); ++it) {
      boost::asio::post(pool, [&state, file = *it] { state.process(*file, 1); });
    }
    pool.join();
  }
  if (auto error = state.error()) return *error;
  // Files that named a digest another file claimed but did not store (it
  // changed before it was packed): rare, so one at a time, on every thread.
  for (const TreeScan::File& f : scan.files) {
    if (!state.stored(scan.entries[f.entry].digest)) PAGERFS_TRYV(state.repack(f, threads));
  }
  for (const TreeScan::File& f : scan.files) {
    if (!state.stored(scan.entries[f.entry].digest)) {
      return Error(std::make_error_code(std::errc::io_error),
                   "pack '" + f.source + "': blob " + scan.entries[f.entry].digest.str() +
                       " was not stored (internal error); no manifest written");
    }
  }

  ImagePackResult result;
  result.entries = scan.entries.size();
  result.files = scan.files.size();
  std::unordered_set<Digest, DigestHash> distinct;
  for (const TreeScan::File& f : scan.files) {
    result.content_bytes += scan.entries[f.entry].size;
    distinct.insert(scan.entries[f.entry].digest);
  }
  result.distinct_blobs = distinct.size();
  result.new_blobs = state.new_blobs();
  result.new_blob_bytes = state.new_blob_bytes();

  // Every file is a whole blob: its record is its own digest and size.
  // TODO(issue 14, Part D and the blob v2 merge): the pack blobs' records and
  // the table digests write_blob returns.
  std::vector<image::BlobRecord> records;
  records.reserve(scan.files.size());
  for (const TreeScan::File& f : scan.files) {
    const image::EntrySpec& e = scan.entries[f.entry];
    records.push_back({.digest = e.digest, .table_digest = {}, .byte_size = e.size});
  }
  auto manifest = image::encode(std::move(scan.entries), std::move(records));
  if (!manifest) return manifest.error().with_context("image '" + name + "'");
  result.manifest_bytes = manifest.value().size();
  // The blobs reach the disk before the manifest that names them.
  PAGERFS_TRYV(store.sync());
  PAGERFS_TRYV(store.write_image(name, manifest.value()));
  return result;
}

}  // namespace pagerfs
