#include "pagerfs/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "util/unique_fd.h"

namespace pagerfs {
namespace {

constexpr const char* kBlobsSubdir = "/blobs/sha256";

std::string quoted(const std::string& s) { return "'" + s + "'"; }

Result<void> make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return Error::from_errno(errno, "create directory " + quoted(path));
  }
  return ok();
}

Result<void> fsync_dir(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "open " + quoted(path));
  if (::fsync(fd.get()) != 0) return Error::from_errno(errno, "fsync " + quoted(path));
  return ok();
}

// A temporary file that is unlinked unless it was renamed into place.
class TempFile {
 public:
  TempFile() = default;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  Result<int> create(const std::string& dir) {
    std::string pattern = dir + "/.tmp-pack-XXXXXX";
    const int fd = ::mkostemp(pattern.data(), O_CLOEXEC);
    if (fd < 0) return Error::from_errno(errno, "create a temporary file in " + quoted(dir));
    path_ = pattern;
    return fd;
  }
  const std::string& path() const noexcept { return path_; }
  void forget() noexcept { path_.clear(); }

 private:
  std::string path_;
};

}  // namespace

Result<Store> Store::open(const std::string& root) {
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0) return Error::from_errno(errno, "store " + quoted(root));
  if (!S_ISDIR(st.st_mode)) return Error::from_errno(ENOTDIR, "store " + quoted(root));
  const std::string blobs = root + kBlobsSubdir;
  if (::stat(blobs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error(errc::not_a_store,
                 "store " + quoted(root) + " is not a pagerfs store (no blobs/sha256 directory)");
  }
  return Store(root);
}

Result<Store> Store::create(const std::string& root) {
  PAGERFS_TRYV(make_dir(root));
  PAGERFS_TRYV(make_dir(root + "/blobs"));
  PAGERFS_TRYV(make_dir(root + kBlobsSubdir));
  return open(root);
}

std::string Store::blobs_dir() const { return root_ + kBlobsSubdir; }

std::string Store::blob_path(const Digest& digest) const { return blobs_dir() + "/" + digest.hex(); }

Result<std::vector<Digest>> Store::list_blobs() const {
  const std::string dir = blobs_dir();
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) return Error::from_errno(errno, "open " + quoted(dir));
  std::vector<Digest> out;
  errno = 0;
  while (const dirent* e = ::readdir(d.get())) {
    if (Digest::is_canonical_hex(e->d_name)) out.push_back(Digest::parse(e->d_name).value());
    errno = 0;
  }
  if (errno != 0) return Error::from_errno(errno, "read " + quoted(dir));
  std::sort(out.begin(), out.end());
  return out;
}

Result<Store::PackResult> Store::pack(InputStream& input, const BlobWriterOptions& options) const {
  PAGERFS_TRYV(validate(options));
  const std::string dir = blobs_dir();
  TempFile temp;
  PAGERFS_TRY(fd, temp.create(dir));
  auto output = fd_writable_file(fd, temp.path());
  PAGERFS_TRY(header, write_blob(input, *output, options));
  PackResult result;
  result.header = header;
  result.file_size = output->size();

  const std::string final_path = blob_path(header.digest);
  if (::access(final_path.c_str(), F_OK) == 0) {
    result.already_present = true;
    return result;  // TempFile removes the copy
  }
  PAGERFS_TRYV(output->sync());
  // Blobs are immutable and readable by whoever may mount the store.
  if (::fchmod(fd, 0444) != 0) return Error::from_errno(errno, "chmod " + quoted(temp.path()));
  if (::rename(temp.path().c_str(), final_path.c_str()) != 0) {
    return Error::from_errno(errno, "rename into " + quoted(final_path));
  }
  temp.forget();
  PAGERFS_TRYV(fsync_dir(dir));
  return result;
}

}  // namespace pagerfs
