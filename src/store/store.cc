#include "pagerfs/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "pagerfs/blob_reader.h"
#include "util/posix_io.h"
#include "util/unique_fd.h"

namespace pagerfs {
namespace {

constexpr const char* kBlobsSubdir = "/blobs/sha256";
constexpr const char* kImagesSubdir = "/images";
constexpr uint64_t kMaxManifestBytes = uint64_t{1} << 30;

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

  // Publishes the file written through `fd` (still open) as `final_path`,
  // read-only: store files are immutable and readable by whoever may mount.
  // `durable`: the data and the rename are on disk before this returns;
  // otherwise a later Store::sync() makes them so.
  Result<void> install(int fd, const std::string& final_path, bool durable) {
    if (durable && ::fsync(fd) != 0) return Error::from_errno(errno, "fsync " + quoted(path_));
    if (::fchmod(fd, 0444) != 0) return Error::from_errno(errno, "chmod " + quoted(path_));
    if (::rename(path_.c_str(), final_path.c_str()) != 0) {
      return Error::from_errno(errno, "rename into " + quoted(final_path));
    }
    const std::string dir = path_.substr(0, path_.rfind('/'));
    path_.clear();
    return durable ? fsync_dir(dir) : ok();
  }

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

bool Store::has_blob(const Digest& digest) const { return BlobReader::open(blob_path(digest)).has_value(); }

std::string Store::images_dir() const { return root_ + kImagesSubdir; }

std::string Store::image_path(std::string_view name) const { return images_dir() + "/" + std::string(name); }

Result<std::vector<std::string>> Store::list_images() const {
  const std::string dir = images_dir();
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) {
    if (errno == ENOENT) return std::vector<std::string>{};
    return Error::from_errno(errno, "open " + quoted(dir));
  }
  std::vector<std::string> out;
  errno = 0;
  while (const dirent* e = ::readdir(d.get())) {
    // Temporaries start with '.', which no image name may.
    if (image::validate_image_name(e->d_name)) out.emplace_back(e->d_name);
    errno = 0;
  }
  if (errno != 0) return Error::from_errno(errno, "read " + quoted(dir));
  std::sort(out.begin(), out.end());
  return out;
}

Result<image::Manifest> Store::load_image(std::string_view name) const {
  const std::string context = "image '" + std::string(name) + "'";
  if (auto valid = image::validate_image_name(name); !valid) return valid.error().with_context(context);
  const std::string path = image_path(name);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno(errno, context);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno(errno, context);
  if (!S_ISREG(st.st_mode)) return Error::from_errno(EINVAL, context + " is not a regular file");
  // Read whole into memory: bounded, so that a hostile store cannot make a
  // daemon allocate without limit.
  if (static_cast<uint64_t>(st.st_size) > kMaxManifestBytes) {
    return Error(errc::corrupt_blob, context + " is " + std::to_string(st.st_size) +
                                             " bytes, more than a manifest may have (" +
                                             std::to_string(kMaxManifestBytes) + ")");
  }
  std::vector<std::byte> bytes(static_cast<size_t>(st.st_size));
  PAGERFS_TRY(n, pread_some(fd.get(), bytes, 0, path));
  bytes.resize(n);
  auto manifest = image::Manifest::parse(std::move(bytes));
  if (!manifest) return manifest.error().with_context(context);
  return manifest;
}

Result<void> Store::write_image(std::string_view name, std::span<const std::byte> manifest) const {
  PAGERFS_TRYV(image::validate_image_name(name));
  const std::string dir = images_dir();
  PAGERFS_TRYV(make_dir(dir));
  TempFile temp;
  PAGERFS_TRY(fd, temp.create(dir));
  auto output = fd_writable_file(fd, temp.path());  // owns fd: alive until installed
  PAGERFS_TRYV(output->append(manifest));
  return temp.install(fd, image_path(name), /*durable=*/true);
}

Result<void> Store::sync() const {
  UniqueFd fd(::open(blobs_dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "open " + quoted(blobs_dir()));
  if (::syncfs(fd.get()) != 0) return Error::from_errno(errno, "sync store " + quoted(root_));
  return ok();
}

Result<Store::PackResult> Store::pack(InputStream& input, const BlobWriterOptions& options,
                                      Durability durability) const {
  PAGERFS_TRYV(validate(options));
  const std::string dir = blobs_dir();
  TempFile temp;
  PAGERFS_TRY(fd, temp.create(dir));
  auto output = fd_writable_file(fd, temp.path());
  PAGERFS_TRY(header, write_blob(input, *output, options));
  PackResult result;
  result.header = header;
  result.file_size = output->size();

  // A torn blob under the name (a crash before a deferred sync) is replaced.
  if (has_blob(header.digest)) {
    result.already_present = true;
    return result;  // TempFile removes the copy
  }
  PAGERFS_TRYV(temp.install(fd, blob_path(header.digest), durability == Durability::each));
  return result;
}

}  // namespace pagerfs
