#include "fuse/private_store.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "pagerfs/store/store.h"
#include "util/quoted.h"

namespace pagerfs {
namespace {

// Marks a directory whose lock its daemon took (it is abandoned once anyone
// can take the lock).
constexpr const char* kHeldMark = ".held";

// Removes the directories named `prefix`* in `parent` that a killed daemon
// left: ours (same owner), marked held, and whose lock is free.
void remove_abandoned(const std::string& parent, const std::string& prefix) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename();
    if (!name.starts_with(prefix) || name.size() != prefix.size() + 6) continue;
    const int fd = ::open(entry.path().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_uid == ::geteuid() && ::faccessat(fd, kHeldMark, F_OK, 0) == 0 &&
        ::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      std::error_code ignored;
      std::filesystem::remove_all(entry.path(), ignored);
    }
    ::close(fd);
  }
}

}  // namespace

Result<std::unique_ptr<PrivateStore>> PrivateStore::create(const std::string& cache_dir) {
  std::string parent = cache_dir;
  if (parent.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    parent = tmp != nullptr && tmp[0] == '/' ? tmp : "/tmp";
  }
  const std::string prefix = cache_dir.empty() ? "pagerfs-mount-" : "mount-";
  std::string root = parent + "/" + prefix + "XXXXXX";
  if (::mkdtemp(root.data()) == nullptr) {
    return Error::from_errno(errno, "create the store's directory in " + pagerfs::quoted(parent));
  }
  // Held (locked) for the daemon's life: a daemon killed by SIGKILL leaves
  // it, and the next one to make a directory here removes it.
  UniqueFd lock(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!lock || ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    return Error::from_errno(errno, "lock the store's directory " + pagerfs::quoted(root));
  }
  std::unique_ptr<PrivateStore> made(
      new PrivateStore(root, cache_dir.empty() ? "" : cache_dir + "/manifests", std::move(lock)));
  const UniqueFd mark(::openat(made->lock_.get(), kHeldMark, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!mark) return Error::from_errno(errno, "mark the store's directory " + pagerfs::quoted(root));
  PAGERFS_TRYV(Store::create(root));
  remove_abandoned(parent, prefix);
  return made;
}

PrivateStore::~PrivateStore() {
  std::error_code ignored;  // nothing to do about a failure at exit
  std::filesystem::remove_all(root_, ignored);
}

}  // namespace pagerfs
