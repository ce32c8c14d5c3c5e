#include "fuse/daemon.h"

#include <fuse_lowlevel.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "control/control_server.h"
#include "fuse/filesystem.h"
#include "fuse/fuse_ops.h"
#include "pagerfs/layers/cache_layer.h"
#include "pagerfs/control/control.h"
#include "pagerfs/layers/local_layer.h"
#include "pagerfs/layers/memory_layer.h"
#include "pagerfs/util/units.h"
#include "util/fault_injection.h"

extern char** environ;

namespace pagerfs {
namespace {

// The daemon's own -o options; fuse_opt stores each value here.
struct RawOptions {
  char* cache = nullptr;
  char* cache_size = nullptr;
  char* memory_cache = nullptr;
  char* readahead = nullptr;
  char* chunk_cache = nullptr;
  char* threads = nullptr;
  char* log_level = nullptr;
  char* control = nullptr;
  std::string store;
  int extra_args = 0;
  bool help = false;
  bool version = false;
  // Set-user-ID bits and device nodes of images are honoured only when asked
  // for by these two, never by the generic suid/dev options (which
  // mount.fuse3 and fstab's "defaults" add unasked).
  bool trust_suid = false;
  bool trust_dev = false;
  bool asked_suid = false;  // "suid" or "dev" given (and ignored without trust_*)
  bool asked_dev = false;

  RawOptions() = default;
  RawOptions(const RawOptions&) = delete;
  RawOptions& operator=(const RawOptions&) = delete;
  ~RawOptions() {  // fuse_opt_parse strdup()s every value
    for (char* value : {cache, cache_size, memory_cache, readahead, chunk_cache, threads, log_level, control}) {
      std::free(value);
    }
  }
};

enum { kKeyHelp, kKeyVersion, kKeySuid, kKeyDev };

#define PAGERFS_OPT(name, field) {name "=%s", offsetof(RawOptions, field), 0}
const fuse_opt kOptionSpec[] = {
    PAGERFS_OPT("cache", cache),
    PAGERFS_OPT("cache_size", cache_size),
    PAGERFS_OPT("memory_cache", memory_cache),
    PAGERFS_OPT("readahead", readahead),
    PAGERFS_OPT("chunk_cache", chunk_cache),
    PAGERFS_OPT("threads", threads),
    PAGERFS_OPT("log_level", log_level),
    PAGERFS_OPT("control", control),
    {"trust_suid", offsetof(RawOptions, trust_suid), 1},
    {"trust_dev", offsetof(RawOptions, trust_dev), 1},
    FUSE_OPT_KEY("suid", kKeySuid),
    FUSE_OPT_KEY("dev", kKeyDev),
    FUSE_OPT_KEY("-h", kKeyHelp),
    FUSE_OPT_KEY("--help", kKeyHelp),
    FUSE_OPT_KEY("-V", kKeyVersion),
    FUSE_OPT_KEY("--version", kKeyVersion),
    FUSE_OPT_END,
};
#undef PAGERFS_OPT

int option_proc(void* data, const char* arg, int key, fuse_args*) {
  auto* raw = static_cast<RawOptions*>(data);
  switch (key) {
    case kKeyHelp: raw->help = true; return 0;
    case kKeyVersion: raw->version = true; return 0;
    case kKeySuid: raw->asked_suid = true; return 0;  // dropped: see trust_suid
    case kKeyDev: raw->asked_dev = true; return 0;
    case FUSE_OPT_KEY_NONOPT:
      if (raw->store.empty()) {
        raw->store = arg;
        return 0;  // STORE is ours; the next one is MOUNTPOINT, for libfuse
      }
      if (++raw->extra_args > 1) {
        std::fprintf(stderr, "pagerfs: unexpected argument '%s'\n", arg);
        return -1;
      }
      return 1;
    default: return 1;  // everything else (FUSE options) goes to libfuse
  }
}

void print_usage() {
  std::printf(
      "usage: pagerfs STORE MOUNTPOINT [-f] [-d] [-s] [-o opt,...]\n"
      "\n"
      "Mounts a pagerfs store read-only: its blobs at MOUNTPOINT/blobs/sha256/<hex>,\n"
      "its images (trees packed with `pagerfsctl pack --image`) at MOUNTPOINT/images/<name>/.\n"
      "\n"
      "pagerfs options:\n"
      "    -o cache=DIR           cache disk directory (persists across mounts)\n"
      "    -o cache_size=SIZE     cache disk budget (default 1G)\n"
      "    -o memory_cache=SIZE   RAM cache of compressed bytes (default 0: none)\n"
      "    -o readahead=SIZE      read-ahead window (default 512K)\n"
      "    -o chunk_cache=SIZE    decoded chunk cache (default 64M)\n"
      "    -o threads=N           decode threads (default: one per core)\n"
      "    -o log_level=LEVEL     trace, debug, info, warn, error (default info)\n"
      "    -o control=PATH        control socket, an absolute path\n"
      "                           (default ${XDG_RUNTIME_DIR:-/run}/pagerfs/<hash of mnt>.sock)\n"
      "    -o trust_suid          honour set-user-ID/set-group-ID bits of images (root only;\n"
      "                           the default is nosuid, whatever -o suid says)\n"
      "    -o trust_dev           honour device nodes of images (root only; default nodev)\n"
      "SIZE takes K, M, G suffixes (powers of 1024). See pagerfs(8).\n"
      "\n");
  fuse_cmdline_help();
  fuse_lowlevel_help();
}

struct Config {
  std::string store;
  std::string mountpoint;  // absolute
  std::string cache_dir;
  uint64_t cache_size = uint64_t{1} << 30;
  uint64_t memory_cache = 0;
  PagerOptions pager;
  std::string control_path;
  spdlog::level::level_enum log_level = spdlog::level::info;
  bool foreground = false;
  bool debug = false;
  bool single_thread = false;
  bool clone_fd = false;
  unsigned max_threads = 0;
  bool trust_suid = false;
  bool trust_dev = false;
  bool ignored_suid = false;  // -o suid/dev given without trust_*: logged
  bool ignored_dev = false;
};

Result<uint64_t> size_opt(const char* name, const char* value) {
  auto v = parse_size(value);
  if (!v) return v.error().with_context(std::string("-o ") + name);
  return v;
}

Result<Config> make_config(const RawOptions& raw, const fuse_cmdline_opts& cmd) {
  Config c;
  c.store = raw.store;
  if (cmd.mountpoint == nullptr || c.store.empty()) {
    return Error(errc::invalid_argument, "usage: pagerfs STORE MOUNTPOINT [-f] [-d] [-s] [-o opt,...]");
  }
  char resolved[PATH_MAX];
  if (::realpath(cmd.mountpoint, resolved) == nullptr) {
    return Error::from_errno(errno, std::string("mount point '") + cmd.mountpoint + "'");
  }
  c.mountpoint = resolved;
  struct stat st {};
  if (::stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error::from_errno(ENOTDIR, std::string("mount point '") + cmd.mountpoint + "'");
  }
  // Absolute paths: fuse_daemonize() changes the directory to / (even with -f).
  const auto absolute = [](const std::string& path) { return std::filesystem::absolute(path).lexically_normal().string(); };
  c.store = absolute(raw.store);
  if (raw.cache) c.cache_dir = absolute(raw.cache);
  if (raw.cache_size) {
    PAGERFS_TRY(v, size_opt("cache_size", raw.cache_size));
    if (!raw.cache) return Error(errc::invalid_argument, "-o cache_size needs -o cache=DIR");
    c.cache_size = v;
  }
  if (raw.memory_cache) {
    PAGERFS_TRY(v, size_opt("memory_cache", raw.memory_cache));
    c.memory_cache = v;
  }
  if (raw.readahead) {
    PAGERFS_TRY(v, size_opt("readahead", raw.readahead));
    c.pager.readahead = v;
  }
  if (raw.chunk_cache) {
    PAGERFS_TRY(v, size_opt("chunk_cache", raw.chunk_cache));
    c.pager.chunk_cache_bytes = v;
  }
  // RAM caches larger than the machine's memory can only end in the OOM
  // killer: refused up front.
  const uint64_t memory = static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  for (const auto& [name, value] : {std::pair{"chunk_cache", c.pager.chunk_cache_bytes}, std::pair{"memory_cache", c.memory_cache}}) {
    if (memory > 0 && value > memory / 2) {
      return Error(errc::invalid_argument, std::string("-o ") + name + ": " + format_size(value) +
                                               " is more than half of this machine's memory (" + format_size(memory) + ")");
    }
  }
  if (raw.threads) {
    char* end = nullptr;
    const unsigned long n = std::strtoul(raw.threads, &end, 10);
    if (*raw.threads == '\0' || *end != '\0' || n == 0 || n > 256) {
      return Error(errc::invalid_argument, std::string("-o threads: '") + raw.threads + "' is not a number from 1 to 256");
    }
    c.pager.threads = static_cast<unsigned>(n);
  }
  PAGERFS_TRYV(validate(c.pager));
  if (raw.log_level) {
    c.log_level = spdlog::level::from_str(raw.log_level);
    if (c.log_level == spdlog::level::off && std::string(raw.log_level) != "off") {
      return Error(errc::invalid_argument, std::string("-o log_level: unknown level '") + raw.log_level + "'");
    }
  }
  if (raw.control && raw.control[0] != '/') {
    // The daemon changes its directory to /: a relative path would not name
    // what the user meant in every process that reads it.
    return Error(errc::invalid_argument, std::string("-o control: '") + raw.control + "' is not an absolute path");
  }
  c.control_path = raw.control ? absolute(raw.control) : control::default_socket_path(c.mountpoint);
  c.trust_suid = raw.trust_suid;
  c.trust_dev = raw.trust_dev;
  c.ignored_suid = raw.asked_suid && !raw.trust_suid;
  c.ignored_dev = raw.asked_dev && !raw.trust_dev;
  if ((c.trust_suid || c.trust_dev) && ::geteuid() != 0) {
    return Error(errc::invalid_argument, std::string("-o ") + (c.trust_suid ? "trust_suid" : "trust_dev") +
                                             " needs root (the kernel refuses it to other users)");
  }
  c.foreground = cmd.foreground != 0;
  c.debug = cmd.debug != 0;
  if (c.debug) c.log_level = std::min(c.log_level, spdlog::level::debug);
  c.single_thread = cmd.singlethread != 0;
  c.clone_fd = cmd.clone_fd != 0;
  c.max_threads = cmd.max_threads;
  return c;
}

// Escapes a value for a FUSE -o list (commas and backslashes).
std::string escape_option(const std::string& value) {
  std::string out;
  for (char ch : value) {
    if (ch == ',' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}

// Detaches the mount: new opens fail, open files keep being served, and the
// kernel ends the session when the last one closes (the squashfuse model).
void lazy_unmount(const std::string& mountpoint, spdlog::logger& log) {
  if (::umount2(mountpoint.c_str(), MNT_DETACH) == 0) return;
  // Not root: fusermount3 does it for the user who mounted.
  const char* argv[] = {"fusermount3", "-u", "-z", "-q", mountpoint.c_str(), nullptr};
  pid_t pid = 0;
  if (::posix_spawnp(&pid, "fusermount3", nullptr, nullptr, const_cast<char**>(argv), environ) == 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  }
  log.error("could not unmount {}", mountpoint);
}

// Raises the mount's kernel read-ahead to ours (root only; best effort).
// Returns the mount's device number (0 if unknown).
dev_t set_bdi_readahead(const std::string& mountpoint, uint64_t readahead, spdlog::logger& log) {
  struct stat st {};
  if (::stat(mountpoint.c_str(), &st) != 0) return 0;
  const std::string path = "/sys/class/bdi/" + std::to_string(major(st.st_dev)) + ":" +
                           std::to_string(minor(st.st_dev)) + "/read_ahead_kb";
  std::ofstream out(path);
  out << readahead / 1024;
  out.flush();
  if (out) {
    log.debug("{} = {}", path, readahead / 1024);
  } else if (::geteuid() == 0) {
    log.warn("could not set {}", path);
  }
  return st.st_dev;
}

// True while the kernel still serves our connection. The kernel ends a
// connection (its /dev/fuse fd then polls POLLERR) before it frees the
// mount's device number, so while this is true the number is still ours.
bool connection_alive(fuse_session* se) {
  pollfd p{fuse_session_fd(se), POLLIN, 0};
  return ::poll(&p, 1, 0) >= 0 && (p.revents & (POLLERR | POLLNVAL)) == 0;
}

// Ends the FUSE connection at once (root only): every waiting request fails
// with ENOTCONN and the session loop returns. The connection is named by the
// mount's device number, which the kernel gives to the next mount once ours
// is gone: the caller checks connection_alive() first, so that another
// mount is never aborted.
bool abort_connection(dev_t dev, spdlog::logger& log) {
  if (dev == 0) return false;
  std::ofstream abort("/sys/fs/fuse/connections/" + std::to_string(minor(dev)) + "/abort");
  abort << "1";
  abort.flush();
  if (!abort) log.warn("could not abort the FUSE connection");
  return static_cast<bool>(abort);
}

// One control request (a JSON line, see pagerfs/control/control.h); the answer's body.
Result<std::string> handle_command(Filesystem& fs, const ControlServer& server, const std::string& line) {
  PAGERFS_TRY(request, control::parse_request(line));
  const std::string& command = request.command;
  if (command != "prewarm" && !request.items.empty()) {
    return Error(errc::invalid_argument, "'" + command + "' takes no items");
  }
  if (command == "stats") {
    nlohmann::json stats = fs.stats_json();
    const ControlCounters n = server.counters();
    stats["control"] = {{"connections", n.connections}, {"refused_peers", n.refused_peers},
                        {"oversized", n.oversized},     {"timed_out", n.timed_out},
                        {"evicted", n.evicted}};
    return stats.dump(2) + "\n";
  }
  if (command == "dump") return fs.dump();
  if (command == "drop-caches") {
    PAGERFS_TRYV(fs.drop_caches());
    return std::string("caches dropped\n");
  }
  if (command == "prewarm") {
    if (request.items.empty()) return Error(errc::invalid_argument, "prewarm needs at least one item");
    std::string out;
    for (const control::PrewarmItem& item : request.items) {
      PAGERFS_TRYV(fs.prewarm(item.path, item.offset, item.length));
      out += "prewarmed " + item.path;
      if (item.offset != 0 || item.length != UINT64_MAX) {
        out += ":" + std::to_string(item.offset) + ":" +
               (item.length == UINT64_MAX ? std::string("end") : std::to_string(item.length));
      }
      out += "\n";
    }
    return out;
  }
  return Error(errc::invalid_argument, "unknown command '" + command + "'");
}

}  // namespace

int run_daemon(int argc, char** argv) {
  // glibc gives each thread that allocates its own arena (up to 8 per core);
  // decoded chunks freed by one thread and allocated by another then stay
  // resident in several arenas. One arena per core cut the daemon's peak RSS
  // under scripts/bench's load from ~155 to ~110 MiB at equal throughput.
  ::mallopt(M_ARENA_MAX, static_cast<int>(std::max(2u, std::thread::hardware_concurrency())));
  auto fail = [](const std::string& message) {
    std::fprintf(stderr, "pagerfs: %s\n", message.c_str());
    return 1;
  };
  fuse_args args = FUSE_ARGS_INIT(argc, argv);
  struct ArgsGuard {
    fuse_args* a;
    ~ArgsGuard() { fuse_opt_free_args(a); }
  } args_guard{&args};
  RawOptions raw;
  if (fuse_opt_parse(&args, &raw, kOptionSpec, option_proc) != 0) return 1;
  if (raw.help) {
    print_usage();
    return 0;
  }
  if (raw.version) {
    std::printf("pagerfs %s (libfuse %s)\n", PAGERFS_VERSION, fuse_pkgversion());
    return 0;
  }
  fuse_cmdline_opts cmd{};
  if (fuse_parse_cmdline(&args, &cmd) != 0) return 1;
  struct CmdGuard {
    fuse_cmdline_opts* c;
    ~CmdGuard() { std::free(c->mountpoint); }
  } cmd_guard{&cmd};
  auto config = make_config(raw, cmd);
  if (!config) return fail(config.error().message());
  const Config& c = config.value();

  auto log = std::make_shared<spdlog::logger>("pagerfs", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log->set_level(c.log_level);
  log->set_pattern("pagerfs: [%l] %v");
  spdlog::set_default_logger(log);
  if (c.ignored_suid || c.ignored_dev) {
    log->info("-o suid/dev ignored: images are mounted nosuid,nodev unless -o trust_suid/trust_dev");
  }
  // A testing aid (pagerfs(8), ENVIRONMENT): allocation failures on demand.
  auto faults = fault::arm_from_environment();
  if (!faults) return fail(faults.error().message());
  if (!faults.value().empty()) log->warn("PAGERFS_INJECT_FAULTS={}: injecting allocation failures", faults.value());

  // Everything that can fail is opened and checked before mounting.
  auto store = Store::open(c.store);
  if (!store) return fail(store.error().message());
  std::vector<std::shared_ptr<Layer>> layers;
  if (c.memory_cache > 0) layers.push_back(make_memory_layer(c.memory_cache));
  if (!c.cache_dir.empty()) {
    CacheLayerOptions cache_options;
    cache_options.budget_bytes = c.cache_size;
    auto cache = make_cache_layer(c.cache_dir, cache_options, log);
    if (!cache) return fail(cache.error().message());
    layers.push_back(cache.value());
  }
  layers.push_back(make_local_layer(store.value()));
  auto stack = LayerStack::create(std::move(layers), log);
  if (!stack) return fail(stack.error().message());
  auto digests = store.value().list_blobs();
  if (!digests) return fail(digests.error().message());
  auto control_server = ControlServer::bind(c.control_path);
  if (!control_server) return fail(control_server.error().message());

  Filesystem fs(store.value(), stack.value(), std::move(digests).value(), c.control_path, c.pager.readahead, log);
  // Each image checked whole (manifest and blobs), so that a mount never
  // shows a file it cannot read; a broken one is left out with a warning.
  fs.load_images();
  char store_abs[PATH_MAX];
  if (::realpath(c.store.c_str(), store_abs) == nullptr) std::snprintf(store_abs, sizeof store_abs, "%s", c.store.c_str());
  // nosuid,nodev unless trusted: an image may hold setuid-root binaries and
  // device nodes (any root file system does), and whoever packed it need not
  // be root. These come last, after anything the command line or a mount
  // helper passed, so they win.
  const std::string mount_options = "-oro,default_permissions,subtype=pagerfs,fsname=" + escape_option(store_abs) +
                                    (c.trust_suid ? ",suid" : ",nosuid") + (c.trust_dev ? ",dev" : ",nodev");
  fuse_opt_add_arg(&args, mount_options.c_str());
  if (c.debug) fuse_opt_add_arg(&args, "-odebug");
  const fuse_lowlevel_ops ops = make_fuse_ops();
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, &fs);
  if (se == nullptr) return fail("invalid FUSE options (see pagerfs --help)");

  // Signals are taken by a supervisor thread (sigwait), never by workers.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (fuse_session_mount(se, c.mountpoint.c_str()) != 0) {
    fuse_session_destroy(se);
    return fail("cannot mount at '" + c.mountpoint + "'");
  }
  if (fuse_daemonize(c.foreground ? 1 : 0) != 0) {
    fuse_session_unmount(se);
    fuse_session_destroy(se);
    return fail("cannot daemonize");
  }
  if (!c.foreground) {
    auto syslog = std::make_shared<spdlog::logger>(
        "pagerfs", std::make_shared<spdlog::sinks::syslog_sink_mt>("pagerfs", LOG_PID, LOG_DAEMON, false));
    syslog->set_level(c.log_level);
    syslog->set_pattern("%v");
    spdlog::set_default_logger(syslog);
    log = syslog;
  }

  // Threads start only now, in the process that serves the mount.
  auto pager = Pager::create(stack.value(), c.pager, log);
  if (!pager) {
    fuse_session_unmount(se);
    fuse_session_destroy(se);
    return fail(pager.error().message());
  }
  fs.start(se, pager.value());
  control_server.value()->start(
      [&fs, &server = *control_server.value()](const std::string& line) { return handle_command(fs, server, line); },
      log);

  std::atomic<bool> stopping{false};
  std::thread supervisor([&] {
    // The mount's device number names its bdi and its connection in sysfs.
    const dev_t connection = set_bdi_readahead(c.mountpoint, c.pager.readahead, *log);
    bool unmounting = false;
    while (!stopping.load()) {
      const timespec timeout{0, 200'000'000};
      const int sig = sigtimedwait(&signals, nullptr, &timeout);
      if (sig == SIGUSR1) {
        log->info("dump:\n{}", fs.dump());
      } else if (sig > 0 && !unmounting) {
        log->info("signal {}: unmounting {}; open files are served until closed", sig, c.mountpoint);
        unmounting = true;
        lazy_unmount(c.mountpoint, *log);
        // The mount point is free: a new mount there gets its own socket.
        control_server.value()->unpublish();
      } else if (sig > 0) {
        log->warn("signal {} again: stopping now; open files get ENOTCONN", sig);
        fuse_session_exit(se);
        // A dead connection wakes the workers itself; a live one is ours to abort.
        if (connection_alive(se) && !abort_connection(connection, *log)) std::_Exit(1);  // no other way to wake the workers
      }
    }
  });
  log->info("serving {} at {}", c.store, c.mountpoint);

  int rc = 0;
  if (c.single_thread) {
    rc = fuse_session_loop(se);
  } else {
    fuse_loop_config* loop = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(loop, c.clone_fd ? 1 : 0);
    if (c.max_threads != 0) fuse_loop_cfg_set_max_threads(loop, c.max_threads);
    rc = fuse_session_loop_mt(se, loop);
    fuse_loop_cfg_destroy(loop);
  }
  // Unmounted: the next daemon mounting here may bind the control socket
  // while this one stops.
  control_server.value()->unpublish();
  stopping = true;
  supervisor.join();
  // The pager first: a long prewarm on the control thread then fails fast.
  fs.stop();
  pager.value()->request_shutdown();
  control_server.value()->stop();
  fuse_session_unmount(se);
  fuse_session_destroy(se);
  log->info("stopped");
  return rc == 0 ? 0 : 1;
}

}  // namespace pagerfs
