#include "pagerfs/util/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/posix_io.h"
#include "util/quoted.h"
#include "util/safe_open.h"
#include "util/unique_fd.h"

namespace pagerfs {
namespace {


class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(UniqueFd fd, uint64_t size, std::string name)
      : fd_(std::move(fd)), size_(size), name_(std::move(name)) {}

  Result<void> read_exact(uint64_t offset, std::span<std::byte> out) const override {
    if (offset > size_ || out.size() > size_ - offset) {
      return Error(std::make_error_code(std::errc::io_error),
                   quoted(name_) + ": read of " + std::to_string(out.size()) + " bytes at " +
                       std::to_string(offset) + " is past the end (" + std::to_string(size_) +
                       " bytes)");
    }
    PAGERFS_TRY(got, pread_some(fd_.get(), out, offset, quoted(name_)));
    if (got < out.size()) {
      return Error(std::make_error_code(std::errc::io_error),
                   quoted(name_) + ": file shrank while open (short read at " +
                       std::to_string(offset + got) + ")");
    }
    return ok();
  }

  uint64_t size() const noexcept override { return size_; }
  const std::string& name() const noexcept override { return name_; }

 private:
  UniqueFd fd_;
  uint64_t size_;
  std::string name_;
};

class MemoryRandomAccessFile final : public RandomAccessFile {
 public:
  MemoryRandomAccessFile(std::vector<std::byte> data, std::string name)
      : data_(std::move(data)), name_(std::move(name)) {}

  Result<void> read_exact(uint64_t offset, std::span<std::byte> out) const override {
    if (offset > data_.size() || out.size() > data_.size() - offset) {
      return Error(std::make_error_code(std::errc::io_error),
                   quoted(name_) + ": read past the end");
    }
    std::copy_n(data_.begin() + static_cast<ptrdiff_t>(offset), out.size(), out.begin());
    return ok();
  }
  uint64_t size() const noexcept override { return data_.size(); }
  const std::string& name() const noexcept override { return name_; }

 private:
  std::vector<std::byte> data_;
  std::string name_;
};

class FdInputStream final : public InputStream {
 public:
  FdInputStream(int fd, UniqueFd owned, std::string name)
      : fd_(fd), owned_(std::move(owned)), name_(std::move(name)) {}

  Result<size_t> read_some(std::span<std::byte> out) override {
    for (;;) {
      const ssize_t n = ::read(fd_, out.data(), out.size());
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return Error::from_errno(errno, "read " + quoted(name_));
    }
  }
  const std::string& name() const noexcept override { return name_; }

 private:
  int fd_;
  UniqueFd owned_;
  std::string name_;
};

class MemoryInputStream final : public InputStream {
 public:
  MemoryInputStream(std::span<const std::byte> data, std::string name)
      : data_(data), name_(std::move(name)) {}

  Result<size_t> read_some(std::span<std::byte> out) override {
    const size_t n = std::min(out.size(), data_.size());
    std::copy_n(data_.begin(), n, out.begin());
    data_ = data_.subspan(n);
    return n;
  }
  const std::string& name() const noexcept override { return name_; }

 private:
  std::span<const std::byte> data_;
  std::string name_;
};

class MemoryWritableFile final : public WritableFile {
 public:
  explicit MemoryWritableFile(std::vector<std::byte>* out) : out_(out) { out_->clear(); }

  Result<void> append(std::span<const std::byte> data) override {
    out_->insert(out_->end(), data.begin(), data.end());
    return ok();
  }
  Result<void> write_at(uint64_t offset, std::span<const std::byte> data) override {
    if (offset > out_->size() || data.size() > out_->size() - offset) {
      return Error(std::make_error_code(std::errc::invalid_argument), "write_at past the end");
    }
    std::copy(data.begin(), data.end(), out_->begin() + static_cast<ptrdiff_t>(offset));
    return ok();
  }
  Result<void> sync() override { return ok(); }
  uint64_t size() const noexcept override { return out_->size(); }

 private:
  std::vector<std::byte>* out_;
};

class FdWritableFile final : public WritableFile {
 public:
  FdWritableFile(UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}

  Result<void> append(std::span<const std::byte> data) override {
    PAGERFS_TRYV(write_at(size_, data));
    return ok();
  }
  Result<void> write_at(uint64_t offset, std::span<const std::byte> data) override {
    PAGERFS_TRYV(pwrite_all(fd_.get(), data, offset, quoted(name_)));
    size_ = std::max(size_, offset + data.size());
    return ok();
  }
  Result<void> sync() override {
    if (::fsync(fd_.get()) != 0) return Error::from_errno(errno, "fsync " + quoted(name_));
    return ok();
  }
  uint64_t size() const noexcept override { return size_; }

 private:
  UniqueFd fd_;
  std::string name_;
  uint64_t size_ = 0;
};

}  // namespace

Result<std::unique_ptr<RandomAccessFile>> open_random_access_file(const std::string& path,
                                                                  Symlinks symlinks) {
  PAGERFS_TRY(fd, open_regular_file(path, O_RDONLY, 0, symlinks));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno(errno, "stat " + quoted(path));
  return std::unique_ptr<RandomAccessFile>(
      new PosixRandomAccessFile(std::move(fd), static_cast<uint64_t>(st.st_size), path));
}

std::unique_ptr<RandomAccessFile> memory_random_access_file(std::vector<std::byte> data,
                                                             std::string name) {
  return std::make_unique<MemoryRandomAccessFile>(std::move(data), std::move(name));
}

std::unique_ptr<InputStream> fd_input_stream(int fd, std::string name) {
  return std::make_unique<FdInputStream>(fd, UniqueFd(), std::move(name));
}

Result<std::unique_ptr<InputStream>> open_input_stream(const std::string& path) {
  if (path == "-") return fd_input_stream(STDIN_FILENO, "<stdin>");
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "open " + quoted(path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno(errno, "stat " + quoted(path));
  if (S_ISDIR(st.st_mode)) return Error::from_errno(EISDIR, "open " + quoted(path));
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  const int raw = fd.get();
  return std::unique_ptr<InputStream>(new FdInputStream(raw, std::move(fd), path));
}

std::unique_ptr<InputStream> memory_input_stream(std::span<const std::byte> data,
                                                 std::string name) {
  return std::make_unique<MemoryInputStream>(data, std::move(name));
}

std::unique_ptr<WritableFile> memory_writable_file(std::vector<std::byte>* out) {
  return std::make_unique<MemoryWritableFile>(out);
}

std::unique_ptr<WritableFile> fd_writable_file(int fd, std::string name) {
  return std::make_unique<FdWritableFile>(UniqueFd(fd), std::move(name));
}

}  // namespace pagerfs
