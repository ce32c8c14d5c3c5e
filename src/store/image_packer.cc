#include "pagerfs/store/image_packer.h"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "pagerfs/util/digest.h"
#include "store/pack_input.h"
#include "store/pack_planner.h"
#include "store/tree_scan.h"
#include "util/quoted.h"
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

Error internal(const std::string& message) {
  return Error(std::make_error_code(std::errc::io_error), message + " (internal error); no manifest written");
}

// Shared state of one pack, used by every thread: what is guarded is written
// GUARDED_BY(mu_); the rest is set in the constructor (the references, whose
// objects are read concurrently but not written while files are packed) or
// atomic.
//
// Phases: every file is hashed (hash(): its entry gets its digest, size and
// xattrs, and the first file of each digest asks the store whether it has it);
// the plan is made; whole files the store lacks are written (write_whole());
// then each new pack (write_pack()).
//
// Why every digest the manifest names is in the store: a whole file's entry
// gets either the digest of what Store::pack() returned (stored), or the
// digest its content hashed to. In the second case the digest is in `stored_`
// if the store had it, or was claimed by another file that was to write it.
// That file may have changed between its hash and its write, and stored
// another digest instead; so after every whole file is done, each one whose
// digest is not in `stored_` is written again, directly, and takes the digest
// pack() returns (see build_image). A pack's members are checked as they are
// written (store/pack_input.h): a pack holds exactly what was hashed, or it is
// not written.
class PackState {
 public:
  PackState(const Store& store, const ImagePackOptions& options, TreeScan& scan)
      : store_(store), options_(options), scan_(scan), entries_(scan.entries) {
    progress_.files_total = scan.files.size();
    for (const TreeScan::File& f : scan.files) progress_.bytes_total += f.size;
  }

  // Hashes one file and reads its xattrs into its entry.
  void hash(const TreeScan::File& file) EXCLUDES(mu_) {
    if (failed_.load(std::memory_order_relaxed)) return;
    auto done = hash_file(file);
    MutexLock lock(mu_);
    if (!done && !error_) error_ = done.error().with_context("pack '" + file.source + "'");
    if (!done) failed_ = true;
    ++progress_.files_done;
    progress_.bytes_done += file.size;
    if (options_.on_progress) options_.on_progress(progress_);
  }

  // Writes a whole file's blob unless the store or another file has it.
  void write_whole(const TreeScan::File& file, unsigned writer_threads) EXCLUDES(mu_) {
    if (failed_.load(std::memory_order_relaxed)) return;
    auto done = [&]() -> Result<void> {
      Digest digest;
      {
        MutexLock lock(mu_);
        digest = entries_[file.entry].digest;
        if (stored_.contains(digest) || !writing_.insert(digest).second) return ok();
      }
      PAGERFS_TRY(fd, open_scanned_file(scan_, file));
      // What was written is what the image names, even if the file changed
      // after it was hashed.
      PAGERFS_TRY(written, pack_fd(fd.get(), file, writer_threads));
      record(file, written);
      return ok();
    }();
    MutexLock lock(mu_);
    if (!done && !error_) error_ = done.error().with_context("pack '" + file.source + "'");
    if (!done) failed_ = true;
  }

  // Writes one whole file without deduplicating against other files (see above).
  Result<void> rewrite(const TreeScan::File& file, unsigned writer_threads) EXCLUDES(mu_) {
    auto done = [&]() -> Result<void> {
      PAGERFS_TRY(fd, open_scanned_file(scan_, file));
      PAGERFS_TRY(xattrs, read_fd_xattrs(fd.get(), file.source));
      PAGERFS_TRY(written, pack_fd(fd.get(), file, writer_threads));
      record(file, written);
      MutexLock lock(mu_);
      entries_[file.entry].xattrs = std::move(xattrs);
      return ok();
    }();
    if (!done) return done.error().with_context("pack '" + file.source + "'");
    return ok();
  }

  // Writes the pack of `members` (in order); returns its record.
  Result<image::BlobRecord> write_pack(std::vector<PackMember> members, uint64_t size, unsigned writer_threads)
      EXCLUDES(mu_) {
    auto input = pack_input_stream(scan_, std::move(members), "pack of " + scan_.root);
    BlobWriterOptions blob = options_.blob;
    blob.threads = writer_threads;
    blob.on_progress = nullptr;
    PAGERFS_TRY(packed, store_.pack(*input, blob, Store::Durability::deferred));
    if (packed.header.byte_size != size) {
      return internal("pack " + packed.header.digest.str() + " holds " + std::to_string(packed.header.byte_size) +
                      " bytes, not the " + std::to_string(size) + " planned");
    }
    // When the store had it, the anchor is the stored blob's (what a reader
    // opens), which Store::pack returns.
    const image::BlobRecord record{packed.header.digest, packed.table_digest, packed.header.byte_size};
    MutexLock lock(mu_);
    stored_.insert(record.digest);
    if (!packed.already_present) {
      ++new_blobs_;
      ++new_packs_;
      new_blob_bytes_ += packed.file_size;
    }
    progress_.bytes_done += size;
    if (options_.on_progress) options_.on_progress(progress_);
    return record;
  }

  // Adds `bytes` of content to be compressed to the progress total.
  void expect(uint64_t bytes) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    progress_.bytes_total += bytes;
  }

  // Whether `digest` is known to be in the store.
  bool stored(const Digest& digest) const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return stored_.contains(digest);
  }
  // The record of a whole blob written by this pack, if it wrote it.
  std::optional<image::BlobRecord> written(const Digest& digest) const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    const auto it = written_.find(digest);
    if (it == written_.end()) return std::nullopt;
    return it->second;
  }

  std::optional<Error> error() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return error_;
  }
  void result(ImagePackResult& out) const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    out.new_blobs = new_blobs_;
    out.new_blob_bytes = new_blob_bytes_;
    out.new_packs = new_packs_;
  }

 private:
  Result<void> hash_file(const TreeScan::File& file) EXCLUDES(mu_) {
    thread_local std::vector<std::byte> buffer(1u << 20);
    // One fd for the xattrs and the hash, so both are of the file the scan saw.
    PAGERFS_TRY(fd, open_scanned_file(scan_, file));
    PAGERFS_TRY(xattrs, read_fd_xattrs(fd.get(), file.source));
    ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    PAGERFS_TRY(hashed, hash_fd(fd.get(), file.source, buffer));
    if (options_.test_hooks.hashed) options_.test_hooks.hashed(file.source);
    bool mine = false;
    {
      MutexLock lock(mu_);
      image::EntrySpec& entry = entries_[file.entry];
      entry.digest = hashed.digest;
      entry.size = hashed.size;
      entry.xattrs = std::move(xattrs);
      mine = asked_.insert(hashed.digest).second;
    }
    // Whether the store has it: asked once per content.
    if (mine && store_.has_blob(hashed.digest)) {
      MutexLock lock(mu_);
      stored_.insert(hashed.digest);
    }
    return ok();
  }

  // Writes what `fd` holds from its offset as a blob; returns what was stored.
  Result<Hashed> pack_fd(int fd, const TreeScan::File& file, unsigned writer_threads) EXCLUDES(mu_) {
    auto input = fd_input_stream(fd, file.source);
    BlobWriterOptions blob = options_.blob;
    blob.threads = writer_threads;
    blob.on_progress = nullptr;
    PAGERFS_TRY(packed, store_.pack(*input, blob, Store::Durability::deferred));
    const Hashed out{packed.header.digest, packed.header.byte_size};
    MutexLock lock(mu_);
    writing_.insert(out.digest);
    stored_.insert(out.digest);
    if (!packed.already_present) {
      ++new_blobs_;
      new_blob_bytes_ += packed.file_size;
      written_.emplace(out.digest, image::BlobRecord{out.digest, packed.table_digest, out.size});
    }
    progress_.bytes_done += file.size;
    if (options_.on_progress) options_.on_progress(progress_);
    return out;
  }

  void record(const TreeScan::File& file, const Hashed& content) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    image::EntrySpec& entry = entries_[file.entry];
    entry.digest = content.digest;
    entry.size = content.size;
  }

  const Store& store_;
  const ImagePackOptions& options_;
  std::atomic<bool> failed_{false};
  // The root fd and the files to open, read by every thread.
  const TreeScan& scan_;
  mutable Mutex mu_;
  std::vector<image::EntrySpec>& entries_ GUARDED_BY(mu_);  // scan_.entries, filled in as files are hashed
  std::unordered_set<Digest, DigestHash> asked_ GUARDED_BY(mu_);    // has_blob asked (or being asked)
  std::unordered_set<Digest, DigestHash> writing_ GUARDED_BY(mu_);  // claimed by a file that writes it
  std::unordered_set<Digest, DigestHash> stored_ GUARDED_BY(mu_);   // known to be in the store
  std::unordered_map<Digest, image::BlobRecord, DigestHash> written_ GUARDED_BY(mu_);  // new whole blobs
  ImagePackProgress progress_ GUARDED_BY(mu_);
  std::optional<Error> error_ GUARDED_BY(mu_);
  uint64_t new_blobs_ GUARDED_BY(mu_) = 0;
  uint64_t new_blob_bytes_ GUARDED_BY(mu_) = 0;
  uint64_t new_packs_ GUARDED_BY(mu_) = 0;
};

// Runs `work` for each of `files`, largest first so that no thread is left
// with a long file at the end, side by side, one thread each; with
// `large_alone`, those of kLargeFile bytes or more first, one at a time with
// every thread (compression is parallel within a blob; hashing is not).
template <class Work>
void largest_first(std::vector<const TreeScan::File*> files, unsigned threads, bool large_alone,
                   const Work& work) {
  std::stable_sort(files.begin(), files.end(), [](auto* a, auto* b) { return a->size > b->size; });
  auto small = files.begin();
  for (; large_alone && small != files.end() && (*small)->size >= kLargeFile; ++small) work(**small, threads);
  boost::asio::thread_pool pool(threads);
  for (auto it = small; it != files.end(); ++it) {
    boost::asio::post(pool, [&work, file = *it] { work(*file, 1u); });
  }
  pool.join();
}


}  // namespace

Result<BuiltImage> build_image(const Store& store, const std::string& dir, const ImagePackOptions& options,
                               const StoredPacks& known) {
  PAGERFS_TRYV(validate(options.blob));
  const PackPlanOptions plan_options{options.pack_threshold, options.pack_max};
  PAGERFS_TRYV(validate(plan_options));
  PAGERFS_TRY(scan, scan_tree(dir));
  if (options.test_hooks.scanned) options.test_hooks.scanned();
  const unsigned threads =
      options.blob.threads != 0 ? options.blob.threads : std::max(1u, std::thread::hardware_concurrency());
  PackState state(store, options, scan);

  // 1. Hash every file.
  std::vector<const TreeScan::File*> all;
  for (const TreeScan::File& f : scan.files) all.push_back(&f);
  largest_first(all, threads, /*large_alone=*/false, [&state](const TreeScan::File& f, unsigned) { state.hash(f); });
  if (auto error = state.error()) return *error;

  // 2. Place every file, in manifest order.
  std::vector<const TreeScan::File*> order = all;
  std::sort(order.begin(), order.end(), [&](auto* a, auto* b) {
    return manifest_order_less(scan.entries[a->entry].path, scan.entries[b->entry].path);
  });
  std::vector<PlanFile> plan_files;
  plan_files.reserve(order.size());
  for (const TreeScan::File* f : order) {
    const image::EntrySpec& e = scan.entries[f->entry];
    plan_files.push_back({e.digest, e.size, state.stored(e.digest), known.find(e.digest)});
  }
  const PackPlan plan = plan_packs(plan_files, plan_options);

  // 3. Whole files the store lacks.
  std::vector<const TreeScan::File*> whole;
  for (size_t i = 0; i < order.size(); ++i) {
    if (plan.files[i].kind == PackPlan::Kind::whole && !plan_files[i].stored_whole) {
      whole.push_back(order[i]);
      state.expect(order[i]->size);
    }
  }
  largest_first(whole, threads, /*large_alone=*/true,
                [&state](const TreeScan::File& f, unsigned writers) { state.write_whole(f, writers); });
  if (auto error = state.error()) return *error;
  // Files that named a digest another file claimed but did not store (it
  // changed before it was written): rare, so one at a time, on every thread.
  for (const TreeScan::File* f : whole) {
    if (!state.stored(scan.entries[f->entry].digest)) PAGERFS_TRYV(state.rewrite(*f, threads));
  }

  // 4. The new packs, each with every thread.
  std::vector<image::BlobRecord> records;
  std::vector<Digest> pack_digests;
  for (const PackPlan::Pack& pack : plan.packs) state.expect(pack.size);
  for (const PackPlan::Pack& pack : plan.packs) {
    std::vector<PackMember> members;
    members.reserve(pack.members.size());
    for (size_t i : pack.members) members.push_back({order[i], plan_files[i].digest, plan_files[i].size});
    PAGERFS_TRY(record, state.write_pack(std::move(members), pack.size, threads));
    pack_digests.push_back(record.digest);
    records.push_back(record);
  }

  // 5. Every entry names its blob; every blob named has its record.
  BuiltImage built;
  ImagePackResult& result = built.result;
  std::unordered_set<Digest, DigestHash> distinct;
  std::unordered_set<Digest, DigestHash> packs_named;
  std::map<Digest, image::BlobRecord> named;  // sorted, unique
  for (const image::BlobRecord& r : records) named.emplace(r.digest, r);
  for (size_t i = 0; i < order.size(); ++i) {
    image::EntrySpec& e = scan.entries[order[i]->entry];
    const PackPlan::Place& place = plan.files[i];
    switch (place.kind) {
      case PackPlan::Kind::whole: {
        if (!state.stored(e.digest)) {
          return internal("pack '" + order[i]->source + "': blob " + e.digest.str() + " was not stored");
        }
        if (named.contains(e.digest)) break;
        if (auto w = state.written(e.digest)) {
          named.emplace(e.digest, *w);
        } else {
          auto r = stored_blob_record(store, e.digest);
          if (!r) return r.error().with_context("pack '" + order[i]->source + "'");
          named.emplace(e.digest, r.value());
        }
        break;
      }
      case PackPlan::Kind::packed:
        e.packed = image::PackedRef{pack_digests[place.pack], place.offset};
        break;
      case PackPlan::Kind::reused: {
        e.packed = place.reused;
        auto r = known.pack(place.reused.blob);
        if (!r) return internal("pack '" + order[i]->source + "': no record of pack " + place.reused.blob.str());
        named.emplace(r->digest, *r);
        break;
      }
    }
    if (e.packed) {
      ++result.packed_files;
      packs_named.insert(e.packed->blob);
    }
    result.content_bytes += e.size;
    distinct.insert(e.digest);
  }
  result.entries = scan.entries.size();
  result.files = scan.files.size();
  result.distinct_blobs = distinct.size();
  result.packs = packs_named.size();
  state.result(result);
  built.entries = std::move(scan.entries);
  for (auto& [digest, record] : named) built.blobs.push_back(record);
  return built;
}

Result<ImagePackResult> pack_image(const Store& store, const std::string& name, const std::string& dir,
                                   const ImagePackOptions& options) {
  PAGERFS_TRYV(image::validate_image_name(name));
  PAGERFS_TRY(known, stored_packs(store));
  PAGERFS_TRY(built, build_image(store, dir, options, known));
  ImagePackResult result = built.result;
  auto manifest = image::encode(std::move(built.entries), std::move(built.blobs));
  if (!manifest) return manifest.error().with_context("image '" + name + "'");
  result.manifest_bytes = manifest.value().size();
  // The blobs reach the disk before the manifest that names them.
  PAGERFS_TRYV(store.sync());
  // A packed tree has no container config: one kept from an image imported
  // under this name before no longer describes it.
  PAGERFS_TRYV(store.remove_image_config(name));
  PAGERFS_TRYV(store.write_image(name, manifest.value()));
  return result;
}

}  // namespace pagerfs
