#include "fuse/daemon.h"

#include <fuse_lowlevel.h>
#include <malloc.h>
#include <signal.h>
#include <syslog.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "control/control_server.h"
#include "fuse/control_commands.h"
#include "fuse/daemon_options.h"
#include "fuse/filesystem.h"
#include "fuse/fuse_ops.h"
#include "fuse/kernel_mount.h"
#include "fuse/materializer.h"
#include "fuse/session_io.h"
#include "fuse/supervisor.h"
#include "fuse/takeover_journal.h"
#include "fuse/private_store.h"
#include "pagerfs/layers/cache_layer.h"
#include "pagerfs/layers/local_layer.h"
#include "pagerfs/layers/memory_layer.h"
#include "pagerfs/remote/remote_images.h"
#include "pagerfs/remote/remote_layer.h"
#include "remote/registry_images.h"
#include "util/fault_injection.h"

namespace pagerfs {

int run_daemon(int argc, char** argv) {
  // glibc gives each thread that allocates its own arena (up to 8 per core);
  // decoded chunks freed by one thread and allocated by another then stay
  // resident in several arenas. One arena per core cut the daemon's peak RSS
  // under scripts/bench's load from ~155 to ~110 MiB at equal throughput.
  ::mallopt(M_ARENA_MAX, static_cast<int>(std::max(2u, std::thread::hardware_concurrency())));
  // A successor on a live connection (supervisor.h), if the supervisor started us.
  auto takeover = takeover_from_environment();
  const bool started_by_supervisor = !takeover || takeover.value().has_value();
  auto fail = [started_by_supervisor](const std::string& message) {
    std::fprintf(stderr, "pagerfs: %s\n", message.c_str());
    // A successor's standard error may be /dev/null (a daemon's): syslog too.
    if (started_by_supervisor) ::syslog(LOG_DAEMON | LOG_ERR, "pagerfs: %s", message.c_str());
    return 1;
  };
  if (!takeover) return fail(takeover.error().message());
  const std::optional<Takeover>& successor = takeover.value();
  // Relative arguments are resolved here; a successor is started here too.
  std::string directory = "/";
  if (char* cwd = ::getcwd(nullptr, 0)) {
    directory = cwd;
    std::free(cwd);
  }
  const std::vector<std::string> arguments(argv, argv + argc);
  fuse_args args = FUSE_ARGS_INIT(argc, argv);
  struct ArgsGuard {
    fuse_args* a;
    ~ArgsGuard() { fuse_opt_free_args(a); }
  } args_guard{&args};
  RawOptions raw;
  if (successor) raw.takeover_mountpoint = successor->mountpoint;
  if (parse_pagerfs_options(&args, &raw) != 0) return 1;
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
  std::vector<std::shared_ptr<Layer>> layers;
  if (c.memory_cache > 0) layers.push_back(make_memory_layer(c.memory_cache));
  if (!c.cache_dir.empty()) {
    CacheLayerOptions cache_options;
    cache_options.budget_bytes = c.cache_size;
    auto cache = make_cache_layer(c.cache_dir, cache_options, log);
    if (!cache) return fail(cache.error().message());
    layers.push_back(cache.value());
  }
  // A remote-only store: a directory of the mount's own for the manifests
  // of the images named, each fetched and checked against its digest now.
  std::unique_ptr<PrivateStore> private_store;
  std::string store_dir = c.store;
  if (store_dir.empty()) {
    auto made = PrivateStore::create(c.cache_dir);
    if (!made) return fail(made.error().message());
    private_store = std::move(made).value();
    store_dir = private_store->root();
  }
  auto store = Store::open(store_dir);
  if (!store) return fail(store.error().message());
  RemoteLayerOptions remote_options = c.remote;
  if (c.registry) {
    // The images and where their blobs are, from the registry.
    auto location = remote::RegistryLocation::parse(c.remote.urls.front());
    if (!location) return fail(location.error().message());
    auto credentials = remote::load_credentials(
        c.registry_credentials.empty() ? std::nullopt : std::optional<std::string>(c.registry_credentials));
    if (!credentials) return fail(credentials.error().message());
    auto client = std::make_shared<remote::RegistryClient>(location.value(), credentials.value());
    auto blobs = std::make_shared<remote::RegistryBlobs>(client);
    FetchImagesOptions fetch;
    fetch.manifest_cache_dir = private_store ? private_store->manifest_cache_dir() : "";
    fetch.fetch_profiles = c.prefetch == PrefetchMode::profile;
    fetch.warn = [&log](const std::string& message) { log->warn("{}", message); };
    if (auto fetched = remote::fetch_registry_images(*client, c.images, store.value(), *blobs, fetch); !fetched) {
      return fail(fetched.error().message());
    }
    remote_options.locator = blobs;
  } else if (private_store) {
    FetchImagesOptions fetch;
    fetch.manifest_cache_dir = private_store->manifest_cache_dir();
    fetch.fetch_profiles = c.prefetch == PrefetchMode::profile;
    fetch.warn = [&log](const std::string& message) { log->warn("{}", message); };
    auto fetched = fetch_images(c.remote, c.images, store.value(), fetch);
    if (!fetched) return fail(fetched.error().message());
    if (c.images.empty()) log->info("{}: no -o image given: only blobs/ is shown", c.store_url);
  }
  // Over a remote, the local store is a partial copy (at least its images);
  // blobs it lacks come from the remote.
  LocalLayerOptions local_options;
  local_options.complete = c.remote.urls.empty();
  layers.push_back(make_local_layer(store.value(), local_options));
  if (!c.remote.urls.empty()) {
    auto remote = make_remote_layer(remote_options, log);
    if (!remote) return fail(remote.error().message());
    layers.push_back(remote.value());
  }
  auto stack = LayerStack::create(std::move(layers), log);
  if (!stack) return fail(stack.error().message());
  // A successor serves the socket its supervisor holds.
  auto control_server = successor ? ControlServer::adopt(UniqueFd(kSupervisedControlFd), c.control_path)
                                  : ControlServer::bind(c.control_path);
  if (!control_server) return fail(control_server.error().message());
  std::optional<TakeoverJournal> journal;
  if (successor) {
    auto adopted = TakeoverJournal::adopt(UniqueFd(kSupervisedJournalFd));
    if (!adopted) return fail(adopted.error().message());
    journal.emplace(std::move(adopted).value());
  } else if (c.supervise) {
    auto created = TakeoverJournal::create();
    if (!created) return fail(created.error().message());
    journal.emplace(std::move(created).value());
  }

  // Nothing of the store is listed or read here: mount time and memory do
  // not depend on how many blobs or images it holds. Blobs are found on
  // lookup; images on lookup and when images/ is listed, each only if the
  // catalog finds it usable (a broken one is left out with a warning).
  Filesystem fs(store.value(), stack.value(), c.control_path, c.pager.readahead, log);
  fs.set_prefetch(c.prefetch, c.prefetch_options);
  // Passthrough needs CAP_SYS_ADMIN for every backing file: without it the
  // kernel is not even asked.
  const bool passthrough = c.passthrough_budget > 0 && ::geteuid() == 0;
  if (c.passthrough_budget > 0 && !passthrough) log->warn("passthrough needs root: files are served through the pager");
  if (private_store) fs.set_remote_only();
  char store_abs[PATH_MAX];
  if (!c.store_url.empty()) {
    std::snprintf(store_abs, sizeof store_abs, "%s", c.store_url.c_str());
  } else if (::realpath(c.store.c_str(), store_abs) == nullptr) {
    std::snprintf(store_abs, sizeof store_abs, "%s", c.store.c_str());
  }
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

  // Signals are taken by a thread of their own (sigwait), never by workers.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (successor) {
    // The connection is live: no mount, no INIT from the kernel (replayed),
    // and we were started as a daemon already.
    const SessionIoOptions io_options{SessionMode::successor, &*journal, 0, false};
    if (auto io = install_session_io(se, kSupervisedFuseFd, io_options, log); !io) {
      fuse_session_destroy(se);
      return fail(io.error().message());
    }
  } else {
    if (auto cleaned = clean_dead_mount(c.mountpoint, *log); !cleaned) {
      fuse_session_destroy(se);
      return fail(cleaned.error().message());
    }
    if (fuse_session_mount(se, c.mountpoint.c_str()) != 0) {
      fuse_session_destroy(se);
      return fail("cannot mount at '" + c.mountpoint + "'");
    }
    if (fuse_daemonize(c.foreground ? 1 : 0) != 0) {
      fuse_session_unmount(se);
      fuse_session_destroy(se);
      return fail("cannot daemonize");
    }
    // The INIT the kernel sends goes into the journal, for successors, and
    // its reply gets the request timeout.
    const int fd = fuse_session_fd(se);
    const SessionIoOptions io_options{SessionMode::first, journal ? &*journal : nullptr, c.request_timeout,
                                      passthrough};
    if (auto io = install_session_io(se, fd, io_options, log); !io) {
      fuse_session_unmount(se);
      fuse_session_destroy(se);
      return fail(io.error().message());
    }
    if (journal) {
      SupervisorSetup setup{fd, journal->fd(), control_server.value()->listen_fd(), c.mountpoint, directory,
                            c.foreground, arguments};
      if (auto split = split_off_supervisor(setup); !split) {
        fuse_session_unmount(se);
        fuse_session_destroy(se);
        return fail(split.error().message());
      }
      // Here in the server; the supervisor is our parent.
    }
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
  // The backing files of passthrough, made from what the pager decodes.
  std::shared_ptr<Materializer> materializer;
  if (passthrough) {
    auto files = MaterializedFiles::open({c.cache_dir + "/materialized", c.passthrough_budget}, log);
    if (!files) {
      if (!successor) fuse_session_unmount(se);
      fuse_session_destroy(se);
      return fail(files.error().message());
    }
    Materializer::Options options;
    options.small_file_limit = c.passthrough_small;
    materializer = std::make_shared<Materializer>(std::move(files).value(), pager.value(), options, log);
    fs.set_passthrough(make_materialized_backing_provider(materializer));
  }
  if (successor && successor->handoff_fd >= 0) {
    // A live upgrade: ready to serve; the supervisor now retires the old
    // server, and says go once it has stopped handing out inodes.
    if (auto go = wait_for_handoff(successor->handoff_fd); !go) {
      fuse_session_destroy(se);
      return fail(go.error().message());
    }
    if (auto reloaded = journal->reload(); !reloaded) {
      fuse_session_destroy(se);
      return fail(reloaded.error().message());
    }
  }
  if (journal) {
    fs.set_takeover(&*journal, successor ? successor->generation : 0);
    if (successor) fs.restore(journal->inherited());
  }
  fs.start(se, pager.value());
  control_server.value()->start(
      [&fs, &server = *control_server.value()](const std::string& line) { return handle_command(fs, server, line); },
      log);

  std::atomic<bool> stopping{false};
  std::atomic<bool> retired{false};  // a successor serves the connection now
  std::thread signal_thread([&] {
    // The mount's device number names its bdi and its connection in sysfs.
    const dev_t connection = set_bdi_readahead(c.mountpoint, c.pager.readahead, *log);
    bool unmounting = false;
    while (!stopping.load()) {
      const timespec timeout{0, 200'000'000};
      const int sig = sigtimedwait(&signals, nullptr, &timeout);
      if (sig == SIGUSR1) {
        log->info("dump:\n{}", fs.dump());
      } else if (sig == SIGUSR2) {
        // From the supervisor, in a live upgrade (supervisor.h).
        if (!journal || unmounting) continue;
        log->info("retiring: a new server takes the mount over");
        retired = true;
        // The page cache supplier first, while the workers still answer: a
        // page it pushes may wait on a READ that only they would answer.
        fs.stop();
        retire_session_io();
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
  if (journal) journal->mark_serving(successor ? successor->generation : 0);
  log->info("serving {} at {}", c.store_url.empty() ? c.store : c.store_url, c.mountpoint);

  int rc = 0;
  if (c.single_thread) {
    rc = fuse_session_loop(se);
  } else {
    fuse_loop_config* loop = fuse_loop_cfg_create();
    // Requests read through a cloned descriptor die with the process that
    // cloned it (the kernel ends them with an error): a supervised mount
    // reads through the descriptor its supervisor holds too.
    if (c.clone_fd && journal) log->warn("-o clone_fd ignored: the mount is supervised (-o nosupervise to use it)");
    fuse_loop_cfg_set_clone_fd(loop, c.clone_fd && !journal ? 1 : 0);
    if (c.max_threads != 0) fuse_loop_cfg_set_max_threads(loop, c.max_threads);
    rc = fuse_session_loop_mt(se, loop);
    fuse_loop_cfg_destroy(loop);
  }
  // Retired: every request read is answered and the page cache supplier is
  // stopped; the successor may take over while this one tears down.
  if (retired) journal->mark_retired(successor ? successor->generation : 0);
  // Unmounted: the next daemon mounting here may bind the control socket
  // while this one stops. Retired: the mount, its socket and its connection
  // are the successor's now.
  if (!retired) control_server.value()->unpublish();
  stopping = true;
  signal_thread.join();
  // The pager first: a long prewarm on the control thread then fails fast.
  fs.stop();
  if (materializer) materializer->stop();
  pager.value()->request_shutdown();
  if (retired) control_server.value()->keep_socket_file();
  control_server.value()->stop();
  if (!retired) fuse_session_unmount(se);
  fuse_session_destroy(se);
  log->info(retired ? "retired" : "stopped");
  return rc == 0 || retired ? 0 : 1;
}

}  // namespace pagerfs

