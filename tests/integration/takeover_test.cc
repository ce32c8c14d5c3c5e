// A mount that outlives its daemon (issue 17): a supervised mount
// (-o supervise) under readers that compare every byte, through read() and
// mmap, while its serving process is killed with SIGKILL again and again.
// Every reader must see the right bytes and no error; the longest a single
// read waited is measured. PAGERFS_TAKEOVER_KILLS sets the number of kills
// (default 10; the bar is 50).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <setjmp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <functional>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "integration/mount_store_fixture.h"
#include "support/subprocess.h"

namespace pagerfs {
namespace {

using Clock = std::chrono::steady_clock;

struct SourceFile {
  std::string path;  // in the mount
  std::vector<std::byte> content;
};

class TakeoverTest : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // An image of files of many sizes (small ones end up packed together).
    const std::string tree = dir_ / "tree";
    std::filesystem::create_directories(tree + "/lib");
    for (int k = 0; k < 24; ++k) {
      const size_t size = k % 3 == 0 ? 1000 + 37 * k : (k % 3 == 1 ? 70'000 + 999 * k : 700'000 + 12'345 * k);
      auto content = k % 2 == 0 ? testing::random_bytes(size, 100 + k) : testing::compressible_bytes(size, 100 + k);
      const std::string name = "lib/file" + std::to_string(k);
      testing::write_file(tree + "/" + name, testing::to_string(content));
      image_files_.push_back({"images/demo/" + name, std::move(content)});
    }
    const auto packed = testing::run({testing::binary_from_env("PAGERFSCTL"), "pack", "-s", store_path_, "--image",
                                      "demo", tree});
    ASSERT_EQ(packed.exit_code, 0) << packed.err;
  }

  // Every file the readers check: the store's blobs and the image's files.
  std::vector<SourceFile> sources() const {
    std::vector<SourceFile> out = image_files_;
    for (const auto& blob : blobs_) out.push_back({"blobs/sha256/" + blob.hex, blob.content});
    return out;
  }

  using Disrupt = std::function<pid_t(const testing::MountedStore& mount, pid_t server)>;
  void readers_survive(int events, const std::string& what, const Disrupt& disrupt);
  void readers_return_when_everything_dies(const std::vector<std::string>& options, int signal);

  std::vector<SourceFile> image_files_;
};

// The server that answers the mount's control socket (the one serving), or -1.
pid_t serving_pid(const testing::MountedStore& mount) {
  const auto r = testing::run({testing::binary_from_env("PAGERFSCTL"), "stats", "--json", mount.path()});
  if (r.exit_code != 0) return -1;
  const auto s = nlohmann::json::parse(r.out, nullptr, false);
  if (s.is_discarded() || !s.contains("takeover")) return -1;
  return static_cast<pid_t>(s["takeover"].value("pid", -1));
}

// Waits until `server` serves (a successor starts slowly under a sanitizer:
// the kills are of the serving process, not of one starting).
bool wait_serving(const testing::MountedStore& mount, pid_t server, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (serving_pid(mount) == server) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

pid_t wait_for_server(const testing::MountedStore& mount, pid_t not_this, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    for (pid_t child : mount.children()) {
      if (child != not_this) return child;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return -1;
}

// A mapped read that fails raises SIGBUS: it is caught and counted, so that
// a failing test still unmounts (the fixture's destructor runs).
// volatile: the compiler must not drop the store before memcmp as dead (it
// knows memcmp reads no variable of ours; the signal handler does).
thread_local sigjmp_buf* volatile bus_jump = nullptr;
void on_sigbus(int) {
  if (bus_jump != nullptr) siglongjmp(*bus_jump, 1);
  std::_Exit(135);
}
// memcmp of a mapping: 0 equal, 1 different, -1 the mapping could not be read.
int compare_mapped(const void* map, const std::byte* expected, size_t n) {
  sigjmp_buf jump;
  if (sigsetjmp(jump, 1) != 0) {
    bus_jump = nullptr;
    return -1;
  }
  bus_jump = &jump;
  const int different = std::memcmp(map, expected, n) != 0 ? 1 : 0;
  bus_jump = nullptr;
  return different;
}

struct ReaderTotals {
  std::atomic<uint64_t> files{0}, bytes{0}, errors{0}, wrong{0};
  std::atomic<int64_t> longest_us{0};
  std::mutex mu;
  std::string first_problem;

  void problem(const std::string& what) {
    std::lock_guard lock(mu);
    if (first_problem.empty()) first_problem = what;
  }
  // Reads slower than this are kept, to tell each takeover's stall.
  static constexpr Clock::duration kSlow = std::chrono::milliseconds(5);
  std::vector<std::pair<Clock::time_point, Clock::time_point>> slow;  // guarded by mu

  void waited(Clock::time_point start) {
    const Clock::time_point end = Clock::now();
    const Clock::duration d = end - start;
    if (d > kSlow) {
      std::lock_guard lock(mu);
      slow.emplace_back(start, end);
    }
    const int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    int64_t seen = longest_us.load();
    while (us > seen && !longest_us.compare_exchange_weak(seen, us)) {
    }
  }
};

// Reads `file` through `fd` in 128 KiB steps (read) or a fresh mapping
// (mmap), after dropping its page cache, so that every step is a FUSE READ.
void check_file(int fd, const SourceFile& file, bool mapped, ReaderTotals& totals) {
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  const size_t size = file.content.size();
  constexpr size_t kStep = 128 * 1024;
  if (mapped && size > 0) {
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
      ++totals.errors;
      totals.problem("mmap " + file.path + ": " + std::strerror(errno));
      return;
    }
    for (size_t at = 0; at < size; at += kStep) {
      const size_t n = std::min(kStep, size - at);
      const auto start = Clock::now();
      const int compared = compare_mapped(static_cast<const std::byte*>(map) + at, file.content.data() + at, n);
      totals.waited(start);
      if (compared < 0) {
        ++totals.errors;
        totals.problem("SIGBUS reading " + file.path + " (mmap) at " + std::to_string(at));
        break;
      }
      if (compared != 0) {
        ++totals.wrong;
        totals.problem("wrong bytes in " + file.path + " (mmap) at " + std::to_string(at));
      }
      totals.bytes += n;
    }
    ::munmap(map, size);
    return;
  }
  std::vector<std::byte> buf(kStep);
  for (size_t at = 0;; at += kStep) {
    const auto start = Clock::now();
    const ssize_t n = ::pread(fd, buf.data(), kStep, static_cast<off_t>(at));
    totals.waited(start);
    if (n < 0) {
      ++totals.errors;
      totals.problem("read " + file.path + ": " + std::strerror(errno));
      return;
    }
    const size_t expected = at >= size ? 0 : std::min(kStep, size - at);
    // (No memcmp of nothing: an empty file's content has no data pointer.)
    const bool right = static_cast<size_t>(n) <= expected &&
                       (n == 0 || std::memcmp(buf.data(), file.content.data() + at, static_cast<size_t>(n)) == 0);
    if (right && static_cast<size_t>(n) < expected) {
      // Right bytes, fewer than asked: the connection ended mid-read.
      ++totals.errors;
      totals.problem("short read of " + file.path + " at " + std::to_string(at));
      return;
    }
    if (!right || static_cast<size_t>(n) != expected) {
      ++totals.wrong;
      totals.problem("wrong bytes in " + file.path + " at " + std::to_string(at));
      return;
    }
    totals.bytes += static_cast<uint64_t>(n);
    if (n == 0) return;
  }
}

// Runs 8 readers over every file while `disrupt` is called `events` times
// (it returns the new server's pid, or -1), and checks what they saw.
void TakeoverTest::readers_survive(int events, const std::string& what, const Disrupt& disrupt) {
  auto mount = this->mount({"supervise"});
  const std::vector<SourceFile> files = sources();
  ReaderTotals totals;
  std::atomic<bool> stop{false};

  // Held across every kill: an open file and a mapping made by the first server.
  const SourceFile& held = files.back().content.size() > files.front().content.size() ? files.back() : files.front();
  const int held_fd = ::open((mount->path() + "/" + held.path).c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held_fd, 0) << std::strerror(errno);
  void* held_map = ::mmap(nullptr, held.content.size(), PROT_READ, MAP_SHARED, held_fd, 0);
  ASSERT_NE(held_map, MAP_FAILED);

  struct sigaction bus {};
  bus.sa_handler = on_sigbus;
  sigemptyset(&bus.sa_mask);
  ASSERT_EQ(::sigaction(SIGBUS, &bus, nullptr), 0);
  std::vector<std::thread> readers;
  for (int r = 0; r < 8; ++r) {
    readers.emplace_back([&, r] {
      std::mt19937 pick(static_cast<unsigned>(r));
      while (!stop.load()) {
        if (r == 0) {
          check_file(held_fd, held, false, totals);  // through the handle the first server opened
        } else if (r == 1) {
          // Through the mapping the first server's READs filled (dropped and faulted again).
          ::madvise(held_map, held.content.size(), MADV_DONTNEED);
          ::posix_fadvise(held_fd, 0, 0, POSIX_FADV_DONTNEED);
          const auto start = Clock::now();
          const int compared = compare_mapped(held_map, held.content.data(), held.content.size());
          totals.waited(start);
          if (compared < 0) {
            ++totals.errors;
            totals.problem("SIGBUS reading the held mapping of " + held.path);
          } else if (compared != 0) {
            ++totals.wrong;
            totals.problem("wrong bytes in the held mapping of " + held.path);
          }
        } else {
          const SourceFile& file = files[pick() % files.size()];
          const int fd = ::open((mount->path() + "/" + file.path).c_str(), O_RDONLY | O_CLOEXEC);
          if (fd < 0) {
            ++totals.errors;
            totals.problem("open " + file.path + ": " + std::strerror(errno));
            continue;
          }
          check_file(fd, file, r % 2 == 1, totals);
          ::close(fd);
        }
        ++totals.files;
      }
    });
  }

  std::mt19937 rng(42);
  pid_t server = wait_for_server(*mount, -1, std::chrono::seconds(5));
  ASSERT_GT(server, 0) << "no server under the supervisor\n" << mount->log();
  ASSERT_TRUE(wait_serving(*mount, server, std::chrono::seconds(30))) << mount->log();
  int done = 0;
  std::vector<Clock::time_point> times;
  for (; done < events; ++done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 250));
    times.push_back(Clock::now());
    const pid_t next = disrupt(*mount, server);
    if (next <= 0 || !wait_serving(*mount, next, std::chrono::seconds(30))) break;
    server = next;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the last successor serves too
  stop = true;
  for (auto& t : readers) t.join();
  times.push_back(Clock::now());
  // Each event's stall: the longest read that was waiting at some point
  // between it and the next event.
  std::vector<double> stalls;
  for (size_t k = 0; k + 1 < times.size(); ++k) {
    double longest = 0;
    for (const auto& [start, end] : totals.slow) {
      if (end > times[k] && start < times[k + 1]) longest = std::max(longest, std::chrono::duration<double>(end - start).count());
    }
    stalls.push_back(longest);
  }
  std::sort(stalls.begin(), stalls.end());
  const auto quantile = [&](double q) { return stalls.empty() ? 0.0 : stalls[static_cast<size_t>(q * (stalls.size() - 1))]; };
  ::munmap(held_map, held.content.size());
  ::close(held_fd);

  EXPECT_EQ(done, events) << "no successor after " << what << " " << done + 1 << "\n" << mount->log();
  EXPECT_EQ(totals.errors.load(), 0u) << totals.first_problem;
  EXPECT_EQ(totals.wrong.load(), 0u) << totals.first_problem;
  EXPECT_GT(totals.files.load(), static_cast<uint64_t>(events)) << "the readers made no progress";
  std::printf("%d %s: stall per event p50 %.3f s, p99 %.3f s, max %.3f s (reads under 5 ms not counted)\n", events,
              what.c_str(), quantile(0.5), quantile(0.99), stalls.empty() ? 0.0 : stalls.back());
  std::printf("%d %s: %llu files, %.1f MiB checked; the longest read waited %.3f s\n", events, what.c_str(),
              static_cast<unsigned long long>(totals.files.load()), static_cast<double>(totals.bytes.load()) / (1 << 20),
              static_cast<double>(totals.longest_us.load()) / 1e6);
  // Generous for a loaded CI machine; scripts/bench measures it quietly.
  EXPECT_LT(totals.longest_us.load(), 5'000'000) << mount->log();
}

TEST_F(TakeoverTest, ReadersSeeNoErrorWhileTheServerIsKilledAgainAndAgain) {
  const char* env = std::getenv("PAGERFS_TAKEOVER_KILLS");
  readers_survive(env ? std::atoi(env) : 10, "kills", [](const testing::MountedStore& mount, pid_t server) {
    EXPECT_EQ(::kill(server, SIGKILL), 0) << std::strerror(errno);
    return wait_for_server(mount, server, std::chrono::seconds(10));
  });
}

TEST_F(TakeoverTest, ReadersSeeNoErrorThroughLiveUpgrades) {
  const char* env = std::getenv("PAGERFS_TAKEOVER_UPGRADES");
  readers_survive(env ? std::atoi(env) : 5, "upgrades", [](const testing::MountedStore& mount, pid_t server) {
    const auto r = testing::run({testing::binary_from_env("PAGERFSCTL"), "upgrade", mount.path(), "--binary",
                                 testing::binary_from_env("PAGERFS")});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("upgraded: server pid"), std::string::npos) << r.out;
    if (r.exit_code != 0) return pid_t{-1};
    // The old server has exited (retired): the supervisor's one child is the new one.
    return wait_for_server(mount, server, std::chrono::seconds(10));
  });
}

TEST_F(TakeoverTest, AnUpgradeToABinaryThatCannotStartLeavesTheOldServerServing) {
  auto mount = this->mount({"supervise"});
  const pid_t server = wait_for_server(*mount, -1, std::chrono::seconds(5));
  ASSERT_GT(server, 0);
  const std::string broken = dir_ / "broken-pagerfs";
  testing::write_file(broken, "#!/bin/sh\nexit 3\n");
  ASSERT_EQ(::chmod(broken.c_str(), 0755), 0);
  const auto started = std::chrono::steady_clock::now();
  const auto r = testing::run({testing::binary_from_env("PAGERFSCTL"), "upgrade", mount->path(), "--binary", broken});
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10)) << "the failure took long to tell";
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("upgrade failed"), std::string::npos) << r.err;
  EXPECT_EQ(::kill(server, 0), 0) << "the old server is gone";
  const std::vector<SourceFile> files = sources();
  const SourceFile& file = files.front();
  EXPECT_EQ(testing::read_file(mount->path() + "/" + file.path), testing::to_string(file.content));
  EXPECT_NE(mount->log().find("did not get ready"), std::string::npos) << mount->log();
}

TEST_F(TakeoverTest, SigtermStopsTheSupervisorAndTheServer) {
  auto mount = this->mount({"supervise"});
  const pid_t server = wait_for_server(*mount, -1, std::chrono::seconds(5));
  ASSERT_GT(server, 0);
  ASSERT_EQ(testing::read_file(mount->path() + "/" + sources().front().path), testing::to_string(sources().front().content));
  mount->signal(SIGTERM);
  EXPECT_EQ(mount->wait_exit(std::chrono::seconds(10)), 0) << mount->log();
  EXPECT_NE(::kill(server, 0), 0) << "the server outlived its supervisor";
  EXPECT_FALSE(testing::is_pagerfs_mount(mount->path()));
}

TEST_F(TakeoverTest, AServerThatCannotStartIsACrashLoopNotAHang) {
  auto mount = this->mount({"supervise"});
  const pid_t server = wait_for_server(*mount, -1, std::chrono::seconds(5));
  ASSERT_GT(server, 0);
  // Its successors cannot open the store: each exits at once.
  std::filesystem::rename(store_path_, store_path_ + ".gone");
  ASSERT_EQ(::kill(server, SIGKILL), 0);
  const int status = mount->wait_exit(std::chrono::seconds(20));
  std::filesystem::rename(store_path_ + ".gone", store_path_);
  EXPECT_EQ(status, 1) << mount->log();
  EXPECT_NE(mount->log().find("giving up"), std::string::npos) << mount->log();
}

// How many mounts the kernel has at `path` (a dead one under a new one counts).
int mounts_at(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mnt;
    fields >> id >> parent >> dev >> root >> mnt;
    n += mnt == path ? 1 : 0;
  }
  return n;
}

// Every process of the mount is killed (or stopped: SIGSTOP) at once under
// 8 readers (read and mmap): nothing will ever answer the requests they wait
// on, and a killed server may not even finish dying (its page cache
// supplier waits in the kernel for a page a reader's READ holds locked;
// issue 17), which a stopped one stands for every time. The kernel's
// request timeout must end the connection: every reader returns, with an
// error, within the timeout + the kernel's 15 s check period. A new mount
// at the same place then cleans the dead one and serves the right bytes.
void TakeoverTest::readers_return_when_everything_dies(const std::vector<std::string>& options, int signal) {
  std::vector<std::string> with_timeout = options;
  with_timeout.push_back("request_timeout=15");
  auto mount = this->mount(with_timeout);
  const std::vector<SourceFile> files = sources();
  struct sigaction bus {};
  bus.sa_handler = on_sigbus;
  sigemptyset(&bus.sa_mask);
  ASSERT_EQ(::sigaction(SIGBUS, &bus, nullptr), 0);
  ReaderTotals totals;
  std::atomic<bool> stop{false};
  std::atomic<int> running{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 8; ++r) {
    readers.emplace_back([&, r] {
      std::mt19937 pick(static_cast<unsigned>(r));
      ++running;
      while (!stop.load()) {
        const SourceFile& file = files[pick() % files.size()];
        const int fd = ::open((mount->path() + "/" + file.path).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;  // the mount is dead: errors are expected now
        check_file(fd, file, r % 2 == 1, totals);
        ::close(fd);
        ++totals.files;
      }
      --running;
    });
  }
  std::vector<pid_t> victims = mount->children();  // the server, under a supervisor
  victims.push_back(mount->pid());
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  const uint64_t files_before = totals.files.load();
  const auto killed = Clock::now();
  for (pid_t victim : victims) ::kill(victim, signal);
  stop = true;
  // The readers must come back on their own: nothing here can wake them.
  while (running.load() > 0 && Clock::now() - killed < std::chrono::seconds(60)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double returned = std::chrono::duration<double>(Clock::now() - killed).count();
  const bool all_back = running.load() == 0;
  if (!all_back) {
    // Free them before failing, or the test process never exits.
    const auto info = testing::mount_info(mount->path());
    if (info) {
      std::ofstream("/sys/fs/fuse/connections/" + info->device.substr(info->device.find(':') + 1) + "/abort") << "1";
    }
  }
  for (auto& t : readers) t.join();
  ASSERT_TRUE(all_back) << "readers still blocked " << returned << " s after every process of the mount was killed";
  for (pid_t victim : victims) ::kill(victim, SIGKILL);  // a stopped one too
  std::printf("every reader returned %.1f s after signal %d (request_timeout=15)\n", returned, signal);
  EXPECT_GT(files_before, 0u) << "the readers made no progress before the kill";
  EXPECT_LT(returned, 45.0);
  EXPECT_EQ(totals.wrong.load(), 0u) << totals.first_problem;  // errors, never wrong bytes
  EXPECT_EQ(mount->wait_exit(std::chrono::seconds(5)), -SIGKILL);

  // A new mount on the dead one's place: it unmounts the dead one first.
  ASSERT_TRUE(testing::is_pagerfs_mount(mount->path()));
  struct statfs fs {};
  EXPECT_NE(::statfs(mount->path().c_str(), &fs), 0);
  EXPECT_TRUE(errno == ENOTCONN || errno == ECONNABORTED) << std::strerror(errno);
  auto again = this->mount(options);
  EXPECT_EQ(mounts_at(again->path()), 1) << "the dead mount is still under the new one\n" << again->log();
  EXPECT_NE(again->log().find("the pagerfs mount there is dead"), std::string::npos) << again->log();
  for (const SourceFile& file : files) {
    EXPECT_EQ(testing::read_file(again->path() + "/" + file.path), testing::to_string(file.content)) << file.path;
  }
  again.reset();
}

TEST_F(TakeoverTest, ReadersReturnWhenTheSupervisorAndTheServerAreKilledTogether) {
  readers_return_when_everything_dies({"supervise"}, SIGKILL);
}

TEST_F(TakeoverTest, ReadersReturnWhenAnUnsupervisedDaemonIsKilled) {
  readers_return_when_everything_dies({"nosupervise"}, SIGKILL);
}

// A process that holds the connection and never answers: only the kernel's
// request timeout ends it (about 15-30 s).
TEST_F(TakeoverTest, ReadersReturnWhenTheSupervisorAndTheServerHang) {
  readers_return_when_everything_dies({"supervise"}, SIGSTOP);
}

}  // namespace
}  // namespace pagerfs
