#include "pagerfs/store/blob_staging.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "store/temp_blob.h"
#include "util/directory.h"
#include "util/quoted.h"
#include "util/safe_open.h"
#include "util/unique_fd.h"

namespace pagerfs {
namespace {

constexpr std::string_view kStagePrefix = ".tmp-stage-";
// Attempts at a staging directory that remove_stale() does not take away.
constexpr int kCreateAttempts = 8;

// Removes every file in the directory `dir_fd` (named `path`), then the
// directory itself.
Result<void> remove_directory(int dir_fd, const std::string& path) {
  PAGERFS_TRY(names, list_entry_names(dir_fd, path));
  for (const std::string& name : names) {
    if (::unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return Error::from_errno(errno, "remove " + quoted(path + "/" + name));
    }
  }
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return Error::from_errno(errno, "remove " + quoted(path));
  return ok();
}

// Whether the directory open as `fd` is still the one at `path`.
bool still_at(int fd, const std::string& path) {
  struct stat by_fd {}, by_path {};
  return ::fstat(fd, &by_fd) == 0 && by_fd.st_nlink > 0 && ::lstat(path.c_str(), &by_path) == 0 &&
         by_fd.st_dev == by_path.st_dev && by_fd.st_ino == by_path.st_ino;
}

}  // namespace

BlobStaging::BlobStaging(const Store& store, std::string dir, int dir_fd)
    : store_(store), dir_(std::move(dir)), dir_fd_(dir_fd) {}

Result<std::unique_ptr<BlobStaging>> BlobStaging::create(const Store& store) {
  for (int attempt = 0; attempt < kCreateAttempts; ++attempt) {
    std::string path = store.blobs_dir() + "/" + std::string(kStagePrefix) + "XXXXXX";
    if (::mkdtemp(path.data()) == nullptr) {
      return Error::from_errno(errno, "create a staging directory in " + quoted(store.blobs_dir()));
    }
    PAGERFS_TRY(fd, open_directory(path));
    if (::flock(fd.get(), LOCK_EX) != 0) return Error::from_errno(errno, "lock " + quoted(path));
    // remove_stale() may have taken it between mkdtemp and flock: it was
    // removed, and another is made.
    if (!still_at(fd.get(), path)) continue;
    return std::unique_ptr<BlobStaging>(new BlobStaging(store, std::move(path), fd.release()));
  }
  return Error::from_errno(EAGAIN, "create a staging directory in " + quoted(store.blobs_dir()));
}

BlobStaging::~BlobStaging() {
  (void)remove_directory(dir_fd_, dir_);
  ::close(dir_fd_);
}

Result<Store::PackResult> BlobStaging::pack(InputStream& input, const BlobWriterOptions& options) {
  PAGERFS_TRY(temp, write_temp_blob(dir_, input, options));
  const Digest digest = temp.result.header.digest;
  if (auto it = staged_.find(digest); it != staged_.end()) {
    Store::PackResult kept = it->second;
    kept.already_present = true;
    return kept;
  }
  if (auto kept = existing_blob(store_.blob_path(digest))) return *kept;
  PAGERFS_TRYV(temp.file.install(temp.fd, dir_ + "/" + digest.hex(), /*durable=*/false));
  staged_.emplace(digest, temp.result);
  return temp.result;
}

Result<std::vector<Digest>> BlobStaging::commit(std::span<const Digest> keep) {
  PAGERFS_TRYV(store_.sync());
  std::vector<Digest> dropped;
  bool moved = false;
  for (const Digest& digest : keep) {
    if (!staged_.contains(digest)) continue;
    const std::string from = dir_ + "/" + digest.hex();
    const std::string to = store_.blob_path(digest);
    // link() never replaces: a whole blob the store got meanwhile is kept.
    if (::link(from.c_str(), to.c_str()) != 0) {
      if (errno != EEXIST) return Error::from_errno(errno, "move " + quoted(from) + " into the store");
      if (existing_blob(to)) {
        dropped.push_back(digest);
        staged_.erase(digest);
        continue;
      }
      // A torn blob (a crash before a deferred sync) is replaced.
      if (::rename(from.c_str(), to.c_str()) != 0) {
        return Error::from_errno(errno, "move " + quoted(from) + " into the store");
      }
    }
    ::unlink(from.c_str());
    staged_.erase(digest);
    moved = true;
  }
  if (moved) PAGERFS_TRYV(fsync_dir(store_.blobs_dir()));
  return dropped;
}

Result<size_t> BlobStaging::remove_stale(const Store& store) {
  const std::string blobs = store.blobs_dir();
  std::vector<std::string> stale;
  PAGERFS_TRYV(for_each_entry(blobs, [&](const DirectoryEntry& e) {
    if (e.name.starts_with(kStagePrefix)) stale.emplace_back(e.name);
  }));
  size_t removed = 0;
  for (const std::string& name : stale) {
    const std::string path = blobs + "/" + name;
    auto fd = open_directory(path);
    if (!fd) continue;  // gone meanwhile, or not a directory: not ours
    if (::flock(fd.value().get(), LOCK_EX | LOCK_NB) != 0) continue;  // in use
    if (!still_at(fd.value().get(), path)) continue;
    PAGERFS_TRYV(remove_directory(fd.value().get(), path));
    ++removed;
  }
  return removed;
}

}  // namespace pagerfs
