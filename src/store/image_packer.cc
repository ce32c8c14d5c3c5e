#include "pagerfs/image_packer.h"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>

#include "pagerfs/digest.h"
#include "store/tree_scan.h"

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

Result<Hashed> hash_file(const std::string& path, std::vector<std::byte>& buffer) {
  PAGERFS_TRY(input, open_input_stream(path));
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

// Shared state of one pack; every member is guarded by `mu`.
class PackState {
 public:
  PackState(const Store& store, const ImagePackOptions& options, TreeScan& scan)
      : store_(store), options_(options), scan_(scan) {
    progress_.files_total = scan.files.size();
    for (const TreeScan::File& f : scan.files) progress_.bytes_total += f.size;
  }

  // Hashes one file and packs its content unless the store or another file
  // of the tree already has it.
  void process(const TreeScan::File& file, unsigned writer_threads) {
    if (failed_.load(std::memory_order_relaxed)) return;
    auto done = process_file(file, writer_threads);
    std::lock_guard lock(mu_);
    if (!done && !error_) error_ = done.error().with_context("pack '" + file.source + "'");
    if (!done) failed_ = true;
    ++progress_.files_done;
    progress_.bytes_done += file.size;
    if (options_.on_progress) options_.on_progress(progress_);
  }

  const std::optional<Error>& error() const { return error_; }
  uint64_t new_blobs() const { return new_blobs_; }
  uint64_t new_blob_bytes() const { return new_blob_bytes_; }

 private:
  Result<void> process_file(const TreeScan::File& file, unsigned writer_threads) {
    thread_local std::vector<std::byte> buffer(1u << 20);
    PAGERFS_TRY(hashed, hash_file(file.source, buffer));
    bool mine = false;
    {
      std::lock_guard lock(mu_);
      mine = claimed_.insert(hashed.digest).second;
    }
    if (mine && !store_.has_blob(hashed.digest)) {
      PAGERFS_TRY(input, open_input_stream(file.source));
      BlobWriterOptions blob = options_.blob;
      blob.threads = writer_threads;
      blob.on_progress = nullptr;
      PAGERFS_TRY(packed, store_.pack(*input, blob, Store::Durability::deferred));
      // What was packed is what the image names, even if the file changed
      // after it was hashed.
      hashed = {packed.header.digest, packed.header.byte_size};
      std::lock_guard lock(mu_);
      claimed_.insert(hashed.digest);
      if (!packed.already_present) {
        ++new_blobs_;
        new_blob_bytes_ += packed.file_size;
      }
    }
    std::lock_guard lock(mu_);
    image::EntrySpec& entry = scan_.entries[file.entry];
    entry.digest = hashed.digest;
    entry.size = hashed.size;
    return ok();
  }

  const Store& store_;
  const ImagePackOptions& options_;
  std::atomic<bool> failed_{false};
  std::mutex mu_;
  TreeScan& scan_;
  std::unordered_set<Digest, DigestHash> claimed_;
  ImagePackProgress progress_;
  std::optional<Error> error_;
  uint64_t new_blobs_ = 0;
  uint64_t new_blob_bytes_ = 0;
};

}  // namespace

Result<ImagePackResult> pack_image(const Store& store, const std::string& name, const std::string& dir,
                                   const ImagePackOptions& options) {
  PAGERFS_TRYV(image::validate_image_name(name));
  PAGERFS_TRYV(validate(options.blob));
  PAGERFS_TRY(scan, scan_tree(dir));
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
  if (state.error()) return *state.error();

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

  auto manifest = image::encode(std::move(scan.entries));
  if (!manifest) return manifest.error().with_context("image '" + name + "'");
  result.manifest_bytes = manifest.value().size();
  // The blobs reach the disk before the manifest that names them.
  PAGERFS_TRYV(store.sync());
  PAGERFS_TRYV(store.write_image(name, manifest.value()));
  return result;
}

}  // namespace pagerfs
