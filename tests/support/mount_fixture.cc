#include "support/mount_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/subprocess.h"

extern char** environ;

namespace pagerfs::testing {

bool fuse_available() { return ::access("/dev/fuse", R_OK | W_OK) == 0; }

std::optional<MountInfo> mount_info(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::optional<MountInfo> found;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mnt, options;
    fields >> id >> parent >> dev >> root >> mnt >> options;
    if (mnt != path) continue;
    // The last line for a path is the mount on top.
    found = MountInfo{dev, options, ""};
    if (const size_t dash = line.find(" - "); dash != std::string::npos) {
      std::istringstream(line.substr(dash + 3)) >> found->type;
    }
  }
  return found;
}

bool is_pagerfs_mount(const std::string& path) {
  const auto info = mount_info(path);
  return info && info->type == "fuse.pagerfs";
}

MountedStore::MountedStore(const std::string& store, const std::string& mountpoint,
                           const std::vector<std::string>& options,
                           const std::vector<std::string>& launcher)
    : mountpoint_(mountpoint), log_path_(mountpoint + ".log") {
  ::mkdir(mountpoint.c_str(), 0755);
  // A mount already there (a dead one the daemon is to clean) is not ours:
  // ours answers statfs (its device number may be the dead one's again).
  const bool covered = is_pagerfs_mount(mountpoint);
  const auto mounted = [&] {
    struct statfs fs {};
    return is_pagerfs_mount(mountpoint_) && (!covered || ::statfs(mountpoint_.c_str(), &fs) == 0);
  };
  // If this test process dies without running destructors (a sanitizer's
  // abort), the daemon gets SIGTERM and unmounts: no mount, no supervisor
  // and no server are left behind. (Its parent is this thread: mounts are
  // made on the test's own thread.)
  std::vector<std::string> argv;
  if (::access("/usr/bin/setpriv", X_OK) == 0) argv = {"/usr/bin/setpriv", "--pdeathsig", "TERM", "--"};
  argv.insert(argv.end(), launcher.begin(), launcher.end());
  for (const std::string& a : {binary_from_env("PAGERFS"), store, mountpoint, std::string("-f")}) argv.push_back(a);
  for (const std::string& o : options) {
    argv.push_back("-o");
    argv.push_back(o);
  }
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  const int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start pagerfs");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!mounted()) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("pagerfs exited before mounting:\n" + log());
    }
    if (std::chrono::steady_clock::now() > deadline) {
      // A daemon stuck before mounting (e.g. in an open() that blocks) is
      // stopped here: the destructor does not run for a throwing constructor.
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
      if (is_pagerfs_mount(mountpoint_)) run({"fusermount3", "-u", "-z", mountpoint_});
      throw std::runtime_error("pagerfs did not mount within 10 s:\n" + log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

MountedStore::~MountedStore() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    if (wait_exit(std::chrono::seconds(10)) == -1 && pid_ > 0) {
      // A supervisor killed leaves its server running: that goes first.
      for (pid_t child : children()) ::kill(child, SIGKILL);
      ::kill(pid_, SIGKILL);
      wait_exit(std::chrono::seconds(5));
    }
  }
  if (is_pagerfs_mount(mountpoint_)) run({"fusermount3", "-u", "-z", mountpoint_});
  ::rmdir(mountpoint_.c_str());
}

std::vector<pid_t> MountedStore::children() const {
  std::vector<pid_t> out;
  if (pid_ <= 0) return out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t paren = text.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(text.substr(paren + 2));
    char state = 0;
    pid_t parent = 0;
    fields >> state >> parent;
    if (parent == pid_ && state != 'Z') out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

std::string MountedStore::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void MountedStore::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int MountedStore::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace pagerfs::testing
