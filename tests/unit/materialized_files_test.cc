#include "pagerfs/materialize/materialized_files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "support/returns_quickly.h"
#include "support/subprocess.h"
#include "support/test_data.h"

namespace pagerfs {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

constexpr uint64_t kUnit = MaterializedFiles::kChargeUnit;

struct Content {
  std::vector<std::byte> bytes;
  Digest digest;
};

Content make_content(size_t size, uint64_t seed) {
  Content c{testing::random_bytes(size, seed), {}};
  c.digest = Sha256::of(c.bytes);
  return c;
}

// Serves `bytes`, at most `max_chunk` at a time (short reads, as a decoder
// gives them).
MaterializedFiles::Reader reader_of(const std::vector<std::byte>& bytes,
                                    size_t max_chunk = SIZE_MAX) {
  return [&bytes, max_chunk](uint64_t offset, std::span<std::byte> out) -> Result<size_t> {
    const size_t n = std::min({out.size(), max_chunk, bytes.size() - static_cast<size_t>(offset)});
    std::copy_n(bytes.begin() + static_cast<ptrdiff_t>(offset), n, out.begin());
    return n;
  };
}

// The whole content of an opened file, read through its descriptor.
std::vector<std::byte> read_all(const MaterializedFile& file) {
  struct stat st {};
  EXPECT_EQ(::fstat(file.fd(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), file.size());
  std::vector<std::byte> out(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(file.fd(), out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

class MaterializedFilesTest : public ::testing::Test {
 protected:
  std::unique_ptr<MaterializedFiles> open_files(uint64_t budget) {
    auto files = MaterializedFiles::open({dir_, budget});
    EXPECT_TRUE(files) << files.error().message();
    return files ? std::move(files).value() : nullptr;
  }

  MaterializedFile add(MaterializedFiles& files, const Content& c) {
    auto added = files.add(c.digest, c.bytes.size(), reader_of(c.bytes, 70001));
    EXPECT_TRUE(added) << added.error().message();
    return added ? std::move(added).value() : MaterializedFile();
  }

  // True if `files` finds `c` with exactly its bytes; false if it finds nothing.
  bool finds(MaterializedFiles& files, const Content& c) {
    auto found = files.find(c.digest);
    EXPECT_TRUE(found) << found.error().message();
    if (!found || !found.value()) return false;
    EXPECT_EQ(read_all(*found.value()), c.bytes);
    return true;
  }

  std::string path_of(const Content& c) const { return dir_ + "/" + c.digest.hex(); }
  bool on_disk(const Content& c) const {
    struct stat st {};
    return ::lstat(path_of(c).c_str(), &st) == 0;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }
  void set_mtime(const Content& c, time_t seconds) {
    const struct timespec times[2] = {{seconds, 0}, {seconds, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path_of(c).c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  }

  TempDir tmp_;
  const std::string dir_ = tmp_ / "materialized";
};

TEST_F(MaterializedFilesTest, AddThenFindReturnsTheBytes) {
  auto files = open_files(64 << 20);
  // Not a multiple of the write buffer (1 MiB) nor of a page.
  const Content c = make_content((3 << 20) + 4096 - 42, 1);
  MaterializedFile added = add(*files, c);
  ASSERT_GE(added.fd(), 0);
  EXPECT_EQ(added.size(), c.bytes.size());
  EXPECT_EQ(read_all(added), c.bytes);
  EXPECT_EQ(::fcntl(added.fd(), F_GETFL) & O_ACCMODE, O_RDONLY);

  EXPECT_TRUE(finds(*files, c));
  struct stat st {};
  ASSERT_EQ(::lstat(path_of(c).c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0400u);
  EXPECT_EQ(names(), std::vector<std::string>{c.digest.hex()});  // no temporary left

  const MaterializedFilesStats s = files->stats();
  EXPECT_EQ(s.files, 1u);
  EXPECT_EQ(s.bytes, (c.bytes.size() + kUnit - 1) / kUnit * kUnit);
  EXPECT_EQ(s.budget_bytes, uint64_t{64} << 20);
  EXPECT_EQ(s.adds, 1u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 0u);
  EXPECT_EQ(s.bytes_verified, 0u);  // what this process wrote is not hashed again
}

TEST_F(MaterializedFilesTest, EmptyFile) {
  auto files = open_files(1 << 20);
  const Content c = make_content(0, 1);
  MaterializedFile added = add(*files, c);
  EXPECT_EQ(added.size(), 0u);
  EXPECT_TRUE(finds(*files, c));
  EXPECT_EQ(files->stats().bytes, 0u);
}

TEST_F(MaterializedFilesTest, FindOfAnUnknownDigestIsAMiss) {
  auto files = open_files(1 << 20);
  EXPECT_FALSE(finds(*files, make_content(100, 1)));
  EXPECT_EQ(files->stats().misses, 1u);
  EXPECT_EQ(files->stats().hits, 0u);
}

TEST_F(MaterializedFilesTest, CreatesTheDirectoryOwnerOnly) {
  auto files = open_files(1 << 20);
  struct stat st {};
  ASSERT_EQ(::lstat(dir_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(MaterializedFilesTest, RefusesASymlinkOrAFileAsTheDirectory) {
  fs::create_directory(tmp_ / "real");
  fs::create_directory_symlink(tmp_ / "real", dir_);
  auto via_link = MaterializedFiles::open({dir_, 1 << 20});
  ASSERT_FALSE(via_link);
  EXPECT_NE(via_link.error().message().find(dir_), std::string::npos) << via_link.error().message();
  EXPECT_NE(via_link.error().message().find("symbolic link"), std::string::npos)
      << via_link.error().message();
  EXPECT_EQ(via_link.error().message().find('\n'), std::string::npos);

  testing::write_file(tmp_ / "file", "x");
  auto file = MaterializedFiles::open({tmp_ / "file", 1 << 20});
  ASSERT_FALSE(file);
  EXPECT_NE(file.error().message().find(tmp_ / "file"), std::string::npos)
      << file.error().message();
  EXPECT_NE(file.error().message().find("not a directory"), std::string::npos)
      << file.error().message();
}

TEST_F(MaterializedFilesTest, PersistsAcrossReopenAndVerifiesOnce) {
  const Content c = make_content(100000, 2);
  add(*open_files(1 << 20), c);

  auto files = open_files(1 << 20);
  EXPECT_EQ(files->stats().files, 1u);
  EXPECT_EQ(files->stats().bytes, 25 * kUnit);
  EXPECT_EQ(files->stats().bytes_verified, 0u);  // open() does not hash
  EXPECT_TRUE(finds(*files, c));
  EXPECT_EQ(files->stats().bytes_verified, c.bytes.size());
  EXPECT_TRUE(finds(*files, c));
  EXPECT_EQ(files->stats().bytes_verified, c.bytes.size());  // once per process
  EXPECT_EQ(files->stats().hits, 2u);
  EXPECT_EQ(files->stats().verification_failures, 0u);
}

enum class Damage { flip_byte, truncate, grow, directory, symlink, fifo };

void damage(const std::string& path, Damage kind) {
  switch (kind) {
    case Damage::flip_byte: {
      ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
      const int fd = ::open(path.c_str(), O_RDWR);
      ASSERT_GE(fd, 0);
      std::byte b{};
      ASSERT_EQ(::pread(fd, &b, 1, 5000), 1);
      b ^= std::byte{0x01};
      ASSERT_EQ(::pwrite(fd, &b, 1, 5000), 1);
      ::close(fd);
      ASSERT_EQ(::chmod(path.c_str(), 0400), 0);
      break;
    }
    case Damage::truncate:
      ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
      ASSERT_EQ(::truncate(path.c_str(), 4096), 0);
      break;
    case Damage::grow:
      ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
      ASSERT_EQ(::truncate(path.c_str(), 200000), 0);
      break;
    case Damage::directory:
      fs::remove(path);
      fs::create_directories(path + "/sub");
      break;
    case Damage::symlink: {
      // To a copy of the right bytes: still not to be followed.
      fs::rename(path, path + ".target");
      fs::create_symlink(path + ".target", path);
      break;
    }
    case Damage::fifo:
      fs::remove(path);
      ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
      break;
  }
}

class MaterializedFilesDamageTest : public MaterializedFilesTest,
                                    public ::testing::WithParamInterface<Damage> {};

// Damaged while no daemon ran: open() or the first find() catches it.
TEST_P(MaterializedFilesDamageTest, DamageFoundAtReopenIsDeletedAndNotReturned) {
  const Content c = make_content(100000, 3);
  const Content other = make_content(5000, 4);
  {
    auto files = open_files(1 << 20);
    add(*files, c);
    add(*files, other);
  }
  damage(path_of(c), GetParam());
  auto files = open_files(1 << 20);
  EXPECT_FALSE(testing::returns_quickly({path_of(c)}, [&] { return finds(*files, c); }));
  EXPECT_FALSE(on_disk(c));
  EXPECT_TRUE(finds(*files, other));
  const MaterializedFilesStats s = files->stats();
  EXPECT_EQ(s.verification_failures, 1u);
  EXPECT_EQ(s.files, 1u);
  EXPECT_EQ(s.bytes, 2 * kUnit);
  // It can be added again.
  add(*files, c);
  EXPECT_TRUE(finds(*files, c));
}

// Damaged under a running instance (after open(), before the first find).
TEST_P(MaterializedFilesDamageTest, DamageBeforeTheFirstFindIsDeletedAndNotReturned) {
  const Content c = make_content(100000, 3);
  add(*open_files(1 << 20), c);
  auto files = open_files(1 << 20);
  damage(path_of(c), GetParam());
  EXPECT_FALSE(testing::returns_quickly({path_of(c)}, [&] { return finds(*files, c); }));
  EXPECT_FALSE(on_disk(c));
  EXPECT_EQ(files->stats().verification_failures, 1u);
  EXPECT_EQ(files->stats().files, 0u);
  EXPECT_EQ(files->stats().bytes, 0u);
  EXPECT_EQ(files->stats().misses, 1u);
}

std::string damage_name(const ::testing::TestParamInfo<Damage>& info) {
  static const char* const kNames[] = {"flip_byte", "truncate", "grow",
                                       "directory", "symlink",  "fifo"};
  return kNames[static_cast<int>(info.param)];
}

INSTANTIATE_TEST_SUITE_P(Kinds, MaterializedFilesDamageTest,
                         ::testing::Values(Damage::flip_byte, Damage::truncate, Damage::grow,
                                           Damage::directory, Damage::symlink, Damage::fifo),
                         damage_name);

TEST_F(MaterializedFilesTest, AFileReplacedUnderItsNameIsVerifiedAgain) {
  auto files = open_files(1 << 20);
  const Content c = make_content(50000, 5);
  add(*files, c);
  EXPECT_TRUE(finds(*files, c));
  // Another writer renames wrong bytes over it: a new inode.
  std::vector<std::byte> wrong = c.bytes;
  wrong[100] ^= std::byte{0xff};
  testing::write_file(tmp_ / "wrong", testing::to_string(wrong));
  fs::rename(tmp_ / "wrong", path_of(c));
  EXPECT_FALSE(finds(*files, c));
  EXPECT_FALSE(on_disk(c));
  EXPECT_EQ(files->stats().verification_failures, 1u);
}

TEST_F(MaterializedFilesTest, OpenRemovesLeftoversAndForeignNames) {
  fs::create_directories(dir_ + "/lost+found");
  fs::create_directories(dir_ + "/.tmp-dir/sub");
  testing::write_file(dir_ + "/.tmp-" + std::string(64, 'a') + ".1.0", "half written");
  testing::write_file(dir_ + "/.tmp-being-written", "another process writes this");
  testing::write_file(dir_ + "/README", "not ours");
  testing::write_file(dir_ + "/" + std::string(64, 'A'), "upper case hex");
  // Held by a live writer (flock locks are per open file description).
  const int held = ::open((dir_ + "/.tmp-being-written").c_str(), O_RDONLY);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);

  auto files = open_files(1 << 20);
  EXPECT_EQ(names(), (std::vector<std::string>{".tmp-being-written", "lost+found"}));
  EXPECT_EQ(files->stats().files, 0u);
  ::close(held);
  files = open_files(1 << 20);
  EXPECT_EQ(names(), std::vector<std::string>{"lost+found"});
}

TEST_F(MaterializedFilesTest, EvictsLeastRecentlyUsedFirst) {
  auto files = open_files(3 * kUnit);
  const Content a = make_content(kUnit - 42, 10), b = make_content(kUnit - 42, 11),
                c = make_content(kUnit - 42, 12), d = make_content(kUnit, 13);
  add(*files, a);
  add(*files, b);
  add(*files, c);
  EXPECT_TRUE(finds(*files, a));  // b is now the least recently used
  add(*files, d);
  EXPECT_FALSE(on_disk(b));
  EXPECT_TRUE(on_disk(a));
  EXPECT_TRUE(on_disk(c));
  EXPECT_TRUE(on_disk(d));
  EXPECT_FALSE(finds(*files, b));
  EXPECT_EQ(files->stats().evictions, 1u);
  EXPECT_EQ(files->stats().files, 3u);
  EXPECT_EQ(files->stats().bytes, 3 * kUnit);

  // Order now a, c, d: a file of two units makes room by evicting a, then c.
  EXPECT_TRUE(finds(*files, c));
  EXPECT_TRUE(finds(*files, d));
  add(*files, make_content(2 * kUnit - 1, 14));
  EXPECT_FALSE(on_disk(a));
  EXPECT_FALSE(on_disk(c));
  EXPECT_TRUE(on_disk(d));
  EXPECT_EQ(files->stats().evictions, 3u);
  EXPECT_EQ(files->stats().bytes, 3 * kUnit);
}

TEST_F(MaterializedFilesTest, AnEvictedFileHeldOpenStaysReadable) {
  auto files = open_files(2 * kUnit);
  const Content a = make_content(kUnit + 7, 20);
  MaterializedFile held = add(*files, a);
  auto found = files->find(a.digest);
  ASSERT_TRUE(found && found.value());
  add(*files, make_content(kUnit, 21));  // a goes: it needs two units
  EXPECT_FALSE(on_disk(a));
  EXPECT_EQ(files->stats().evictions, 1u);
  EXPECT_EQ(read_all(held), a.bytes);
  EXPECT_EQ(read_all(*found.value()), a.bytes);
}

TEST_F(MaterializedFilesTest, AFileLargerThanTheBudgetIsRefused) {
  auto files = open_files(2 * kUnit);
  const Content small = make_content(kUnit, 30);
  add(*files, small);
  const Content big = make_content(2 * kUnit + 1, 31);
  bool read_called = false;
  auto added = files->add(big.digest, big.bytes.size(),
                          [&](uint64_t, std::span<std::byte>) -> Result<size_t> {
                            read_called = true;
                            return size_t{0};
                          });
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().code(), std::errc::file_too_large);
  EXPECT_NE(added.error().message().find(path_of(big)), std::string::npos)
      << added.error().message();
  EXPECT_FALSE(read_called);
  EXPECT_TRUE(on_disk(small));  // nothing evicted for it
  EXPECT_EQ(files->stats().add_failures, 1u);
  EXPECT_EQ(files->stats().evictions, 0u);
  // Exactly the budget fits.
  add(*files, make_content(2 * kUnit, 32));
}

TEST_F(MaterializedFilesTest, ADigestMismatchLeavesNothing) {
  auto files = open_files(1 << 20);
  const Content c = make_content(30000, 40);
  const Content claimed = make_content(30000, 41);
  auto added = files->add(claimed.digest, c.bytes.size(), reader_of(c.bytes));
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().code(), errc::digest_mismatch);
  EXPECT_NE(added.error().message().find(c.digest.hex()), std::string::npos)
      << added.error().message();
  EXPECT_TRUE(names().empty());
  EXPECT_FALSE(finds(*files, claimed));
  EXPECT_EQ(files->stats().add_failures, 1u);
  EXPECT_EQ(files->stats().bytes, 0u);
  // The room it had reserved is free again.
  add(*files, c);
}

TEST_F(MaterializedFilesTest, AReaderErrorOrAnEarlyEndLeavesNothing) {
  auto files = open_files(1 << 20);
  const Content c = make_content(3 << 18, 50);
  int calls = 0;
  auto failed = files->add(
      c.digest, c.bytes.size(), [&](uint64_t offset, std::span<std::byte> out) -> Result<size_t> {
        if (++calls == 2)
          return Error(std::make_error_code(std::errc::io_error), "decode chunk 1: bad frame");
        return reader_of(c.bytes, 100000)(offset, out);
      });
  EXPECT_EQ(calls, 2);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code(), std::errc::io_error);
  EXPECT_NE(failed.error().message().find("decode chunk 1: bad frame"), std::string::npos);
  EXPECT_NE(failed.error().message().find(path_of(c)), std::string::npos)
      << failed.error().message();
  EXPECT_TRUE(names().empty());

  const std::vector<std::byte> half(c.bytes.begin(), c.bytes.begin() + c.bytes.size() / 2);
  auto ended = files->add(c.digest, c.bytes.size(), reader_of(half));
  ASSERT_FALSE(ended);
  EXPECT_NE(ended.error().message().find("ended"), std::string::npos) << ended.error().message();
  EXPECT_TRUE(names().empty());

  auto thrown = [&] {
    return files->add(
        c.digest, c.bytes.size(),
        [](uint64_t, std::span<std::byte>) -> Result<size_t> { throw std::bad_alloc(); });
  };
  EXPECT_THROW(thrown(), std::bad_alloc);
  EXPECT_TRUE(names().empty());

  EXPECT_EQ(files->stats().add_failures, 2u);
  EXPECT_EQ(files->stats().files, 0u);
  add(*files, c);  // nothing reserved is left behind either
  EXPECT_EQ(files->stats().bytes, 3 * (uint64_t{1} << 18));
}

// A write that fails (as on a full disk): the temporary file goes.
TEST_F(MaterializedFilesTest, AFailedWriteLeavesNothing) {
  auto files = open_files(16 << 20);
  const Content c = make_content(1 << 20, 60);
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit limited = old;
  limited.rlim_cur = 256 << 10;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  auto added = files->add(c.digest, c.bytes.size(), reader_of(c.bytes, 100000));
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().code(), std::errc::file_too_large);  // EFBIG from write()
  EXPECT_NE(added.error().message().find(dir_ + "/.tmp-"), std::string::npos)
      << added.error().message();
  EXPECT_TRUE(names().empty());
  EXPECT_EQ(files->stats().bytes, 0u);
}

TEST_F(MaterializedFilesTest, ALoweredBudgetAtReopenEvictsTheOldest) {
  const Content a = make_content(kUnit, 70), b = make_content(kUnit, 71),
                c = make_content(kUnit, 72);
  {
    auto files = open_files(1 << 20);
    add(*files, a);
    add(*files, b);
    add(*files, c);
  }
  const time_t now = ::time(nullptr);
  set_mtime(b, now - 3000);  // least recently used
  set_mtime(c, now - 2000);
  set_mtime(a, now - 1000);
  auto files = open_files(2 * kUnit);
  EXPECT_FALSE(on_disk(b));
  EXPECT_TRUE(on_disk(c));
  EXPECT_TRUE(on_disk(a));
  EXPECT_EQ(files->stats().evictions, 1u);
  EXPECT_EQ(files->stats().bytes, 2 * kUnit);
  files = open_files(kUnit);
  EXPECT_FALSE(on_disk(c));
  EXPECT_TRUE(finds(*files, a));
  files = open_files(0);
  EXPECT_TRUE(names().empty());
}

TEST_F(MaterializedFilesTest, FindKeepsTheOrderForTheNextOpen) {
  const Content a = make_content(kUnit, 80), b = make_content(kUnit, 81);
  add(*open_files(1 << 20), a);
  add(*open_files(1 << 20), b);
  const time_t now = ::time(nullptr);
  set_mtime(a, now - 5000);
  set_mtime(b, now - 4000);
  EXPECT_TRUE(finds(*open_files(1 << 20), a));  // a becomes the most recently used, on disk too
  auto files = open_files(kUnit);
  EXPECT_TRUE(on_disk(a));
  EXPECT_FALSE(on_disk(b));
}

// Two instances on one directory, as two daemons during a live upgrade.
TEST_F(MaterializedFilesTest, FilesOfAnotherProcessArePickedUpOrMissed) {
  auto mine = open_files(1 << 20);
  auto theirs = open_files(1 << 20);
  const Content a = make_content(30000, 90), b = make_content(30000, 91);
  add(*theirs, a);
  EXPECT_TRUE(finds(*mine, a));  // appeared: verified, then indexed
  EXPECT_EQ(mine->stats().bytes_verified, a.bytes.size());
  EXPECT_EQ(mine->stats().files, 1u);
  EXPECT_EQ(mine->stats().bytes, 8 * kUnit);

  add(*mine, b);
  ASSERT_TRUE(finds(*theirs, b));
  // They evict it (or delete it): a miss here, and forgotten.
  ASSERT_EQ(::unlink(path_of(b).c_str()), 0);
  EXPECT_FALSE(finds(*mine, b));
  EXPECT_EQ(mine->stats().files, 1u);
  EXPECT_EQ(mine->stats().verification_failures, 0u);
  // Wrong bytes under a name that appeared: deleted, not served.
  const Content c = make_content(30000, 92);
  testing::write_file(path_of(c), testing::to_string(b.bytes));
  EXPECT_FALSE(finds(*mine, c));
  EXPECT_FALSE(on_disk(c));
  EXPECT_EQ(mine->stats().verification_failures, 1u);
  // And adding what they added already finds theirs.
  const Content d = make_content(30000, 93);
  add(*theirs, d);
  add(*mine, d);
  EXPECT_EQ(mine->stats().adds, 1u);  // b only
}

TEST_F(MaterializedFilesTest, ConcurrentAddsOfOneDigestWriteItOnce) {
  auto files = open_files(8 << 20);
  const Content c = make_content((1 << 20) + 5, 100);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      auto added =
          files->add(c.digest, c.bytes.size(), [&](uint64_t offset, std::span<std::byte> out) {
            std::this_thread::sleep_for(
                std::chrono::milliseconds(5));  // a slow decoder: the others wait
            return reader_of(c.bytes, 300000)(offset, out);
          });
      if (!added || read_all(added.value()) != c.bytes) ++failures;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const MaterializedFilesStats s = files->stats();
  EXPECT_EQ(s.adds, 1u);
  EXPECT_EQ(s.hits, 7u);
  EXPECT_EQ(s.files, 1u);
  EXPECT_EQ(names(), std::vector<std::string>{c.digest.hex()});
}

TEST_F(MaterializedFilesTest, ConcurrentAddsAndFindsFromEightThreads) {
  std::vector<Content> contents;
  for (int i = 0; i < 20; ++i) contents.push_back(make_content(20000 + 1501 * i, 200 + i));
  // Room for half of them (evictions happen), and for eight being written at once.
  const uint64_t budget = 400 * 1024;
  auto files = open_files(budget);
  std::atomic<int> wrong{0}, errors{0}, returned{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int op = 0; op < 150; ++op) {
        const Content& c = contents[rng() % contents.size()];
        std::optional<MaterializedFile> file;
        if (rng() % 2 == 0) {
          auto found = files->find(c.digest);
          if (!found)
            ++errors;
          else if (found.value())
            file = std::move(*found.value());
        } else {
          auto added = files->add(c.digest, c.bytes.size(), reader_of(c.bytes, 7000));
          if (!added)
            ++errors;
          else
            file = std::move(added).value();
        }
        if (file) {
          ++returned;
          if (read_all(*file) != c.bytes) ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(errors.load(), 0);
  const MaterializedFilesStats s = files->stats();
  EXPECT_LE(s.bytes, budget);
  EXPECT_GT(s.evictions, 0u);
  EXPECT_EQ(s.verification_failures, 0u);
  EXPECT_EQ(s.add_failures, 0u);
  EXPECT_EQ(s.hits + s.adds, static_cast<uint64_t>(returned.load()));
  // The index matches the directory.
  EXPECT_EQ(s.files, names().size());
  uint64_t bytes = 0;
  for (const std::string& name : names())
    bytes += (fs::file_size(dir_ + "/" + name) + kUnit - 1) / kUnit * kUnit;
  EXPECT_EQ(s.bytes, bytes);
  // And every file there is whole.
  auto reopened = open_files(budget);
  for (const Content& c : contents) {
    if (on_disk(c)) {
      EXPECT_TRUE(finds(*reopened, c));
    }
  }
  EXPECT_EQ(reopened->stats().verification_failures, 0u);
}

}  // namespace
}  // namespace pagerfs
