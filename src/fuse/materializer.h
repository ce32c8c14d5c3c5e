// Which files the kernel serves by FUSE passthrough, and making their
// backing files: a file's decoded content, written once to the materialized
// files directory (pagerfs/materialize/materialized_files.h) and verified
// against the file's content digest, then read by the kernel directly, with
// no round trip to the daemon, on every later open (session_io.h,
// passthrough_opens.h).
//
// Which files: every file up to `small_file_limit`, materialized at its
// first open before the open is answered (a small file costs a decode and a
// write of at most that many bytes); and any bigger file that a reader has
// read whole (an exec, ld.so, an import, cp), materialized in the background
// after that read and used from the file's next open. A big file read in
// part stays on the pager path.
//
// Thread safety: every method may be called from any FUSE worker at once;
// one background thread materializes what read_whole() queues.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <thread>
#include <unordered_set>

#include "pagerfs/materialize/materialized_files.h"
#include "pagerfs/pager/pager.h"
#include "pagerfs/util/digest.h"
#include "util/mutex.h"

namespace spdlog {
class logger;
}

namespace pagerfs {

class Materializer {
 public:
  struct Options {
    // Files up to this size are materialized at their first open.
    uint64_t small_file_limit = 256 * 1024;
    // Whole-file reads waiting to be materialized; more are dropped (the
    // next whole read queues them again).
    size_t max_queued = 256;
  };

  // What a file's bytes are: [offset, offset + length) of a blob (a pack
  // blob for a packed small file).
  struct Source {
    std::shared_ptr<PagedBlob> blob;
    uint64_t offset = 0;
    uint64_t length = 0;
  };

  struct Stats {
    uint64_t materialized_on_open = 0;   // small files made at their open
    uint64_t materialized_in_background = 0;  // files read whole, made after
    uint64_t failures = 0;               // materializations that failed (logged)
    uint64_t dropped = 0;                // whole reads not queued (queue full)
    uint64_t queued = 0;                 // waiting now
    uint64_t making = 0;                 // being made in the background now
  };

  Materializer(std::unique_ptr<MaterializedFiles> files, std::shared_ptr<Pager> pager, Options options,
               std::shared_ptr<spdlog::logger> log);
  ~Materializer();  // stop()
  Materializer(const Materializer&) = delete;
  Materializer& operator=(const Materializer&) = delete;

  // The backing file for an open of the file whose content digest is
  // `content`: its materialized file if there is one; a small file is
  // materialized now. Nothing for a big file not yet materialized, an empty
  // file, or a failure (logged, counted: the open goes the pager's way).
  std::optional<MaterializedFile> backing_for_open(const Digest& content, const Source& source);

  // A reader read every byte of the file (or executed it): materialize it
  // for its next opens.
  void read_whole(const Digest& content, const Source& source);

  Stats stats() const;
  MaterializedFilesStats file_stats() const { return files_->stats(); }

  // Ends the background thread (what is queued is dropped). Idempotent.
  void stop();

 private:
  Result<MaterializedFile> materialize(const Digest& content, const Source& source);
  void run_background();

  const std::unique_ptr<MaterializedFiles> files_;
  const std::shared_ptr<Pager> pager_;
  const Options options_;
  const std::shared_ptr<spdlog::logger> log_;

  mutable Mutex mu_;
  CondVar wake_;
  std::deque<std::pair<Digest, Source>> queue_ GUARDED_BY(mu_);
  std::unordered_set<Digest, DigestHash> queued_ GUARDED_BY(mu_);  // in queue_ or being made
  bool stopping_ GUARDED_BY(mu_) = false;
  Stats stats_ GUARDED_BY(mu_);
  std::thread background_;
};

}  // namespace pagerfs
