// The control socket against a real daemon: who may talk (SO_PEERCRED),
// the JSON request lines (names with spaces and newlines, size limit), idle
// connections, where the socket may be created, default names, long mount
// points, and the client's checks of the socket it is pointed at.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "pagerfs/control/control.h"
#include "support/mount_fixture.h"
#include "support/subprocess.h"
#include "support/test_data.h"

namespace pagerfs {
namespace {

using testing::MountedStore;
using testing::TempDir;

std::string pagerfsctl() { return testing::binary_from_env("PAGERFSCTL"); }

using testing::TestUser;
using testing::test_user;

sockaddr_un socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// A connected client socket (-1 on failure).
int connect_to(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un addr = socket_address(path);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Everything the peer sends until it closes, or until `timeout`.
std::string read_until_closed(int fd, std::chrono::milliseconds timeout, bool* closed = nullptr) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string out;
  if (closed) *closed = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return out;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      if (closed) *closed = true;
      return out;
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

size_t open_fds(pid_t pid) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
  return n;
}

class ControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::fuse_available()) {
      if (std::getenv("PAGERFS_REQUIRE_FUSE")) FAIL() << "/dev/fuse is required (PAGERFS_REQUIRE_FUSE)";
      GTEST_SKIP() << "no /dev/fuse";
    }
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (creates a user, checks peer credentials)";
    // Other users must reach our sockets to be refused by the daemon itself.
    ::chmod(dir_.path().c_str(), 0711);
    store_ = dir_ / "store";
    tree_ = dir_ / "tree";
    std::filesystem::create_directories(tree_);
    content_ = testing::random_bytes(300 * 1024 + 17, 7);
    testing::write_file(tree_ + "/" + kOddName,
                        std::string(reinterpret_cast<const char*>(content_.data()), content_.size()));
    const auto packed = testing::run({pagerfsctl(), "pack", "--store", store_, "--image", "img", "--chunk-size", "64K",
                                      tree_});
    ASSERT_EQ(packed.exit_code, 0) << packed.err;
  }

  std::unique_ptr<MountedStore> mount(const std::vector<std::string>& options = {}) {
    return std::make_unique<MountedStore>(store_, dir_ / "mnt", options);
  }

  static nlohmann::json stats(const std::vector<std::string>& target) {
    std::vector<std::string> argv = {pagerfsctl(), "stats", "--json"};
    argv.insert(argv.end(), target.begin(), target.end());
    const auto r = testing::run(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json::object();
  }

  // A pagerfs run that must fail before mounting; returns its stderr.
  std::string refused_mount(const std::vector<std::string>& options) {
    std::filesystem::create_directories(dir_ / "mnt");
    std::vector<std::string> argv = {testing::binary_from_env("PAGERFS"), store_, dir_ / "mnt", "-f"};
    for (const auto& o : options) argv.insert(argv.end(), {"-o", o});
    const auto r = testing::run(argv);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_FALSE(testing::is_pagerfs_mount(dir_ / "mnt"));
    return r.err;
  }

  static constexpr const char* kOddName = "a file\nwith  spaces";
  TempDir dir_;
  std::string store_, tree_;
  std::vector<std::byte> content_;
};

TEST_F(ControlTest, AnotherUserIsRefusedEvenIfTheSocketIsWorldWritable) {
  const TestUser& user = test_user();
  const std::string ctl_dir = dir_ / "ctl";
  ASSERT_EQ(::mkdir(ctl_dir.c_str(), 0711), 0);
  const std::string socket = ctl_dir + "/c.sock";
  auto m = mount({"control=" + socket});
  ASSERT_EQ(::chmod(socket.c_str(), 0666), 0);  // only the peer check stands in the way now

  std::vector<std::string> argv = user.as();
  argv.insert(argv.end(), {pagerfsctl(), "stats", "--control", socket});
  const auto r = testing::run(argv);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("permission denied: uid " + std::to_string(user.uid) + " may not use this control socket"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.out, "");

  // Root still may, and the refusal was counted.
  const auto s = stats({m->path()});
  EXPECT_EQ(s["control"]["refused_peers"], 1u);
  const auto text = testing::run({pagerfsctl(), "stats", m->path()});
  EXPECT_NE(text.out.find("refused: 1 other uid"), std::string::npos) << text.out;
}

// Images load on first use; a prewarm by a path relative to the mount root
// (the daemon resolves it, the mount is never looked at) may be the first.
TEST_F(ControlTest, PrewarmLoadsTheImageItNames) {
  auto m = mount();
  EXPECT_EQ(stats({m->path()})["images"], 0u);
  const auto r = testing::run({pagerfsctl(), "prewarm", m->path(), std::string("images/img/") + kOddName});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(stats({m->path()})["images"], 1u);
}

TEST_F(ControlTest, PrewarmsANameWithSpacesAndANewline) {
  auto m = mount();
  const std::string file = m->path() + "/images/img/" + kOddName;
  const auto before = stats({m->path()});
  const auto r = testing::run({pagerfsctl(), "prewarm", m->path(), file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, std::string("prewarmed images/img/") + kOddName + "\n");
  const auto after = stats({m->path()});
  // 300 KiB in 64 KiB chunks: five chunks decoded by the prewarm, none before.
  EXPECT_EQ(after["pager"]["chunks_decoded"].get<uint64_t>() - before["pager"]["chunks_decoded"].get<uint64_t>(), 5u);
  // A range, relative to the mount root.
  const auto ranged = testing::run({pagerfsctl(), "prewarm", m->path(), std::string("images/img/") + kOddName + ":64K:4K"});
  ASSERT_EQ(ranged.exit_code, 0) << ranged.err;
  EXPECT_EQ(ranged.out, std::string("prewarmed images/img/") + kOddName + ":65536:4096\n");
  EXPECT_EQ(testing::read_file(file), std::string(reinterpret_cast<const char*>(content_.data()), content_.size()));
}

TEST_F(ControlTest, OversizedAndMalformedRequestsAreRefusedAndTheDaemonServesOn) {
  auto m = mount();
  char value[PATH_MAX];
  const ssize_t n = ::getxattr(m->path().c_str(), "user.pagerfs.control", value, sizeof value);
  ASSERT_GT(n, 0);
  const std::string socket(value, static_cast<size_t>(n));

  const int fd = connect_to(socket);
  ASSERT_GE(fd, 0);
  const timeval send_timeout{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
  const std::string huge = R"({"command":"prewarm","items":[{"path":")" + std::string(100 * 1024, 'x') + "\"}]}\n";
  [[maybe_unused]] const ssize_t sent = ::send(fd, huge.data(), huge.size(), MSG_NOSIGNAL);
  const std::string answer = read_until_closed(fd, std::chrono::seconds(3));
  ::close(fd);
  EXPECT_NE(answer.find(R"("ok":false)"), std::string::npos) << answer;
  EXPECT_NE(answer.find("request larger than 64 KiB"), std::string::npos) << answer;

  const int bad = connect_to(socket);
  ASSERT_GE(bad, 0);
  const std::string old_style = "prewarm blobs/sha256/x\n";  // the line protocol of before
  ASSERT_EQ(::send(bad, old_style.data(), old_style.size(), MSG_NOSIGNAL), static_cast<ssize_t>(old_style.size()));
  const std::string refused = read_until_closed(bad, std::chrono::seconds(3));
  ::close(bad);
  EXPECT_NE(refused.find("bad request"), std::string::npos) << refused;

  const auto s = stats({m->path()});
  EXPECT_EQ(s["control"]["oversized"], 1u);
  EXPECT_EQ(testing::run({pagerfsctl(), "dump", m->path()}).exit_code, 0);
}

TEST_F(ControlTest, IdleConnectionsAreCappedAndClosedAfterTheTimeout) {
  auto m = mount();
  const std::string socket = control::default_socket_path(m->path());
  stats({m->path()});  // whatever the daemon opens lazily is open now
  const size_t fds_before = open_fds(m->pid());
  std::vector<int> idle;
  for (int i = 0; i < 200; ++i) {
    const int fd = connect_to(socket);
    ASSERT_GE(fd, 0) << "connection " << i;
    idle.push_back(fd);
  }
  const auto opened = std::chrono::steady_clock::now();
  // The daemon holds at most kMaxSessions of them (fds settle once it has
  // accepted every one; stats is answered after that, in order).
  const auto s = stats({m->path()});
  EXPECT_EQ(s["control"]["evicted"].get<uint64_t>(), 200 + 1 - control::kMaxSessions);  // the 200 and this stats
  // (a little slack for what the daemon may open meanwhile; 200 would show)
  EXPECT_LE(open_fds(m->pid()), fds_before + control::kMaxSessions + 4);
  // The first ones were closed at once, with a reason.
  bool closed = false;
  EXPECT_NE(read_until_closed(idle.front(), std::chrono::milliseconds(500), &closed).find("too many connections"),
            std::string::npos);
  EXPECT_TRUE(closed);
  // The last one is held until the request timeout, then closed with a reason.
  const std::string last = read_until_closed(idle.back(), std::chrono::seconds(8), &closed);
  const auto held = std::chrono::steady_clock::now() - opened;
  EXPECT_TRUE(closed);
  EXPECT_NE(last.find("no request within 5 s"), std::string::npos) << last;
  EXPECT_GE(held, std::chrono::milliseconds(4500));
  EXPECT_LE(held, std::chrono::seconds(8));
  for (int fd : idle) ::close(fd);
  const auto after = stats({m->path()});
  EXPECT_GE(after["control"]["timed_out"].get<uint64_t>(), 1u);
}

TEST_F(ControlTest, TheControlPathNeverReplacesAnythingButAStaleSocketOfOurs) {
  const std::string ctl_dir = dir_ / "ctl";
  ASSERT_EQ(::mkdir(ctl_dir.c_str(), 0700), 0);

  const std::string file = ctl_dir + "/precious";
  testing::write_file(file, "keep me\n");
  EXPECT_NE(refused_mount({"control=" + file}).find("exists and is not a socket"), std::string::npos);
  EXPECT_EQ(testing::read_file(file), "keep me\n");

  const std::string dir = ctl_dir + "/a-directory";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  EXPECT_NE(refused_mount({"control=" + dir}).find("exists and is not a socket"), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_directory(dir));

  EXPECT_NE(refused_mount({"control=relative.sock"}).find("-o control: 'relative.sock' is not an absolute path"),
            std::string::npos);

  const std::string open_dir = dir_ / "open";
  ASSERT_EQ(::mkdir(open_dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(open_dir.c_str(), 01777), 0);  // like /tmp
  EXPECT_NE(refused_mount({"control=" + open_dir + "/c.sock"}).find("is writable by group or others"),
            std::string::npos);

  // A socket of another user's is not ours to replace, stale or not.
  const TestUser& user = test_user();
  const std::string foreign = ctl_dir + "/foreign.sock";
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    const sockaddr_un addr = socket_address(foreign);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
  }
  ASSERT_EQ(::lchown(foreign.c_str(), user.uid, user.gid), 0);
  EXPECT_NE(refused_mount({"control=" + foreign}).find("belongs to uid " + std::to_string(user.uid)), std::string::npos);
  ASSERT_EQ(::lchown(foreign.c_str(), 0, 0), 0);

  // A stale socket of ours (nobody listens) is replaced; the new one answers.
  auto m = mount({"control=" + foreign});
  EXPECT_EQ(stats({m->path()})["control"]["connections"], 1u);

  // A live one (that mount's) is refused, after waiting for it to go away.
  std::filesystem::create_directories(dir_ / "mnt2");
  const auto second = testing::run({testing::binary_from_env("PAGERFS"), store_, dir_ / "mnt2", "-f", "-o",
                                    "control=" + foreign});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.err.find("is another pagerfs using it?"), std::string::npos) << second.err;
  EXPECT_TRUE(stats({m->path()}).contains("pager"));  // the first mount still answers
}

TEST_F(ControlTest, DefaultNamesDoNotCollideNorGrowWithTheMountPoint) {
  EXPECT_NE(control::default_socket_path("/X/a-b/c"), control::default_socket_path("/X/a/b-c"));
  EXPECT_EQ(control::default_socket_path("/a").size(), control::default_socket_path("/" + std::string(250, 'a')).size());

  // Both mounted at once, each with its own socket.
  std::filesystem::create_directories(dir_ / "X/a-b/c");
  std::filesystem::create_directories(dir_ / "X/a/b-c");
  MountedStore one(store_, dir_ / "X/a-b/c");
  MountedStore two(store_, dir_ / "X/a/b-c");
  EXPECT_EQ(stats({one.path()})["control"]["connections"], 1u);
  EXPECT_EQ(stats({two.path()})["control"]["connections"], 1u);
}

TEST_F(ControlTest, LongMountPointsMountWithDefaultOptions) {
  for (const size_t length : {size_t{106}, size_t{200}}) {
    std::string mnt = dir_.path() + "/long";
    ASSERT_LT(mnt.size() + 2, length);
    while (mnt.size() + 61 < length) mnt += "/" + std::string(60, 'm');
    mnt += "/" + std::string(length - mnt.size() - 1, 'm');
    ASSERT_EQ(mnt.size(), length);
    std::filesystem::create_directories(std::filesystem::path(mnt).parent_path());
    {
    MountedStore m(store_, mnt);
    char value[PATH_MAX];
    const ssize_t n = ::getxattr(mnt.c_str(), "user.pagerfs.control", value, sizeof value);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(value, static_cast<size_t>(n)), control::default_socket_path(mnt));
    const auto r = testing::run({pagerfsctl(), "stats", mnt});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("pager"), std::string::npos);
    }
    std::filesystem::remove_all(dir_.path() + "/long");
  }
}

TEST(ControlClient, GivesUpOnASilentDaemon) {
  TempDir dir;
  const std::string path = dir / "silent.sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un addr = socket_address(path);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 8), 0);  // connections complete, nobody ever answers
  const auto start = std::chrono::steady_clock::now();
  const auto r = testing::run({pagerfsctl(), "stats", "--control", path, "--timeout", "1"});
  const auto took = std::chrono::steady_clock::now() - start;
  ::close(fd);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no answer from '" + path + "' within 1 s"), std::string::npos) << r.err;
  EXPECT_GE(took, std::chrono::milliseconds(900));
  EXPECT_LT(took, std::chrono::seconds(5));
}

// ---- the client's checks --------------------------------------------------------

TEST(ControlClient, TheMountTableMustShowAPagerfsMountAndItsOwner) {
  const std::string table =
      "22 1 0:21 / /srv/m rw,nosuid - fuse.pagerfs /store rw,user_id=1000,group_id=1000\n"
      "23 1 0:22 / /srv/with\\040space ro - fuse.pagerfs /store ro,user_id=0,group_id=0\n"
      "24 1 0:23 / /srv/other rw - fuse.sshfs host: rw,user_id=0,group_id=0\n"
      "25 1 0:24 / /srv/stacked rw - fuse.pagerfs /store rw,user_id=0,group_id=0\n"
      "26 25 0:25 / /srv/stacked rw - fuse.evil x rw,user_id=1000,group_id=1000\n";
  EXPECT_EQ(control::pagerfs_mount_owner(table, "/srv/m").value(), 1000u);
  EXPECT_EQ(control::pagerfs_mount_owner(table, "/srv/with space").value(), 0u);
  EXPECT_NE(control::pagerfs_mount_owner(table, "/srv/other").error().message().find("not a pagerfs mount"),
            std::string::npos);
  EXPECT_FALSE(control::pagerfs_mount_owner(table, "/srv/stacked"));  // the topmost mount counts
  EXPECT_NE(control::pagerfs_mount_owner(table, "/srv").error().message().find("not a mount point"), std::string::npos);
}

TEST(ControlClient, RefusesASocketOfAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (creates a user)";
  const TestUser& user = test_user();
  TempDir dir;
  ::chmod(dir.path().c_str(), 0711);
  const std::string user_dir = dir / "user";
  ASSERT_EQ(::mkdir(user_dir.c_str(), 0700), 0);
  ASSERT_EQ(::chown(user_dir.c_str(), user.uid, user.gid), 0);
  const std::string path = user_dir + "/fake.sock";

  // The other user's "daemon": listens (so connecting would work) and waits.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setgid(user.gid) != 0 || ::setuid(user.uid) != 0) ::_exit(1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    const sockaddr_un addr = socket_address(path);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 8) != 0) ::_exit(1);
    [[maybe_unused]] const ssize_t w = ::write(ready[1], "x", 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char byte = 0;
  const bool started = ::read(ready[0], &byte, 1) == 1;
  ::close(ready[0]);
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reaper{child};
  ASSERT_TRUE(started);

  // The file is the user's: root's pagerfsctl does not talk to it.
  auto r = testing::run({pagerfsctl(), "stats", "--control", path});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is owned by uid " + std::to_string(user.uid) + ", not by uid 0: refusing"), std::string::npos)
      << r.err;
  EXPECT_FALSE(control::check_socket(path, {0}));
  EXPECT_TRUE(control::check_socket(path, {user.uid}));

  // The file made root's: the server's credentials still say who listens.
  ASSERT_EQ(::lchown(path.c_str(), 0, 0), 0);
  r = testing::run({pagerfsctl(), "stats", "--control", path});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is served by uid " + std::to_string(user.uid) + ", not by uid 0: refusing"), std::string::npos)
      << r.err;

  // Not a mount at all: never asked for an attribute.
  r = testing::run({pagerfsctl(), "stats", dir.path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is not a mount point"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace pagerfs
