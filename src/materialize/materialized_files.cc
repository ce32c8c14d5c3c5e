#include "pagerfs/materialize/materialized_files.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "pagerfs/util/units.h"
#include "util/directory.h"
#include "util/lru_cache.h"
#include "util/mutex.h"
#include "util/posix_io.h"
#include "util/quoted.h"
#include "util/safe_open.h"
#include "util/unique_fd.h"

namespace pagerfs {

MaterializedFile::MaterializedFile(MaterializedFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), size_(std::exchange(other.size_, 0)) {}

MaterializedFile& MaterializedFile::operator=(MaterializedFile&& other) noexcept {
  if (this != &other) {
    UniqueFd{fd_}.reset();
    fd_ = std::exchange(other.fd_, -1);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MaterializedFile::~MaterializedFile() {
  UniqueFd{fd_}.reset();
}

int MaterializedFile::release() noexcept {
  return std::exchange(fd_, -1);
}

namespace {

constexpr std::string_view kTempPrefix = ".tmp-";
constexpr size_t kBufferSize = size_t{1} << 20;  // per write or verification in progress
// A file found is touched on disk (its mtime, the recency order of the next
// open()) at most this often: a find costs no disk write most of the time.
constexpr int64_t kTouchIntervalSeconds = 60;

uint64_t charge_of(uint64_t size) noexcept {
  constexpr uint64_t unit = MaterializedFiles::kChargeUnit;
  if (size > UINT64_MAX - (unit - 1)) return UINT64_MAX;
  return (size + unit - 1) / unit * unit;
}

// The file a verification was about: a file replaced under its name (another
// process's rename, a restored backup) is another inode and is verified again.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  uint64_t size = 0;
  bool operator==(const FileId&) const = default;
};

FileId id_of(const struct stat& st) noexcept {
  return {st.st_dev, st.st_ino, static_cast<uint64_t>(st.st_size)};
}

// Errors of this process rather than of the file it opened: reported, never
// taken for damage.
bool is_local_failure(const std::error_code& code) noexcept {
  return code == std::errc::too_many_files_open ||
         code == std::errc::too_many_files_open_in_system || code == std::errc::not_enough_memory ||
         code == std::errc::interrupted;
}

struct Entry {
  uint64_t size = 0;
  std::optional<FileId> verified;  // the file this process hashed, if it did
  int64_t mtime = 0;               // seconds, as last known on disk
};

// Hashes the `size` bytes of `fd` and compares them with `content`.
Result<void> verify(int fd, uint64_t size, const Digest& content, const std::string& path) {
  std::vector<std::byte> buffer(std::min<uint64_t>(size, kBufferSize));
  Sha256 hash;
  for (uint64_t offset = 0; offset < size;) {
    const auto want = std::span(buffer).first(std::min<uint64_t>(buffer.size(), size - offset));
    PAGERFS_TRY(got, pread_some(fd, want, offset, pagerfs::quoted(path)));
    if (got < want.size()) {
      return Error(std::make_error_code(std::errc::io_error),
                   pagerfs::quoted(path) + " ended at byte " + std::to_string(offset + got) +
                       " of " + std::to_string(size));
    }
    hash.update(want);
    offset += got;
  }
  if (const Digest got = hash.finish(); got != content) {
    return Error(errc::digest_mismatch,
                 pagerfs::quoted(path) + " holds content with SHA-256 " + got.hex());
  }
  return ok();
}

class MaterializedFilesImpl final : public MaterializedFiles {
 public:
  MaterializedFilesImpl(const Options& options, std::shared_ptr<spdlog::logger> logger)
      : dir_(options.directory),
        budget_(options.budget_bytes),
        logger_(logger ? std::move(logger) : spdlog::default_logger()) {}

  Result<void> init() EXCLUDES(mu_);

  Result<MaterializedFile> add(const Digest& content, uint64_t size, const Reader& read) override
      EXCLUDES(mu_) {
    auto added = add_file(content, size, read);
    if (!added) {
      MutexLock lock(mu_);
      ++stats_.add_failures;
    }
    return added;
  }

  Result<std::optional<MaterializedFile>> find(const Digest& content) override EXCLUDES(mu_) {
    PAGERFS_TRY(found, lookup(content));
    MutexLock lock(mu_);
    ++(found ? stats_.hits : stats_.misses);
    return std::move(found);
  }

  MaterializedFilesStats stats() const override EXCLUDES(mu_) {
    MutexLock lock(mu_);
    MaterializedFilesStats s = stats_;
    s.files = files_.size();
    s.bytes = files_.cost();
    s.budget_bytes = budget_;
    return s;
  }

  const std::string& directory() const noexcept override { return dir_; }

 private:
  // Room for one file being written, reserved against the budget, and the
  // claim to be its one writer in this process (made by reserve()): given
  // back by the destructor unless the file was published.
  class Reservation {
   public:
    Reservation(MaterializedFilesImpl& files, const Digest& content, uint64_t charge)
        : files_(files), content_(content), charge_(charge) {}
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
    ~Reservation() {
      if (!published_) {
        MutexLock lock(files_.mu_);
        files_.unreserve(content_, charge_);
      }
    }
    // The file is in the index (its charge counted there) and the caller
    // called unreserve().
    void published() noexcept { published_ = true; }

   private:
    MaterializedFilesImpl& files_;
    const Digest content_;
    const uint64_t charge_;
    bool published_ = false;
  };

  // A file being written under a temporary name; removed unless published.
  struct TempFile {
    std::string path;
    UniqueFd fd;
    bool published = false;
    TempFile() = default;
    TempFile(TempFile&&) = default;
    ~TempFile() {
      if (fd && !published) ::unlink(path.c_str());
    }
  };

  std::string path_of(const Digest& d) const { return dir_ + "/" + d.hex(); }
  std::string context() const { return "materialized files " + pagerfs::quoted(dir_); }

  // find() without the hit or miss counted: the file opened (verified once),
  // or nothing.
  Result<std::optional<MaterializedFile>> lookup(const Digest& content) EXCLUDES(mu_);
  Result<MaterializedFile> add_file(const Digest& content, uint64_t size, const Reader& read)
      EXCLUDES(mu_);
  // Claims the writing of `content` and room for `charge` bytes, evicting
  // least recently used files; false (and no claim) when another add() of
  // `content` finished meanwhile and the caller should look again.
  // Returns whether it did (the caller then makes a Reservation that gives
  // them back).
  Result<bool> reserve(const Digest& content, uint64_t charge) EXCLUDES(mu_);
  void unreserve(const Digest& content, uint64_t charge) REQUIRES(mu_) {
    reserved_ -= charge;
    writing_.erase(content);
    written_.notify_all();
  }
  // Creates and locks a new temporary file for `content`.
  Result<TempFile> create_temp(const Digest& content);
  // Writes the content to `temp`, checking its digest and syncing it.
  Result<void> write_content(TempFile& temp, const Digest& content, uint64_t size,
                             const Reader& read, const std::string& path);

  // Called for a file found damaged: deletes what is under the name if it is
  // still the file `id` (not a good file renamed over it meanwhile), forgets
  // it, counts and logs it.
  void discard(const Digest& content, const FileId& id, const std::string& reason) EXCLUDES(mu_);
  // Forgets `content` if its file is gone (deleted by another process).
  void forget_if_gone(const Digest& content) EXCLUDES(mu_);
  // Deletes a temporary file left by a crash, unless its writer still holds it.
  void remove_leftover_temp(const std::string& name);

  // The bytes of the files held and being written fit in the budget with
  // `charge` more.
  bool fits(uint64_t charge) const REQUIRES(mu_) {
    const uint64_t used = files_.cost() + reserved_;
    return used <= budget_ && charge <= budget_ - used;
  }
  void evict_oldest() REQUIRES(mu_);

  const std::string dir_;
  const uint64_t budget_;
  std::shared_ptr<spdlog::logger> logger_;
  UniqueFd dir_fd_;
  std::atomic<uint64_t> temp_sequence_{0};

  mutable Mutex mu_;
  CondVar written_;  // an add() in progress finished (writing_ lost a digest)
  // The files held, least recently used first out, each costing its charge;
  // evicted by evict_oldest() (the capacity is not the budget: files being
  // written count too).
  LruCache<Digest, Entry, DigestHash> files_ GUARDED_BY(mu_);
  std::unordered_set<Digest, DigestHash> writing_ GUARDED_BY(mu_);  // by add() calls in progress
  uint64_t reserved_ GUARDED_BY(mu_) = 0;                           // their charges
  MaterializedFilesStats stats_ GUARDED_BY(mu_);
};

Result<void> MaterializedFilesImpl::init() {
  if (dir_.empty()) return Error(errc::invalid_argument, "materialized files: no directory given");
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error::from_errno(errno, "create " + context());
  }
  auto dir_fd = open_directory(dir_, Symlinks::refuse);
  if (!dir_fd) return dir_fd.error().with_context("materialized files");
  dir_fd_ = std::move(dir_fd).value();
  if (::faccessat(dir_fd_.get(), ".", R_OK | W_OK | X_OK, 0) != 0) {
    return Error::from_errno(errno, context() + " is not usable");
  }

  // Index the files by their sizes and mtimes; hashing waits for find().
  struct Found {
    Digest content;
    uint64_t size;
    struct timespec mtime;
  };
  std::vector<Found> found;
  std::vector<std::string> temps;
  uint64_t foreign = 0, damaged = 0;
  PAGERFS_TRYV(for_each_entry(dir_fd_.get(), dir_, [&](const DirectoryEntry& e) {
    const std::string name(e.name);
    if (name.starts_with(kTempPrefix)) {
      temps.push_back(name);  // after the walk: removing one takes a lock test
      return;
    }
    struct stat st {};
    if (::fstatat(dir_fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return;  // gone meanwhile
    if (!Digest::is_canonical_hex(name)) {
      // Not ours. A directory is left alone (it may be a mount's lost+found).
      if (!S_ISDIR(st.st_mode) && ::unlinkat(dir_fd_.get(), name.c_str(), 0) == 0) ++foreign;
      return;
    }
    if (!S_ISREG(st.st_mode)) {
      std::error_code ec;
      std::filesystem::remove_all(dir_ + "/" + name, ec);
      logger_->warn("{}: deleted {}: {} in a file's place", context(), pagerfs::quoted(name),
                    file_type_name(st.st_mode));
      ++damaged;
      return;
    }
    found.push_back({Digest::parse(name).value(), static_cast<uint64_t>(st.st_size), st.st_mtim});
  }));
  for (const std::string& name : temps) remove_leftover_temp(name);
  if (foreign > 0)
    logger_->info("{}: deleted {} file(s) not named by a digest", context(), foreign);

  // Least recently used first: the oldest mtime (ties by name, so that the
  // order does not depend on readdir's).
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    if (a.mtime.tv_sec != b.mtime.tv_sec) return a.mtime.tv_sec < b.mtime.tv_sec;
    if (a.mtime.tv_nsec != b.mtime.tv_nsec) return a.mtime.tv_nsec < b.mtime.tv_nsec;
    return a.content < b.content;
  });
  MutexLock lock(mu_);
  stats_.verification_failures += damaged;
  for (const Found& f : found) {
    files_.insert(f.content, Entry{f.size, std::nullopt, f.mtime.tv_sec}, charge_of(f.size));
  }
  const uint64_t evictions = stats_.evictions;
  while (!fits(0) && !files_.empty()) evict_oldest();
  if (stats_.evictions > evictions) {
    logger_->info("{}: evicted {} file(s) to fit the budget of {}", context(),
                  stats_.evictions - evictions, format_size(budget_));
  }
  return ok();
}

void MaterializedFilesImpl::remove_leftover_temp(const std::string& name) {
  const std::string path = dir_ + "/" + name;
  auto opened = open_regular_file(path, O_RDONLY);
  if (!opened) {
    std::error_code ec;
    if (opened.error().code() == errc::not_a_regular_file) std::filesystem::remove_all(path, ec);
    return;
  }
  // A writer holds the lock of its temporary file until it is renamed: one
  // that we can lock is abandoned (its writer died), or just renamed.
  if (::flock(opened.value().get(), LOCK_EX | LOCK_NB) != 0) return;
  if (::unlink(path.c_str()) == 0)
    logger_->info("{}: deleted {}, left by an interrupted write", context(), pagerfs::quoted(name));
}

void MaterializedFilesImpl::evict_oldest() {
  const std::string path = path_of(files_.oldest_key());
  files_.erase(files_.oldest_key());
  // A holder of the file keeps reading it: unlink removes only the name.
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    logger_->warn("{}: cannot evict {}: {}", context(), pagerfs::quoted(path),
                  std::strerror(errno));
  }
  ++stats_.evictions;
}

Result<std::optional<MaterializedFile>> MaterializedFilesImpl::lookup(const Digest& content) {
  const std::string path = path_of(content);
  std::optional<FileId> verified;
  {
    MutexLock lock(mu_);
    if (const Entry* e = files_.get(content)) verified = e->verified;
  }
  auto opened = open_regular_file(path, O_RDONLY);
  if (!opened) {
    const Error& error = opened.error();
    if (is_local_failure(error.code())) return error.with_context(context());
    struct stat st {};
    if (error.code() == std::errc::no_such_file_or_directory || ::lstat(path.c_str(), &st) != 0) {
      // Deleted (evicted, or by another process); or not there yet, and
      // then maybe renamed into place since the open: a miss either way,
      // never damage.
      forget_if_gone(content);
      return std::nullopt;
    }
    // A FIFO, a directory, a symbolic link, unreadable, ... unless a good
    // file was renamed over it since the open (then: a miss this time).
    if (error.code() == errc::not_a_regular_file && S_ISREG(st.st_mode)) return std::nullopt;
    discard(content, id_of(st), error.message());
    return std::nullopt;
  }
  UniqueFd fd = std::move(opened).value();
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno(errno, "stat " + pagerfs::quoted(path));
  const FileId id = id_of(st);
  const bool verify_now = verified != id;
  if (verify_now) {
    if (auto checked = verify(fd.get(), id.size, content, path); !checked) {
      discard(content, id, checked.error().message());
      return std::nullopt;
    }
  }

  const int64_t now = ::time(nullptr);
  bool touch = false;
  {
    MutexLock lock(mu_);
    if (verify_now) stats_.bytes_verified += id.size;
    Entry* e = files_.peek(content);
    if (!e || e->verified != id) {
      // First verified here, or picked up from another process. Indexed only
      // while its name still holds it (not evicted or replaced meanwhile);
      // returned in any case: its bytes are right.
      struct stat now_st {};
      if (::lstat(path.c_str(), &now_st) == 0 && id_of(now_st) == id) {
        files_.insert(content, Entry{id.size, id, st.st_mtim.tv_sec}, charge_of(id.size));
        while (!fits(0) && !files_.empty())
          evict_oldest();  // may be this very file, if over the budget alone
        e = files_.peek(content);
      }
    }
    if (e && now - e->mtime >= kTouchIntervalSeconds) {
      e->mtime = now;
      touch = true;
    }
  }
  if (touch) ::futimens(fd.get(), nullptr);  // best effort: it only orders the next open()
  return MaterializedFile(fd.release(), id.size);
}

void MaterializedFilesImpl::discard(const Digest& content, const FileId& id,
                                    const std::string& reason) {
  const std::string path = path_of(content);  // `reason` names it
  bool removed = false;
  {
    MutexLock lock(mu_);
    ++stats_.verification_failures;
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && id_of(st) == id) {
      std::error_code ec;
      removed = std::filesystem::remove_all(path, ec) > 0;
    }
    // Forgotten even if it could not be deleted (an add() then fails to
    // rename over it) or was replaced meanwhile (the next find verifies it).
    files_.erase(content);
  }
  logger_->warn("materialized files: damaged file: {}{}", reason, removed ? "; deleted it" : "");
}

void MaterializedFilesImpl::forget_if_gone(const Digest& content) {
  const std::string path = path_of(content);
  MutexLock lock(mu_);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) files_.erase(content);
}

Result<MaterializedFile> MaterializedFilesImpl::add_file(const Digest& content, uint64_t size,
                                                         const Reader& read) {
  const std::string path = path_of(content);
  const uint64_t charge = charge_of(size);
  if (charge > budget_) {
    return Error(std::make_error_code(std::errc::file_too_large),
                 "add " + pagerfs::quoted(path) + ": " + format_size(size) +
                     " is more than the whole budget of " + format_size(budget_));
  }
  std::optional<Reservation> reservation;
  while (!reservation) {
    PAGERFS_TRY(found, lookup(content));
    if (found) {
      MutexLock lock(mu_);
      ++stats_.hits;
      return std::move(*found);
    }
    PAGERFS_TRY(reserved, reserve(content, charge));
    if (reserved) reservation.emplace(*this, content, charge);
  }
  PAGERFS_TRY(temp, create_temp(content));
  PAGERFS_TRYV(write_content(temp, content, size, read, path));
  // What add() returns: read-only, like every file found.
  PAGERFS_TRY(read_only, open_regular_file(temp.path, O_RDONLY));
  {
    MutexLock lock(mu_);
    // The rename and the index change together: a damaged file being
    // discarded by find() meanwhile is never confused with this one.
    if (::rename(temp.path.c_str(), path.c_str()) != 0) {
      return Error::from_errno(
          errno, "add " + pagerfs::quoted(path) + ": rename " + pagerfs::quoted(temp.path));
    }
    temp.published = true;
    struct stat st {};
    ::fstat(read_only.get(), &st);
    files_.insert(content, Entry{size, id_of(st), ::time(nullptr)}, charge);
    unreserve(content, charge);
    reservation->published();
    ++stats_.adds;
  }
  return MaterializedFile(read_only.release(), size);
}

Result<bool> MaterializedFilesImpl::reserve(const Digest& content, uint64_t charge) {
  MutexLock lock(mu_);
  if (writing_.contains(content)) {
    // Another add() is writing it: wait, then look again (it may have failed).
    written_.wait(mu_, [&]() REQUIRES(mu_) { return !writing_.contains(content); });
    return false;
  }
  if (files_.contains(content)) return false;  // added since we looked
  while (!fits(charge) && !files_.empty()) evict_oldest();
  if (!fits(charge)) {
    return Error(std::make_error_code(std::errc::no_space_on_device),
                 "add " + pagerfs::quoted(path_of(content)) + ": files being written hold " +
                     format_size(reserved_) + " of the budget of " + format_size(budget_));
  }
  reserved_ += charge;
  writing_.insert(content);
  return true;
}

Result<MaterializedFilesImpl::TempFile> MaterializedFilesImpl::create_temp(const Digest& content) {
  for (int attempt = 0;; ++attempt) {
    TempFile temp;
    temp.path = dir_ + "/" + std::string(kTempPrefix) + content.hex() + "." +
                std::to_string(::getpid()) + "." +
                std::to_string(temp_sequence_.fetch_add(1, std::memory_order_relaxed));
    auto created = open_regular_file(temp.path, O_RDWR | O_CREAT | O_EXCL, 0400);
    if (!created) {
      // A name left by an earlier process with our pid: take the next one.
      if (created.error().code() == std::errc::file_exists && attempt < 3) continue;
      return created.error().with_context("add " + pagerfs::quoted(path_of(content)));
    }
    temp.fd = std::move(created).value();
    // Tells open() in another process that this file is being written. (One
    // that took it for abandoned between the open and this lock deletes its
    // name: the rename then fails, and the add() with it.)
    if (::flock(temp.fd.get(), LOCK_EX | LOCK_NB) != 0) {
      return Error::from_errno(errno, "lock " + pagerfs::quoted(temp.path));
    }
    return temp;
  }
}

Result<void> MaterializedFilesImpl::write_content(TempFile& temp, const Digest& content,
                                                  uint64_t size, const Reader& read,
                                                  const std::string& path) {
  std::vector<std::byte> buffer(std::min<uint64_t>(size, kBufferSize));
  Sha256 hash;
  for (uint64_t offset = 0; offset < size;) {
    const auto want = std::span(buffer).first(std::min<uint64_t>(buffer.size(), size - offset));
    auto read_result = read(offset, want);
    if (!read_result) return read_result.error().with_context("add " + pagerfs::quoted(path));
    const size_t got = read_result.value();
    if (got == 0) {
      return Error(std::make_error_code(std::errc::io_error),
                   "add " + pagerfs::quoted(path) + ": the content ended at byte " +
                       std::to_string(offset) + " of " + std::to_string(size));
    }
    if (got > want.size()) {
      return Error(errc::invalid_argument,
                   "add " + pagerfs::quoted(path) + ": the reader returned " + std::to_string(got) +
                       " bytes for a buffer of " + std::to_string(want.size()));
    }
    hash.update(want.first(got));
    PAGERFS_TRYV(pwrite_all(temp.fd.get(), want.first(got), offset, pagerfs::quoted(temp.path)));
    offset += got;
  }
  if (const Digest got = hash.finish(); got != content) {
    return Error(errc::digest_mismatch,
                 "add " + pagerfs::quoted(path) + ": the content's SHA-256 is " + got.hex());
  }
  // No fsync: a file torn by a power loss is caught by the next process's
  // verification (find), and a sync per file would cost every open of a
  // small file milliseconds.
  return ok();
}

}  // namespace

Result<std::unique_ptr<MaterializedFiles>> MaterializedFiles::open(
    const Options& options, std::shared_ptr<spdlog::logger> logger) {
  auto files = std::make_unique<MaterializedFilesImpl>(options, std::move(logger));
  PAGERFS_TRYV(files->init());
  return std::unique_ptr<MaterializedFiles>(std::move(files));
}

}  // namespace pagerfs
