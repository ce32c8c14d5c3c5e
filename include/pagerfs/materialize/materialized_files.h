// Materialized files: the decompressed content of blobs kept as plain files
// on a local disk, so that the kernel can serve hot files by FUSE passthrough
// (reading a backing file directly, without a round trip to the daemon).
//
//   DIR/<64 hex>        a complete, verified file, mode 0400, named by the
//                       SHA-256 of its content (its Digest)
//   DIR/.tmp-<...>      a file being written (locked with flock() by its
//                       writer while it writes)
//
// The directory has a byte budget. Files are charged by their size rounded up
// to 4 KiB (kChargeUnit: the block size of the usual file systems; an empty
// file costs nothing), and evicted least recently used first to make room.
// The recency order survives a restart through the files' mtimes: a file
// found is touched on disk at most once a minute, and open() orders what it
// finds by mtime.
//
// Crash safety: a file is written under a temporary name, hashed while it is
// written, compared with the digest it must have, and only then renamed to
// its name: a file visible under its name was complete when it was named.
// Nothing is fsync'd (a sync per file would cost milliseconds on the open
// that materializes it): what a power loss tears is caught by verification. Temporaries left by a crash are deleted by the next
// open() (unless their writer, another live process, still holds their
// lock). Damage done while no daemon ran (a flipped byte, a truncation, a
// directory or a FIFO in a file's place) is caught by verification: the
// first time this process finds a file, its whole content is hashed and
// compared with its name; a file that fails is deleted, counted, logged and
// not returned (the caller rebuilds it). open() does not hash: it only lists
// the directory, so it stays fast for a big one.
//
// Another process may use the same directory at the same time (two daemons
// overlap during a live upgrade): files it adds are picked up (and verified)
// by find(), files it deletes are misses. A file is trusted as verified only
// while it is the same inode of the same size as the one this process hashed.
//
// An opened file stays readable with its complete content for as long as its
// holder keeps the descriptor, even after it is evicted or deleted (unlink
// removes the name, not the open file).
//
// Thread safety: every method may be called from any number of threads at
// once. One internal mutex guards the index; it is never held while file
// data is read, hashed or written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace spdlog {
class logger;
}

namespace pagerfs {

// A materialized file opened read-only: its descriptor is owned (closed by
// the destructor) and stays valid, with the verified content, while this
// object lives, whatever happens to the file's name.
class MaterializedFile {
 public:
  MaterializedFile() = default;
  // Takes ownership of `fd`.
  MaterializedFile(int fd, uint64_t size) noexcept : fd_(fd), size_(size) {}
  MaterializedFile(MaterializedFile&& other) noexcept;
  MaterializedFile& operator=(MaterializedFile&& other) noexcept;
  MaterializedFile(const MaterializedFile&) = delete;
  MaterializedFile& operator=(const MaterializedFile&) = delete;
  ~MaterializedFile();

  int fd() const noexcept { return fd_; }  // -1 for a default-constructed one
  uint64_t size() const noexcept { return size_; }
  // Gives up ownership of the descriptor (the caller closes it).
  int release() noexcept;

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
};

struct MaterializedFilesStats {
  uint64_t files = 0;  // files held
  uint64_t bytes = 0;  // their charge against the budget (sizes rounded up to 4 KiB)
  uint64_t budget_bytes = 0;
  uint64_t adds = 0;                   // files written and verified by add()
  uint64_t add_failures = 0;           // add() calls that failed
  uint64_t hits = 0;                   // find() (or add() of a file already held) returned a file
  uint64_t misses = 0;                 // find() returned nothing
  uint64_t evictions = 0;              // files deleted to stay within the budget
  uint64_t verification_failures = 0;  // damaged files found and deleted
  uint64_t bytes_verified = 0;         // bytes hashed to verify files found
};

class MaterializedFiles {
 public:
  // The unit in which files are charged against the budget.
  static constexpr uint64_t kChargeUnit = 4096;

  struct Options {
    std::string directory;  // created (mode 0700) if missing; not a symbolic link
    uint64_t budget_bytes = 0;
  };

  // Fills `buffer` with content from `offset` on; returns the bytes it put
  // there (fewer is fine, 0 means the content ended too early: an error).
  using Reader = std::function<Result<size_t>(uint64_t offset, std::span<std::byte> buffer)>;

  // Opens (creating it if needed) the directory and indexes what it holds:
  // leftover temporaries and names that are not 64 lowercase hex digits are
  // deleted (directories among the latter are left alone), and files beyond
  // the budget are evicted, oldest mtime first. Fails with a one-line reason
  // naming the path if the directory cannot be used.
  static Result<std::unique_ptr<MaterializedFiles>> open(
      const Options& options, std::shared_ptr<spdlog::logger> logger = nullptr);

  virtual ~MaterializedFiles() = default;

  // Writes the `size` bytes that `read` returns as the file of `content`,
  // evicting least recently used files first to make room, and returns it
  // opened. Returns the file already held if there is one (a concurrent
  // add() of the same digest is waited for). Fails, leaving nothing behind,
  // if the bytes' SHA-256 is not `content` (errc::digest_mismatch), if
  // `read` fails or ends early, if the disk is full (ENOSPC), if the file is
  // larger than the whole budget (EFBIG), or if files being written by
  // concurrent add() calls hold the room it needs (ENOSPC).
  virtual Result<MaterializedFile> add(const Digest& content, uint64_t size,
                                       const Reader& read) = 0;

  // The file of `content`, opened read-only and now the most recently used,
  // or nothing if it is not held (or was found damaged, and deleted). The
  // first find of a file in this process hashes its whole content. Errors
  // are for failures of this process (e.g. EMFILE), not of the file.
  virtual Result<std::optional<MaterializedFile>> find(const Digest& content) = 0;

  virtual MaterializedFilesStats stats() const = 0;

  virtual const std::string& directory() const noexcept = 0;
};

}  // namespace pagerfs
