#include "store/temp_blob.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "pagerfs/format/blob_reader.h"
#include "util/quoted.h"
#include "util/safe_open.h"

namespace pagerfs {

Result<void> fsync_dir(const std::string& path) {
  PAGERFS_TRY(fd, open_directory(path));
  if (::fsync(fd.get()) != 0) return Error::from_errno(errno, "fsync " + quoted(path));
  return ok();
}

TempFile::~TempFile() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

Result<int> TempFile::create(const std::string& dir) {
  std::string pattern = dir + "/.tmp-pack-XXXXXX";
  const int fd = ::mkostemp(pattern.data(), O_CLOEXEC);
  if (fd < 0) return Error::from_errno(errno, "create a temporary file in " + quoted(dir));
  path_ = pattern;
  return fd;
}

Result<void> TempFile::install(int fd, const std::string& final_path, bool durable) {
  if (durable && ::fsync(fd) != 0) return Error::from_errno(errno, "fsync " + quoted(path_));
  if (::fchmod(fd, kStoreFileMode) != 0) return Error::from_errno(errno, "chmod " + quoted(path_));
  if (::rename(path_.c_str(), final_path.c_str()) != 0) {
    return Error::from_errno(errno, "rename into " + quoted(final_path));
  }
  const std::string dir = path_.substr(0, path_.rfind('/'));
  path_.clear();
  return durable ? fsync_dir(dir) : ok();
}

Result<TempBlob> write_temp_blob(const std::string& dir, InputStream& input, const BlobWriterOptions& options) {
  PAGERFS_TRYV(validate(options));
  TempBlob blob;
  PAGERFS_TRY(fd, blob.file.create(dir));
  blob.fd = fd;
  blob.output = fd_writable_file(fd, blob.file.path());
  PAGERFS_TRY(written, write_blob(input, *blob.output, options));
  blob.result.header = written.header;
  blob.result.table_digest = written.table_digest;
  blob.result.file_size = blob.output->size();
  return blob;
}

std::optional<Store::PackResult> existing_blob(const std::string& path) {
  auto kept = BlobReader::open(path);
  if (!kept) return std::nullopt;
  Store::PackResult result;
  result.already_present = true;
  result.header = kept.value()->header();
  result.table_digest = kept.value()->table_digest();
  result.file_size = kept.value()->file_size();
  return result;
}

}  // namespace pagerfs
