#include "pagerfs/store/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "pagerfs/format/blob_reader.h"
#include "util/directory.h"
#include "util/posix_io.h"
#include "util/quoted.h"
#include "util/safe_open.h"
#include "store/temp_blob.h"
#include "util/unique_fd.h"

namespace pagerfs {
namespace {

constexpr const char* kBlobsSubdir = "/blobs/sha256";
constexpr const char* kImagesSubdir = "/images";
constexpr const char* kConfigsSubdir = "/configs";
constexpr const char* kProfilesSubdir = "/profiles";
constexpr uint64_t kMaxManifestBytes = uint64_t{1} << 30;

// The store's own directories (blobs/, blobs/sha256/, images/) are
// owner-only: a blob or manifest may hold a file that was private in the tree
// it came from (a 0600 /etc/shadow), and a blob file cannot be less readable
// than the most private content it might hold. An existing directory is left
// as it is (a store may be shared on purpose); loose_directories() tells.
constexpr mode_t kStoreDirMode = 0700;

// Creates `path` if missing. A symbolic link or any other non-directory
// under the name is refused.
Result<void> make_dir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return Error::from_errno(errno, "create directory " + quoted(path));
  }
  if (auto dir = open_directory(path); !dir) return dir.error();
  return ok();
}

// Opens the store file `path` (a manifest or a config) for reading and
// returns it with its size, refused above `max` bytes: a hostile store must
// not make a reader allocate without limit. A missing file keeps its bare
// errno message (callers test for ENOENT); `context` names it otherwise.
struct BoundedFile {
  UniqueFd fd;
  uint64_t size = 0;
};
Result<BoundedFile> open_bounded(const std::string& path, const std::string& context, uint64_t max) {
  auto opened = open_regular_file(path, O_RDONLY);
  if (!opened) {
    if (opened.error().code() == std::errc::no_such_file_or_directory) return Error::from_errno(ENOENT, context);
    return opened.error().with_context(context);
  }
  struct stat st {};
  if (::fstat(opened.value().get(), &st) != 0) return Error::from_errno(errno, context);
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size > max) {
    return Error(errc::corrupt_blob, context + " is " + std::to_string(size) + " bytes, more than " +
                                         std::to_string(max));
  }
  return BoundedFile{std::move(opened).value(), size};
}

// The whole of the store file `path`, at most `max` bytes (open_bounded).
Result<std::vector<std::byte>> read_bounded(const std::string& path, const std::string& context, uint64_t max) {
  PAGERFS_TRY(file, open_bounded(path, context, max));
  std::vector<std::byte> bytes(static_cast<size_t>(file.size));
  for (size_t done = 0; done < bytes.size();) {
    PAGERFS_TRY(n, pread_some(file.fd.get(), std::span(bytes).subspan(done), done, path));
    if (n == 0) return Error(errc::corrupt_blob, context + " shrank while it was read");
    done += n;
  }
  return bytes;
}

// Writes (or atomically replaces) `path` in `dir` with `bytes`, durably:
// a temporary file, fsync, rename, fsync of the directory.
Result<void> write_store_file(const std::string& dir, const std::string& path, std::span<const std::byte> bytes) {
  PAGERFS_TRYV(make_dir(dir, kStoreDirMode));
  TempFile temp;
  PAGERFS_TRY(fd, temp.create(dir));
  auto output = fd_writable_file(fd, temp.path());  // owns fd: alive until installed
  PAGERFS_TRYV(output->append(bytes));
  return temp.install(fd, path, /*durable=*/true);
}

}  // namespace

Result<Store> Store::open(const std::string& root) {
  // The root is the user's name for the store and may be a symbolic link;
  // the directories inside are the store's own and may not.
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0) return Error::from_errno(errno, "store " + quoted(root));
  if (!S_ISDIR(st.st_mode)) return Error::from_errno(ENOTDIR, "store " + quoted(root));
  for (const std::string& dir : {root + "/blobs", root + kBlobsSubdir}) {
    auto fd = open_directory(dir);
    if (fd) continue;
    if (fd.error().code() == std::errc::no_such_file_or_directory) {
      return Error(errc::not_a_store,
                   "store " + quoted(root) + " is not a pagerfs store (no blobs/sha256 directory)");
    }
    return fd.error().with_context("store " + quoted(root));
  }
  return Store(root);
}

Result<Store> Store::create(const std::string& root) {
  // The root may be a directory users browse (and may be shared); what it
  // holds is protected by the owner-only directories below it.
  if (::mkdir(root.c_str(), 0755) != 0 && errno != EEXIST) {
    return Error::from_errno(errno, "create directory " + quoted(root));
  }
  PAGERFS_TRYV(make_dir(root + "/blobs", kStoreDirMode));
  PAGERFS_TRYV(make_dir(root + kBlobsSubdir, kStoreDirMode));
  return open(root);
}

std::vector<std::string> Store::loose_directories() const {
  std::vector<std::string> out;
  for (const std::string& dir : {root_ + "/blobs", blobs_dir(), images_dir()}) {
    struct stat st {};
    if (::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0077) != 0) out.push_back(dir);
  }
  return out;
}

std::string Store::blobs_dir() const { return root_ + kBlobsSubdir; }

std::string Store::blob_path(const Digest& digest) const { return blobs_dir() + "/" + digest.hex(); }

std::string Store::blob_relative_path(const Digest& digest) {
  return std::string(kBlobsSubdir + 1) + "/" + digest.hex();
}

Result<std::vector<Digest>> Store::list_blobs() const {
  const std::string dir = blobs_dir();
  std::vector<Digest> out;
  PAGERFS_TRYV(for_each_entry(dir, [&](const DirectoryEntry& e) {
    if (Digest::is_canonical_hex(e.name)) out.push_back(Digest::parse(e.name).value());
  }));
  std::sort(out.begin(), out.end());
  return out;
}

bool Store::has_blob(const Digest& digest) const { return BlobReader::open(blob_path(digest)).has_value(); }

std::string Store::images_dir() const { return root_ + kImagesSubdir; }

std::string Store::image_path(std::string_view name) const { return images_dir() + "/" + std::string(name); }

Result<std::vector<std::string>> Store::list_images() const {
  const std::string dir = images_dir();
  std::vector<std::string> out;
  auto listed = for_each_entry(dir, [&](const DirectoryEntry& e) {
    // Temporaries start with '.', which no image name may.
    if (image::validate_image_name(e.name)) out.emplace_back(e.name);
  });
  if (!listed) {
    // No images directory: a store of blobs only.
    if (listed.error().code() == std::errc::no_such_file_or_directory) return std::vector<std::string>{};
    return listed.error();
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<image::Manifest> Store::load_image(std::string_view name) const {
  const std::string context = "image '" + std::string(name) + "'";
  if (auto valid = image::validate_image_name(name); !valid) return valid.error().with_context(context);
  // Bounded: a version 1 manifest is read whole into memory. Version 2 is mapped.
  PAGERFS_TRY(file, open_bounded(image_path(name), context, kMaxManifestBytes));
  auto manifest = image::Manifest::map(file.fd.get(), file.size);
  if (!manifest) return manifest.error().with_context(context);
  return manifest;
}

Result<void> Store::write_image(std::string_view name, std::span<const std::byte> manifest) const {
  PAGERFS_TRYV(image::validate_image_name(name));
  return write_store_file(images_dir(), image_path(name), manifest);
}

std::string Store::configs_dir() const { return root_ + kConfigsSubdir; }

std::string Store::image_config_path(std::string_view name) const {
  return configs_dir() + "/" + std::string(name);
}

Result<std::vector<std::byte>> Store::load_image_config(std::string_view name) const {
  const std::string context = "config of image '" + std::string(name) + "'";
  if (auto valid = image::validate_image_name(name); !valid) return valid.error().with_context(context);
  return read_bounded(image_config_path(name), context, kMaxImageConfigBytes);
}

Result<void> Store::write_image_config(std::string_view name, std::span<const std::byte> config) const {
  PAGERFS_TRYV(image::validate_image_name(name));
  return write_store_file(configs_dir(), image_config_path(name), config);
}

Result<void> Store::remove_image_config(std::string_view name) const {
  PAGERFS_TRYV(image::validate_image_name(name));
  const std::string path = image_config_path(name);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return ok();
    return Error::from_errno(errno, "remove " + quoted(path));
  }
  return fsync_dir(configs_dir());
}

std::string Store::profiles_dir() const { return root_ + kProfilesSubdir; }

std::string Store::profile_path(std::string_view name) const { return profiles_dir() + "/" + std::string(name); }

Result<std::optional<profile::Profile>> Store::load_profile(std::string_view name) const {
  const std::string context = "prefetch profile of image '" + std::string(name) + "'";
  if (auto valid = image::validate_image_name(name); !valid) return valid.error().with_context(context);
  auto bytes = read_bounded(profile_path(name), context, profile::kMaxProfileBytes);
  if (!bytes) {
    if (bytes.error().code() == std::errc::no_such_file_or_directory) return std::optional<profile::Profile>();
    return bytes.error();
  }
  auto parsed = profile::parse(bytes.value());
  if (!parsed) return parsed.error().with_context(context);
  return std::optional<profile::Profile>(std::move(parsed).value());
}

Result<void> Store::remove_profile(std::string_view name) const {
  PAGERFS_TRYV(image::validate_image_name(name));
  const std::string path = profile_path(name);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return ok();
    return Error::from_errno(errno, "remove " + quoted(path));
  }
  return fsync_dir(profiles_dir());
}

Result<void> Store::write_profile(std::string_view name, const profile::Profile& profile) const {
  PAGERFS_TRYV(image::validate_image_name(name));
  const std::string text = profile::encode(profile);
  return write_store_file(profiles_dir(), profile_path(name), std::as_bytes(std::span(text.data(), text.size())));
}

Result<void> Store::sync() const {
  PAGERFS_TRY(fd, open_directory(blobs_dir()));
  if (::syncfs(fd.get()) != 0) return Error::from_errno(errno, "sync store " + quoted(root_));
  return ok();
}

Result<Store::PackResult> Store::pack(InputStream& input, const BlobWriterOptions& options,
                                      Durability durability) const {
  PAGERFS_TRY(temp, write_temp_blob(blobs_dir(), input, options));
  const std::string final_path = blob_path(temp.result.header.digest);
  // A torn blob under the name (a crash before a deferred sync) is replaced.
  if (auto kept = existing_blob(final_path)) return *kept;  // the TempFile removes the copy
  PAGERFS_TRYV(temp.file.install(temp.fd, final_path, durability == Durability::each));
  return temp.result;
}

}  // namespace pagerfs
