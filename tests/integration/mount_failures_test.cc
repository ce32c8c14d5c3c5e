// Real mounts through the real daemon when things go wrong: FIFOs and
// symlinks in the store, injected allocation failures, a damaged store that
// is repaired; the daemon answers at once, serves on, and still stops.
#include <sstream>

#include "integration/mount_store_fixture.h"
#include "pagerfs/control/control.h"

namespace pagerfs {
namespace {

using testing::MountedStore;
using testing::TempDir;

// Runs a command on mount `m` that must finish at once. A process waiting
// for a FUSE reply cannot be killed (the kernel waits for the answer even
// after SIGKILL), so a request the daemon never answers is ended by killing
// the daemon after 5 s: the test fails instead of hanging the suite.
testing::ProcessResult run_quick(MountedStore& m, const std::vector<std::string>& argv) {
  auto result = std::async(std::launch::async, [&] { return testing::run(argv); });
  if (result.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    ADD_FAILURE() << argv.front() << " " << argv.back() << " did not finish within 5 s: killing the daemon";
    m.signal(SIGKILL);
  }
  return result.get();
}

// FIFOs and symlinks named like blobs, before and after mounting: each lookup
// fails at once (a FUSE worker never blocks in open()), the rest of the mount
// keeps serving, and SIGTERM still unmounts.
TEST_F(MountTest, FifosAndSymlinksNamedLikeBlobsFailQuicklyAndTheDaemonStillStops) {
  const std::string fifo_hex = Sha256::of(bytes_of(std::string("never packed"))).hex();
  ASSERT_EQ(::mkfifo(store_blob(fifo_hex).c_str(), 0644), 0);
  // A link, named as it should be, to a good blob file outside the store.
  const PackedBlob& linked = add(testing::random_bytes(20000, 77), 4096);
  const std::string elsewhere = dir_ / "elsewhere";
  ASSERT_EQ(::rename(store_blob(linked.hex).c_str(), elsewhere.c_str()), 0);
  ASSERT_EQ(::symlink(elsewhere.c_str(), store_blob(linked.hex).c_str()), 0);

  auto m = mount();
  for (const std::string& hex : {fifo_hex, linked.hex}) {
    const auto st = run_quick(*m, {"stat", m->blob(hex)});
    EXPECT_EQ(st.exit_code, 1) << hex << ": " << st.err;  // not 124: it did not hang
    EXPECT_NE(st.err.find("Input/output error"), std::string::npos) << st.err;
    const auto cat = run_quick(*m, {"cat", m->blob(hex)});
    EXPECT_EQ(cat.exit_code, 1) << cat.err;
    EXPECT_TRUE(cat.out.empty());
  }
  // Named like a blob after mounting: the same (the store is asked on
  // lookup, never listed at mount), at once.
  const std::string late_hex = Sha256::of(bytes_of(std::string("late fifo"))).hex();
  ASSERT_EQ(::mkfifo(store_blob(late_hex).c_str(), 0644), 0);
  const auto late = run_quick(*m, {"stat", m->blob(late_hex)});
  EXPECT_EQ(late.exit_code, 1) << late.err;
  EXPECT_NE(late.err.find("Input/output error"), std::string::npos) << late.err;
  // A name the store does not have at all: not found.
  const auto missing = run_quick(*m, {"stat", m->blob(Sha256::of(bytes_of(std::string("nowhere"))).hex())});
  EXPECT_NE(missing.err.find("No such file or directory"), std::string::npos) << missing.err;
  const auto listing = run_quick(*m, {"ls", "-l", m->path() + "/blobs/sha256"});
  EXPECT_TRUE(listing.exit_code == 0 || listing.exit_code == 1) << "finished: " << listing.exit_code;
  EXPECT_TRUE(read_all(m->blob(blobs_[1].hex)) == blobs_[1].content) << "the rest is served";
  EXPECT_NE(m->log().find("is not a regular file (a FIFO)"), std::string::npos) << m->log();
  m->signal(SIGTERM);
  EXPECT_EQ(m->wait_exit(std::chrono::seconds(10)), 0) << m->log();
  EXPECT_FALSE(testing::is_pagerfs_mount(m->path()));
}

// A FIFO as an image manifest, before mounting: the daemon never hangs on it.
// It refuses the mount with one clear line, or (once bad images are skipped)
// mounts without it; either way SIGTERM stops it.
TEST_F(MountTest, AFifoAsAnImageNeverHangsTheDaemon) {
  const std::string images = store_path_ + "/images";
  ASSERT_EQ(::mkdir(images.c_str(), 0700), 0);
  ASSERT_EQ(::mkfifo((images + "/piped").c_str(), 0644), 0);
  std::unique_ptr<MountedStore> m;
  const auto start = std::chrono::steady_clock::now();
  try {
    m = mount();
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find("did not mount within"), std::string::npos) << what;
    EXPECT_NE(what.find("image 'piped': '" + images + "/piped' is not a regular file (a FIFO)"), std::string::npos)
        << what;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  if (m) {
    const auto st = run_quick(*m, {"stat", m->path() + "/images/piped"});
    EXPECT_EQ(st.exit_code, 1) << st.err;
    m->signal(SIGTERM);
    EXPECT_EQ(m->wait_exit(std::chrono::seconds(10)), 0) << m->log();
  }
  EXPECT_FALSE(testing::is_pagerfs_mount(dir_ / "mnt"));
}

// The same after mounting: a lookup of the late "image" fails at once, the
// listing of images/ finishes, and SIGTERM still unmounts.
TEST_F(MountTest, AFifoAsALateImageFailsQuicklyAndTheDaemonStillStops) {
  auto m = mount();
  const std::string images = store_path_ + "/images";
  ASSERT_EQ(::mkdir(images.c_str(), 0700), 0);
  ASSERT_EQ(::mkfifo((images + "/late").c_str(), 0644), 0);
  const auto st = run_quick(*m, {"stat", m->path() + "/images/late"});
  EXPECT_EQ(st.exit_code, 1) << st.err;
  EXPECT_NE(st.err.find("Input/output error"), std::string::npos) << st.err;
  const auto listing = run_quick(*m, {"ls", m->path() + "/images"});
  EXPECT_EQ(listing.exit_code, 0) << listing.err;
  EXPECT_EQ(listing.out, "");
  EXPECT_NE(m->log().find("is not a regular file (a FIFO)"), std::string::npos) << m->log();
  m->signal(SIGTERM);
  EXPECT_EQ(m->wait_exit(std::chrono::seconds(10)), 0) << m->log();
}

TEST_F(MountTest, WorksThroughMountDashT) {
  if (::geteuid() != 0) GTEST_SKIP() << "mount(8) needs root";
  const std::string mnt = dir_ / "mnt2";
  std::filesystem::create_directory(mnt);
  // mount(8) runs helpers with a fixed PATH, so name the binary explicitly
  // (the "PROGRAM#SOURCE" form of mount.fuse3); installed, `-t fuse.pagerfs` works.
  char bin[PATH_MAX];
  ASSERT_NE(::realpath(testing::binary_from_env("PAGERFS").c_str(), bin), nullptr);
  const auto r = testing::run({"mount", "-t", "fuse", std::string(bin) + "#" + store_path_, mnt, "-o", "readahead=256K"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(testing::is_pagerfs_mount(mnt));
  EXPECT_TRUE(read_all(mnt + "/blobs/sha256/" + blobs_[2].hex) == blobs_[2].content);
  EXPECT_EQ(testing::run({"umount", mnt}).exit_code, 0);
  // The daemonized server exits by itself once unmounted.
  EXPECT_FALSE(testing::is_pagerfs_mount(mnt));
}

// --- Failures stay local (issue 12) ---

// Sets an environment variable for the daemons started in its scope.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
    ::setenv(name_.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_.c_str()); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
};

// pread()s [offset, offset + length) whole, retrying reads that fail with
// ENOMEM or EIO (counted in *failures); any other error, or no progress in
// 200 tries, fails the test.
std::vector<std::byte> pread_retrying(int fd, uint64_t offset, size_t length, int* failures) {
  std::vector<std::byte> out(length);
  size_t got = 0;
  for (int tries = 0; got < length && tries < 200;) {
    const ssize_t n = ::pread(fd, out.data() + got, length - got, static_cast<off_t>(offset + got));
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (n == 0) {
      break;
    } else {
      EXPECT_TRUE(errno == ENOMEM || errno == EIO) << std::strerror(errno);
      ++*failures;
      ++tries;
    }
  }
  out.resize(got);
  return out;
}

uint64_t failures_of(const nlohmann::json& stats, int err) {
  const auto& f = stats["pager"]["failures"];
  return f.contains(std::strerror(err)) ? f[std::strerror(err)].get<uint64_t>() : 0;
}

TEST_F(MountTest, AnAllocationFailureInADecodeTaskFailsOneReadAndTheDaemonServesOn) {
  {
    // Every decode throws: reads that need a chunk fail with ENOMEM, and
    // the rest of the mount (and the daemon) goes on.
    auto m = [&] {
      ScopedEnv faults("PAGERFS_INJECT_FAULTS", "decode:1");
      return mount();
    }();
    const int fd = ::open(m->blob(blobs_[1].hex).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    std::vector<std::byte> buf(200000);
    for (int i = 0; i < 3; ++i) {
      errno = 0;
      EXPECT_EQ(::pread(fd, buf.data(), buf.size(), 0), -1);
      EXPECT_EQ(errno, ENOMEM) << std::strerror(errno);
    }
    ::close(fd);
    EXPECT_TRUE(read_all(m->blob(blobs_[4].hex)).empty()) << "an empty file needs no decode";
    struct stat st {};
    EXPECT_EQ(::stat(m->blob(blobs_[0].hex).c_str(), &st), 0);
    EXPECT_EQ(static_cast<size_t>(st.st_size), blobs_[0].content.size());
    EXPECT_GE(failures_of(stats_of(m->path()), ENOMEM), 3u);
    ASSERT_TRUE(testing::is_pagerfs_mount(m->path()));
  }
  // Every third decode throws: every read that succeeds is right, and each
  // failed one succeeds when retried.
  auto m = [&] {
    ScopedEnv faults("PAGERFS_INJECT_FAULTS", "decode:3");  // every third decode throws std::bad_alloc
    return mount();
  }();
  EXPECT_NE(m->log().find("PAGERFS_INJECT_FAULTS=decode:3"), std::string::npos) << m->log();
  int failed_reads = 0;
  for (const PackedBlob& b : blobs_) {
    const int fd = ::open(m->blob(b.hex).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    // Streaming reads (windows of several chunks: decoded on the pool) and
    // small random ones (one chunk: decoded inline), every byte compared.
    for (uint64_t off = 0; off < b.content.size(); off += 300000) {
      const size_t len = std::min<size_t>(300000, b.content.size() - off);
      ASSERT_TRUE(pread_retrying(fd, off, len, &failed_reads) ==
                  std::vector<std::byte>(b.content.begin() + static_cast<ptrdiff_t>(off),
                                         b.content.begin() + static_cast<ptrdiff_t>(off + len)))
          << b.hex << " at " << off;
    }
    ::close(fd);
  }
  std::mt19937_64 rng(12);
  const PackedBlob& big = blobs_[1];
  const int fd = ::open(m->blob(big.hex).c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  for (int i = 0; i < 100; ++i) {
    const uint64_t off = rng() % (big.content.size() - 4096);
    ASSERT_TRUE(pread_retrying(fd, off, 4096, &failed_reads) ==
                std::vector<std::byte>(big.content.begin() + static_cast<ptrdiff_t>(off),
                                       big.content.begin() + static_cast<ptrdiff_t>(off + 4096)));
  }
  ::close(fd);
  ASSERT_TRUE(testing::is_pagerfs_mount(m->path())) << "the daemon survived: " << m->log();
  const auto stats = stats_of(m->path());
  EXPECT_GT(failures_of(stats, ENOMEM), 0u) << "decode tasks threw, and only their requests failed";
  EXPECT_EQ(stats["pager"]["open_blobs"].get<uint64_t>(), 0u);
  const auto dump = testing::run({testing::binary_from_env("PAGERFSCTL"), "dump", m->path()});
  EXPECT_NE(dump.out.find(" 0 chunk(s) in flight"), std::string::npos) << dump.out;
  RecordProperty("failed_reads_retried", failed_reads);
}

TEST_F(MountTest, AnAllocationFailureAfterTheReplyLosesOnlyReadAhead) {
  auto m = [&] {
    ScopedEnv faults("PAGERFS_INJECT_FAULTS", "supply:1");  // every read-ahead copy fails
    return mount();
  }();
  for (const PackedBlob& b : blobs_) EXPECT_TRUE(read_all(m->blob(b.hex)) == b.content) << b.hex;
  EXPECT_TRUE(mmap_all(m->blob(blobs_[1].hex), MADV_RANDOM) == blobs_[1].content);
  ASSERT_TRUE(testing::is_pagerfs_mount(m->path())) << m->log();
  const auto stats = stats_of(m->path());
  const auto& supply = stats["fuse"]["notify_store"];
  EXPECT_GT(supply["out_of_memory"].get<uint64_t>(), 0u) << stats.dump();
  EXPECT_EQ(supply["calls"].get<uint64_t>(), 0u) << "nothing was pushed";
  // Each READ was answered once, with its data: none counted as failed.
  EXPECT_GT(stats["fuse"]["read"]["calls"].get<uint64_t>(), 0u);
  EXPECT_EQ(stats["fuse"]["read"]["errors"].get<uint64_t>(), 0u);
  EXPECT_TRUE(stats["pager"]["failures"].empty()) << stats["pager"].dump();
}

TEST_F(MountTest, ABadFaultInjectionSpecIsRefusedBeforeMounting) {
  ScopedEnv faults("PAGERFS_INJECT_FAULTS", "decode:0");
  const std::string mnt = dir_ / "mnt";
  std::filesystem::create_directory(mnt);
  const auto r = testing::run({testing::binary_from_env("PAGERFS"), store_path_, mnt, "-f"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("PAGERFS_INJECT_FAULTS: bad item 'decode:0'"), std::string::npos) << r.err;
  EXPECT_FALSE(testing::is_pagerfs_mount(mnt));
}

TEST_F(MountTest, AChunkDamagedInTheStoreReadsCorrectlyOnceTheStoreIsRepaired) {
  const PackedBlob& b = blobs_[0];
  const std::string path = store_blob(b.hex);
  const std::string good = testing::read_file(path);
  const std::string cache = dir_ / "cache";
  damage(b.hex);  // the first chunk's frame
  {
    auto m = mount({"cache=" + cache});
    const int fd = ::open(m->blob(b.hex).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    std::vector<std::byte> buf(4096);
    errno = 0;
    EXPECT_EQ(::pread(fd, buf.data(), buf.size(), 0), -1);
    EXPECT_EQ(errno, EIO);
    const auto damaged = stats_of(m->path());
    EXPECT_GE(damaged["pager"]["integrity_retries"].get<uint64_t>(), 1u);
    EXPECT_GT(damaged["layers"][0]["sectors_invalidated"].get<uint64_t>(), 0u) << "the bad fill was dropped";
    // Repaired as an operator would: a good copy renamed into place.
    testing::write_file(path + ".tmp", good);
    ASSERT_EQ(::rename((path + ".tmp").c_str(), path.c_str()), 0);
    // No drop-caches: the next read is right.
    ASSERT_EQ(::pread(fd, buf.data(), buf.size(), 0), static_cast<ssize_t>(buf.size()));
    EXPECT_EQ(std::memcmp(buf.data(), b.content.data(), buf.size()), 0);
    ::close(fd);
    EXPECT_TRUE(read_all(m->blob(b.hex)) == b.content);
  }
  // The cache disk holds the good bytes: with the store damaged again, a
  // new mount still reads them right, from the cache.
  damage(b.hex);
  auto m = mount({"cache=" + cache});
  const int fd = ::open(m->blob(b.hex).c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::vector<std::byte> buf(4096);
  ASSERT_EQ(::pread(fd, buf.data(), buf.size(), 0), static_cast<ssize_t>(buf.size())) << std::strerror(errno);
  EXPECT_EQ(std::memcmp(buf.data(), b.content.data(), buf.size()), 0);
  ::close(fd);
  EXPECT_EQ(stats_of(m->path())["pager"]["integrity_retries"].get<uint64_t>(), 0u);
}

// The daemon's own threads send no request to its mount (see the next
// test): with nobody using the mount, it has served no FUSE operation. (The
// stats are asked through the socket by name: `stats MOUNTPOINT` would ask
// the mount for the socket's name.)
TEST_F(MountTest, TheDaemonMakesNoRequestOnItsOwnMount) {
  auto m = mount();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the supervisor has started
  const auto r = testing::run({testing::binary_from_env("PAGERFSCTL"), "stats", "--json", "--control",
                               control::default_socket_path(m->path())});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json s = nlohmann::json::parse(r.out);
  for (const auto& [op, counters] : s["fuse"].items()) {
    if (op == "notify_store") continue;
    EXPECT_EQ(counters["calls"], 0u) << op << ": " << counters.dump();
  }
}

// The daemon never makes a system call on its own mount: such a call is a
// FUSE request it must answer itself, and a SIGKILL between the session's
// read of that request and its reply leaves the calling thread in D state
// for ever (the daemon a zombie, the mount hung). The supervisor once stat()ed
// the mount point right after mounting to find its bdi; killing the daemon
// at once, 20 times over with varying delays, proves that window is gone.
TEST_F(MountTest, KillNineRightAfterMountingNeverLeavesTheDaemonHanging) {
  for (int round = 0; round < 20; ++round) {
    MountedStore m(store_path_, dir_ / "mnt");
    std::this_thread::sleep_for(std::chrono::milliseconds(round % 5));
    m.signal(SIGKILL);
    const int status = m.wait_exit(std::chrono::seconds(5));
    EXPECT_EQ(status, -SIGKILL) << "round " << round << ": the daemon did not die of SIGKILL within 5 s";
    if (status == -1) {
      // Stuck: end its connection (root only) so the fixture can clean up.
      if (const auto info = testing::mount_info(m.path())) {
        std::ofstream abort("/sys/fs/fuse/connections/" + info->device.substr(info->device.find(':') + 1) +
                            "/abort");
        abort << "1";
      }
      break;
    }
  }
}

}  // namespace
}  // namespace pagerfs
