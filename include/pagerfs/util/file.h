// The I/O seam between pagerfs and the OS (like leveldb's Env): every byte
// the format code reads or writes goes through these interfaces, so tests can
// substitute memory-backed files and inject failures.
//
// Thread safety: `RandomAccessFile::read_exact` may be called concurrently
// from any number of threads. `InputStream` and `WritableFile` are used by one
// thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "pagerfs/util/error.h"

namespace pagerfs {

class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Fills `out` with the bytes at [offset, offset + out.size()). Reading past
  // the end of the file is an error, never a short result.
  virtual Result<void> read_exact(uint64_t offset, std::span<std::byte> out) const = 0;
  // The file's size when it was opened.
  virtual uint64_t size() const noexcept = 0;
  // The name used in error messages (usually the path).
  virtual const std::string& name() const noexcept = 0;
};

// Whether opening a path follows a symbolic link as its last component. Files
// of a store or cache are opened with `refuse`; a path a user names on the
// command line may be a link of theirs.
enum class Symlinks { refuse, follow };

// Opens a regular file read-only, without blocking on a FIFO or a device:
// anything else is errc::not_a_regular_file ("'PATH' is not a regular file
// (a FIFO)"), as is a symbolic link unless `symlinks` is `follow`.
Result<std::unique_ptr<RandomAccessFile>> open_random_access_file(const std::string& path,
                                                                  Symlinks symlinks = Symlinks::refuse);
// A file whose content is `data`.
std::unique_ptr<RandomAccessFile> memory_random_access_file(std::vector<std::byte> data,
                                                             std::string name = "<memory>");

// A sequential source of bytes of unknown length: a file, a pipe, memory.
class InputStream {
 public:
  virtual ~InputStream() = default;
  // Reads up to out.size() bytes; 0 means end of stream.
  virtual Result<size_t> read_some(std::span<std::byte> out) = 0;
  virtual const std::string& name() const noexcept = 0;
};

// Reads from `fd`, which the stream does not own (e.g. STDIN_FILENO).
std::unique_ptr<InputStream> fd_input_stream(int fd, std::string name);
// Opens `path` for reading; "-" means standard input.
Result<std::unique_ptr<InputStream>> open_input_stream(const std::string& path);
std::unique_ptr<InputStream> memory_input_stream(std::span<const std::byte> data,
                                                 std::string name = "<memory>");

// A file being written: appended to, with earlier bytes patchable in place.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Result<void> append(std::span<const std::byte> data) = 0;
  // Overwrites bytes already written (e.g. a header finalised at the end).
  virtual Result<void> write_at(uint64_t offset, std::span<const std::byte> data) = 0;
  // Makes everything written durable.
  virtual Result<void> sync() = 0;
  virtual uint64_t size() const noexcept = 0;
};

// Writes into `*out`, which must outlive the file.
std::unique_ptr<WritableFile> memory_writable_file(std::vector<std::byte>* out);
// Writes to `fd` from offset 0; the file owns and closes it.
std::unique_ptr<WritableFile> fd_writable_file(int fd, std::string name);

// Whole-buffer helpers over std::byte for the common case.
inline std::span<const std::byte> bytes_of(const std::string& s) noexcept {
  return std::as_bytes(std::span(s.data(), s.size()));
}

}  // namespace pagerfs
