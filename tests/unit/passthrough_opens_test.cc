// The io-mode bookkeeping of passthrough opens, against a fake kernel: which
// open gets which mode, when backing files are registered and dropped.
#include "fuse/passthrough_opens.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

namespace pagerfs {
namespace {

using Outcome = PassthroughOpens::Outcome;

// The kernel's backing-file map: ids from 1 on, what is registered now.
struct FakeKernel {
  int32_t next = 1;
  std::set<int32_t> live;
  std::vector<int32_t> closed;
  std::optional<Error> fail;              // the next open fails with this
  std::function<void()> during_open;      // runs inside an open (a racing open)
  std::vector<std::pair<fuse_ino_t, int32_t>> journal;  // what was recorded

  PassthroughOpens::Backend backend() {
    return {[this](int fd) -> Result<int32_t> {
              EXPECT_GE(::fcntl(fd, F_GETFD), 0) << "the backing file is open while registered";
              if (during_open) std::exchange(during_open, nullptr)();
              if (fail) return *std::exchange(fail, std::nullopt);
              live.insert(next);
              return next++;
            },
            [this](int32_t id) {
              EXPECT_EQ(live.erase(id), 1u) << "closed once, and only what is registered";
              closed.push_back(id);
            },
            [this](fuse_ino_t ino, int32_t id) { journal.emplace_back(ino, id); }};
  }
};

std::optional<UniqueFd> a_file() { return UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }

PassthroughOpens::BackingSource offering(int* calls = nullptr) {
  return [calls]() {
    if (calls != nullptr) ++*calls;
    return a_file();
  };
}

TEST(PassthroughOpensTest, NothingOfferedIsCached) {
  FakeKernel kernel;
  PassthroughOpens opens(kernel.backend());
  const auto d = opens.begin(7, {});
  EXPECT_FALSE(d.mode.passthrough());
  EXPECT_EQ(d.outcome, Outcome::no_backing);
  const auto e = opens.begin(7, [] { return std::optional<UniqueFd>(); });
  EXPECT_EQ(e.outcome, Outcome::no_backing);
  opens.end(7, d.mode);
  opens.end(7, e.mode);
  EXPECT_TRUE(kernel.live.empty());
  EXPECT_EQ(opens.stats().cached_opens, 2u);
  EXPECT_EQ(opens.stats().refused, 0u);
}

TEST(PassthroughOpensTest, OneBackingFilePerInodeWhileItsPassthroughOpensLive) {
  FakeKernel kernel;
  PassthroughOpens opens(kernel.backend());
  int asked = 0;
  const auto first = opens.begin(7, offering(&asked));
  ASSERT_TRUE(first.mode.passthrough());
  EXPECT_EQ(first.outcome, Outcome::registered);
  // Later opens share it, without asking for another file.
  const auto second = opens.begin(7, offering(&asked));
  EXPECT_EQ(second.outcome, Outcome::shared);
  EXPECT_EQ(second.mode.backing_id, first.mode.backing_id);
  const auto unoffered = opens.begin(7, {});  // all opens of the inode must be passthrough
  EXPECT_EQ(unoffered.mode.backing_id, first.mode.backing_id);
  EXPECT_EQ(asked, 1);
  // Another inode has its own.
  const auto other = opens.begin(8, offering());
  EXPECT_NE(other.mode.backing_id, first.mode.backing_id);
  EXPECT_EQ(opens.stats().live_backings, 2u);

  opens.end(7, first.mode);
  opens.end(7, unoffered.mode);
  EXPECT_TRUE(kernel.closed.empty());
  opens.end(7, second.mode);  // the last one: the registration goes
  EXPECT_EQ(kernel.closed, std::vector<int32_t>{first.mode.backing_id});
  opens.end(8, other.mode);
  EXPECT_TRUE(kernel.live.empty());
  const auto stats = opens.stats();
  EXPECT_EQ(stats.passthrough_opens, 4u);
  EXPECT_EQ(stats.registrations, 2u);
  EXPECT_EQ(stats.live_backings, 0u);

  // Nothing live: the inode is free to take a new backing file.
  const auto again = opens.begin(7, offering());
  EXPECT_EQ(again.outcome, Outcome::registered);
  opens.end(7, again.mode);
}

TEST(PassthroughOpensTest, CachedOpensLiveRefuseTheBackingFile) {
  FakeKernel kernel;
  PassthroughOpens opens(kernel.backend());
  const auto cached = opens.begin(7, {});
  const auto offered = opens.begin(7, offering());
  EXPECT_FALSE(offered.mode.passthrough());
  EXPECT_EQ(offered.outcome, Outcome::refused);
  EXPECT_EQ(kernel.next, 1) << "nothing registered";
  EXPECT_EQ(opens.stats().refused, 1u);
  opens.end(7, cached.mode);
  // One cached open is still live.
  EXPECT_EQ(opens.begin(7, offering()).outcome, Outcome::refused);
  opens.end(7, offered.mode);
  opens.end(7, PassthroughOpens::Mode{});
  EXPECT_EQ(opens.begin(7, offering()).outcome, Outcome::registered);
}

TEST(PassthroughOpensTest, ARegistrationTheKernelRefusesFallsBackToCached) {
  FakeKernel kernel;
  PassthroughOpens opens(kernel.backend());
  kernel.fail = Error::from_errno(EPERM, "FUSE_DEV_IOC_BACKING_OPEN");
  const auto d = opens.begin(7, offering());
  EXPECT_FALSE(d.mode.passthrough());
  EXPECT_EQ(d.outcome, Outcome::failed);
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->code(), std::errc::operation_not_permitted);
  // The failed open is a cached one: a passthrough open must wait for it.
  EXPECT_EQ(opens.begin(7, offering()).outcome, Outcome::refused);
  const auto stats = opens.stats();
  EXPECT_EQ(stats.registration_failures, 1u);
  EXPECT_EQ(stats.registrations, 0u);
  EXPECT_EQ(stats.cached_opens, 2u);
}

TEST(PassthroughOpensTest, TwoFirstOpensAtOnceShareOneBackingFile) {
  FakeKernel kernel;
  PassthroughOpens opens(kernel.backend());
  PassthroughOpens::Decision inner;
  // While the first open's file is being registered, a second first open of
  // the same inode registers its own and wins.
  kernel.during_open = [&] { inner = opens.begin(7, offering()); };
  const auto outer = opens.begin(7, offering());
  EXPECT_EQ(inner.outcome, Outcome::registered);
  EXPECT_EQ(outer.outcome, Outcome::shared);
  EXPECT_EQ(outer.mode.backing_id, inner.mode.backing_id);
  EXPECT_EQ(kernel.live.size(), 1u) << "the loser's registration is dropped";
  EXPECT_EQ(kernel.closed.size(), 1u);
  opens.end(7, outer.mode);
  opens.end(7, inner.mode);
  EXPECT_TRUE(kernel.live.empty());
  EXPECT_EQ(opens.stats().live_backings, 0u);
}

TEST(PassthroughOpensTest, ACachedOpenThatWinsTheRaceKeepsTheInodeCached) {
  FakeKernel kernel;
  PassthroughOpens opens(kernel.backend());
  PassthroughOpens::Decision cached;
  // While the offered file is looked for, a cached open of the inode begins.
  const auto d = opens.begin(7, [&]() {
    cached = opens.begin(7, {});
    return a_file();
  });
  EXPECT_EQ(cached.outcome, Outcome::no_backing);
  EXPECT_EQ(d.outcome, Outcome::refused);
  EXPECT_EQ(kernel.next, 1);
  // And one registered meanwhile is dropped.
  opens.end(7, cached.mode);
  opens.end(7, d.mode);
  PassthroughOpens::Decision late;
  kernel.during_open = [&] { late = opens.begin(7, {}); };
  const auto lost = opens.begin(7, offering());
  EXPECT_EQ(lost.outcome, Outcome::refused);
  EXPECT_TRUE(kernel.live.empty());
  EXPECT_EQ(kernel.closed.size(), 1u);
}

TEST(PassthroughOpensTest, EndsThatMatchNothingChangeNothing) {
  FakeKernel kernel;
  PassthroughOpens opens(kernel.backend());
  opens.end(7, PassthroughOpens::Mode{});     // a handle of a predecessor
  opens.end(7, PassthroughOpens::Mode{3});
  const auto d = opens.begin(7, offering());
  opens.end(7, PassthroughOpens::Mode{});  // not a cached open of this inode
  opens.end(7, PassthroughOpens::Mode{d.mode.backing_id + 1});
  EXPECT_EQ(kernel.live.size(), 1u);
  opens.end(7, d.mode);
  EXPECT_TRUE(kernel.live.empty());
}

TEST(PassthroughOpensTest, EveryChangeOfAnInodesBackingFileIsRecordedInOrder) {
  FakeKernel kernel;
  PassthroughOpens opens(kernel.backend());
  const auto& journal = kernel.journal;
  const auto a = opens.begin(7, offering());
  const auto b = opens.begin(7, offering());  // shares: no change
  const auto cached = opens.begin(8, {});     // cached: no change
  opens.end(7, a.mode);
  opens.end(8, cached.mode);
  ASSERT_EQ(journal.size(), 1u);
  opens.end(7, b.mode);
  const std::vector<std::pair<fuse_ino_t, int32_t>> expected = {{7, a.mode.backing_id}, {7, 0}};
  EXPECT_EQ(journal, expected);
}

TEST(PassthroughOpensTest, AnAdoptedInodeKeepsItsBackingFileForGood) {
  FakeKernel kernel;
  PassthroughOpens opens(kernel.backend());
  const auto& journal = kernel.journal;
  opens.adopt(7, 42);  // a predecessor's, with opens of unknown number live
  EXPECT_EQ(opens.stats().live_backings, 1u);
  int asked = 0;
  const auto a = opens.begin(7, offering(&asked));
  const auto b = opens.begin(7, {});
  EXPECT_EQ(a.mode.backing_id, 42);
  EXPECT_EQ(b.mode.backing_id, 42);
  EXPECT_EQ(asked, 0);
  opens.end(7, a.mode);
  opens.end(7, b.mode);
  opens.end(7, a.mode);  // the predecessor's, whose number nobody knows
  EXPECT_TRUE(kernel.closed.empty());
  EXPECT_EQ(opens.begin(7, {}).mode.backing_id, 42);
  EXPECT_TRUE(journal.empty()) << "already in the journal";
}

TEST(PassthroughOpensTest, ManyWorkersAtOnceKeepTheRules) {
  FakeKernel kernel;
  Mutex kernel_mu;  // the fake is not thread-safe; the real kernel is
  auto backend = kernel.backend();
  PassthroughOpens opens({[&](int fd) {
                            MutexLock lock(kernel_mu);
                            return backend.open(fd);
                          },
                          [&](int32_t id) {
                            MutexLock lock(kernel_mu);
                            backend.close(id);
                          },
                          nullptr});
  std::vector<std::thread> workers;
  std::atomic<int> conflicts{0};
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&, t] {
      for (int k = 0; k < 2000; ++k) {
        const fuse_ino_t ino = static_cast<fuse_ino_t>(k % 3);
        const bool offer = (k + t) % 2 == 0;
        const auto a = opens.begin(ino, offer ? offering() : PassthroughOpens::BackingSource{});
        const auto b = opens.begin(ino, offering());
        // Two opens live at once on one inode: the same mode, the same file.
        if (a.mode.backing_id != b.mode.backing_id) ++conflicts;
        opens.end(ino, b.mode);
        opens.end(ino, a.mode);
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(conflicts.load(), 0);
  EXPECT_TRUE(kernel.live.empty());
  EXPECT_EQ(opens.stats().live_backings, 0u);
  EXPECT_EQ(opens.stats().passthrough_opens + opens.stats().cached_opens, 4u * 2000u * 2u);
}

}  // namespace
}  // namespace pagerfs
