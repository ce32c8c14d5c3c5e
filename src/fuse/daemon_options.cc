#include "fuse/daemon_options.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "pagerfs/control/control.h"
#include "pagerfs/util/units.h"
#include "remote/http_client.h"
#include "remote/registry_client.h"

namespace pagerfs {
namespace {

enum { kKeyHelp, kKeyVersion, kKeySuid, kKeyDev, kKeyRemote, kKeyImage };

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
    PAGERFS_OPT("verify", verify),
    PAGERFS_OPT("remote_timeout", remote_timeout),
    PAGERFS_OPT("request_timeout", request_timeout),
    PAGERFS_OPT("prefetch", prefetch),
    PAGERFS_OPT("prefetch_rate", prefetch_rate),
    PAGERFS_OPT("registry_credentials", registry_credentials),
    PAGERFS_OPT("passthrough", passthrough),
    PAGERFS_OPT("passthrough_small", passthrough_small),
    FUSE_OPT_KEY("remote=", kKeyRemote),  // repeatable: collected by option_proc
    FUSE_OPT_KEY("image=", kKeyImage),    // repeatable too
    {"trust_suid", offsetof(RawOptions, trust_suid), 1},
    {"trust_dev", offsetof(RawOptions, trust_dev), 1},
    {"supervise", offsetof(RawOptions, supervise), 1},
    {"nosupervise", offsetof(RawOptions, supervise), 0},
    FUSE_OPT_KEY("suid", kKeySuid),
    FUSE_OPT_KEY("dev", kKeyDev),
    FUSE_OPT_KEY("-h", kKeyHelp),
    FUSE_OPT_KEY("--help", kKeyHelp),
    FUSE_OPT_KEY("-V", kKeyVersion),
    FUSE_OPT_KEY("--version", kKeyVersion),
    FUSE_OPT_END,
};
#undef PAGERFS_OPT

int option_proc(void* data, const char* arg, int key, fuse_args* outargs) {
  auto* raw = static_cast<RawOptions*>(data);
  switch (key) {
    case kKeyHelp: raw->help = true; return 0;
    case kKeyVersion: raw->version = true; return 0;
    case kKeySuid: raw->asked_suid = true; return 0;  // dropped: see trust_suid
    case kKeyDev: raw->asked_dev = true; return 0;
    case kKeyRemote: raw->remotes.emplace_back(arg + std::strlen("remote=")); return 0;
    case kKeyImage: raw->images.emplace_back(arg + std::strlen("image=")); return 0;
    case FUSE_OPT_KEY_NONOPT:
      if (raw->store.empty()) {
        raw->store = arg;
        return 0;  // STORE is ours; the next one is MOUNTPOINT, for libfuse
      }
      if (++raw->extra_args > 1) {
        std::fprintf(stderr, "pagerfs: unexpected argument '%s'\n", arg);
        return -1;
      }
      // A successor's libfuse must not resolve the live mount point (it
      // would wait for us): it gets "/", and the config the real one.
      if (!raw->takeover_mountpoint.empty()) return fuse_opt_add_arg(outargs, "/") == 0 ? 0 : -1;
      return 1;
    default: return 1;  // everything else (FUSE options) goes to libfuse
  }
}


Result<uint64_t> size_opt(const char* name, const char* value) {
  auto v = parse_size(value);
  if (!v) return v.error().with_context(std::string("-o ") + name);
  return v;
}

}  // namespace

int parse_pagerfs_options(fuse_args* args, RawOptions* raw) { return fuse_opt_parse(args, raw, kOptionSpec, option_proc); }

void print_usage() {
  std::printf(
      "usage: pagerfs STORE MOUNTPOINT [-f] [-d] [-s] [-o opt,...]\n"
      "       pagerfs URL MOUNTPOINT -o image=NAME@sha256:HEX[,image=...] [-o opt,...]\n"
      "       pagerfs oci://HOST[:PORT]/REPO MOUNTPOINT -o image=NAME@sha256:HEX[,...] [-o opt,...]\n"
      "\n"
      "Mounts a pagerfs store read-only: its blobs at MOUNTPOINT/blobs/sha256/<hex>,\n"
      "its images (trees packed with `pagerfsctl pack --image`) at MOUNTPOINT/images/<name>/.\n"
      "With a URL (http:// or https://) instead of STORE, the store is remote only: its\n"
      "blobs are read over HTTP and its images are the ones named with -o image. With an\n"
      "OCI registry (oci://), the images are those `pagerfsctl push` put there.\n"
      "\n"
      "pagerfs options:\n"
      "    -o cache=DIR           cache disk directory (persists across mounts)\n"
      "    -o cache_size=SIZE     cache disk budget (default 1G)\n"
      "    -o passthrough=SIZE    serve hot files by FUSE passthrough: their decoded bytes go\n"
      "                           to CACHE/materialized (budget SIZE) and the kernel reads\n"
      "                           them from there itself (root, Linux 6.9+; needs -o cache)\n"
      "    -o passthrough_small=SIZE  files up to SIZE are materialized at their first open\n"
      "                           (default 256K); bigger ones once read whole or executed\n"
      "    -o memory_cache=SIZE   RAM cache of compressed bytes (default 0: none)\n"
      "    -o readahead=SIZE      read-ahead window (default 512K)\n"
      "    -o chunk_cache=SIZE    decoded chunk cache (default 64M)\n"
      "    -o threads=N           decode threads (default: one per core)\n"
      "    -o verify=CHECK        xxh3 (default): check each decoded chunk by its XXH3-64\n"
      "                           (damage, not forgery); sha256: also by its SHA-256 (v2 blobs;\n"
      "                           needed for an untrusted store; ~20%% slower cold reads)\n"
      "    -o remote=URL          read blobs missing from STORE from a copy of the store\n"
      "                           published at URL (http:// or https://); repeat for mirrors,\n"
      "                           tried in order. Untrusted: every chunk is checked by SHA-256\n"
      "                           against STORE's image manifests before use (pagerfs(8))\n"
      "    -o image=NAME@sha256:HEX  with a URL as STORE: show image NAME, whose manifest\n"
      "                           file has this SHA-256 (`pagerfsctl images` prints it);\n"
      "                           repeat for more images. From a registry, HEX is the\n"
      "                           digest of its OCI manifest (`pagerfsctl push` prints it)\n"
      "    -o registry_credentials=FILE  USER:PASSWORD for the registry (a file only you\n"
      "                           may read; default: $PAGERFS_REGISTRY_AUTH, or none)\n"
      "    -o remote_timeout=SECONDS  a remote read that takes longer fails with EIO (default 20)\n"
      "    -o request_timeout=SECONDS  the kernel ends the mount (ENOTCONN) when a request\n"
      "                           waits longer for its answer: readers never hang on a dead\n"
      "                           daemon (default 30, or 3x remote_timeout over a remote;\n"
      "                           0: never; at least 15)\n"
      "    -o prefetch=WHAT       what to fetch of an image when it is first used, in the\n"
      "                           background: profile (its recorded profile, `pagerfsctl\n"
      "                           record`; the default with a remote), all (the whole image,\n"
      "                           to the cache disk), none (the default without a remote)\n"
      "    -o prefetch_rate=SIZE  at most SIZE decoded bytes a second (default: unbounded)\n"
      "    -o log_level=LEVEL     trace, debug, info, warn, error (default info)\n"
      "    -o control=PATH        control socket, an absolute path\n"
      "                           (default ${XDG_RUNTIME_DIR:-/run}/pagerfs/<hash of mnt>.sock)\n"
      "    -o trust_suid          honour set-user-ID/set-group-ID bits of images (root only;\n"
      "                           the default is nosuid, whatever -o suid says: mount.fuse3\n"
      "                           adds suid,dev to every fstab line that lacks nosuid,nodev)\n"
      "    -o trust_dev           honour device nodes of images (root only; default nodev)\n"
      "    -o supervise           a supervisor process keeps the mount alive across a crash\n"
      "                           of the server, restarting it on the same connection\n"
      "                           (default unless -f; -o nosupervise to turn off)\n"
      "SIZE takes K, M, G suffixes (powers of 1024). See pagerfs(8).\n"
      "\n");
  fuse_cmdline_help();
  fuse_lowlevel_help();
}


Result<Config> make_config(const RawOptions& raw, const fuse_cmdline_opts& cmd) {
  Config c;
  c.store = raw.store;
  if (cmd.mountpoint == nullptr || c.store.empty()) {
    return Error(errc::invalid_argument, "usage: pagerfs STORE MOUNTPOINT [-f] [-d] [-s] [-o opt,...]");
  }
  if (!raw.takeover_mountpoint.empty()) {
    c.mountpoint = raw.takeover_mountpoint;  // resolved by the first server
  } else {
    char resolved[PATH_MAX];
    if (::realpath(cmd.mountpoint, resolved) != nullptr) {
      c.mountpoint = resolved;
      struct stat st {};
      if (::stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return Error::from_errno(ENOTDIR, std::string("mount point '") + cmd.mountpoint + "'");
      }
    } else if (errno == ENOTCONN) {
      // A mount whose daemon died is there: the daemon unmounts it before
      // mounting (clean_dead_mount), if it is a pagerfs mount. Its parent
      // names it.
      const std::filesystem::path given(cmd.mountpoint);
      const std::string parent = given.parent_path().empty() ? "." : given.parent_path().string();
      if (given.filename().empty() || ::realpath(parent.c_str(), resolved) == nullptr) {
        return Error::from_errno(ENOTCONN, std::string("mount point '") + cmd.mountpoint + "'");
      }
      c.mountpoint = (std::filesystem::path(resolved) / given.filename()).string();
    } else {
      return Error::from_errno(errno, std::string("mount point '") + cmd.mountpoint + "'");
    }
  }
  // Absolute paths: fuse_daemonize() changes the directory to / (even with -f).
  const auto absolute = [](const std::string& path) { return std::filesystem::absolute(path).lexically_normal().string(); };
  // A URL as STORE: a store with no directory here, read over HTTP (its
  // first remote; -o remote adds mirrors), showing the images -o image names.
  const bool registry = raw.store.starts_with("oci://");
  const bool remote_only = registry || raw.store.starts_with("http://") || raw.store.starts_with("https://");
  if (registry) {
    PAGERFS_TRYV(remote::RegistryLocation::parse(raw.store));
    if (!raw.remotes.empty()) return Error(errc::invalid_argument, "-o remote: a registry (oci://) has no mirrors");
    c.registry = true;
  } else if (raw.registry_credentials) {
    return Error(errc::invalid_argument, "-o registry_credentials needs an oci:// registry as STORE");
  }
  if (raw.registry_credentials) c.registry_credentials = absolute(raw.registry_credentials);
  if (remote_only) {
    c.store.clear();
    c.store_url = remote::redact_url(raw.store);
  } else {
    c.store = absolute(raw.store);
    if (!raw.images.empty()) {
      return Error(errc::invalid_argument,
                   "-o image names the images of a remote store: give its URL as STORE (" + raw.images.front() + ")");
    }
  }
  for (const std::string& text : raw.images) {
    PAGERFS_TRY(parsed, parse_image_reference(text));
    if (!parsed.digest) {
      return Error(errc::invalid_argument,
                   "-o image: '" + parsed.name + "' needs the digest that pins it: NAME@sha256:HEX");
    }
    ImageRef ref{parsed.name, *parsed.digest};
    for (const ImageRef& other : c.images) {
      if (other.name == ref.name) return Error(errc::invalid_argument, "-o image: '" + ref.name + "' is named twice");
    }
    c.images.push_back(std::move(ref));
  }
  if (raw.cache) c.cache_dir = absolute(raw.cache);
  if (raw.passthrough) {
    PAGERFS_TRY(v, size_opt("passthrough", raw.passthrough));
    if (!raw.cache) return Error(errc::invalid_argument, "-o passthrough needs -o cache=DIR (where the files go)");
    c.passthrough_budget = v;
  }
  if (raw.passthrough_small) {
    PAGERFS_TRY(v, size_opt("passthrough_small", raw.passthrough_small));
    if (!raw.passthrough) return Error(errc::invalid_argument, "-o passthrough_small needs -o passthrough=SIZE");
    c.passthrough_small = v;
  }
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
  if (raw.verify) {
    const std::string v = raw.verify;
    if (v != "sha256" && v != "xxh3") {
      return Error(errc::invalid_argument, "-o verify: '" + v + "' is not sha256 or xxh3");
    }
    c.pager.verify_sha256 = v == "sha256";
  }
  PAGERFS_TRYV(validate(c.pager));
  if (raw.remote_timeout) {
    if (raw.remotes.empty() && !remote_only) {
      return Error(errc::invalid_argument, "-o remote_timeout needs -o remote=URL or a URL as STORE");
    }
    char* end = nullptr;
    const double seconds = std::strtod(raw.remote_timeout, &end);
    if (*raw.remote_timeout == '\0' || *end != '\0' || !(seconds >= 0.1 && seconds <= 3600)) {
      return Error(errc::invalid_argument,
                   std::string("-o remote_timeout: '") + raw.remote_timeout + "' is not a number of seconds from 0.1 to 3600");
    }
    c.remote.deadline = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
    c.remote.attempt_timeout = std::min(c.remote.attempt_timeout, c.remote.deadline);
    c.remote.connect_timeout = std::min(c.remote.connect_timeout, c.remote.deadline);
  }
  if (remote_only) c.remote.urls.push_back(raw.store);
  // Over a remote a request may wait a remote_timeout for its own bytes and
  // one more behind another's: the kernel must not end the mount first.
  const bool remote = remote_only || !raw.remotes.empty();
  const auto remote_wait = std::chrono::duration_cast<std::chrono::seconds>(3 * c.remote.deadline).count();
  c.request_timeout = static_cast<uint16_t>(remote ? std::clamp<int64_t>(remote_wait, 30, 3600) : 30);
  if (raw.request_timeout) {
    char* end = nullptr;
    const unsigned long seconds = std::strtoul(raw.request_timeout, &end, 10);
    if (*raw.request_timeout == '\0' || *end != '\0' || (seconds != 0 && (seconds < 15 || seconds > 3600))) {
      return Error(errc::invalid_argument, std::string("-o request_timeout: '") + raw.request_timeout +
                                               "' is not 0 or a number of seconds from 15 to 3600");
    }
    c.request_timeout = static_cast<uint16_t>(seconds);
  }
  c.remote.urls.insert(c.remote.urls.end(), raw.remotes.begin(), raw.remotes.end());
  if (!c.remote.urls.empty() && !c.registry) {  // a registry's URL was checked above
    if (auto valid = validate(c.remote); !valid) return valid.error().with_context("-o remote");
  }
  // Profiles pay where bytes are far away: replayed by default over a remote.
  c.prefetch = c.remote.urls.empty() ? PrefetchMode::none : PrefetchMode::profile;
  if (raw.prefetch) {
    const std::string v = raw.prefetch;
    if (v == "none") {
      c.prefetch = PrefetchMode::none;
    } else if (v == "profile") {
      c.prefetch = PrefetchMode::profile;
    } else if (v == "all") {
      c.prefetch = PrefetchMode::all;
      if (c.cache_dir.empty()) {
        return Error(errc::invalid_argument, "-o prefetch=all needs -o cache=DIR (the disk the images are fetched to)");
      }
    } else {
      return Error(errc::invalid_argument, "-o prefetch: '" + v + "' is not none, profile or all");
    }
  }
  if (raw.prefetch_rate) {
    PAGERFS_TRY(v, size_opt("prefetch_rate", raw.prefetch_rate));
    c.prefetch_options.rate = v;
  }
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
  c.trust_suid = raw.trust_suid != 0;
  c.trust_dev = raw.trust_dev != 0;
  c.ignored_suid = raw.asked_suid && !raw.trust_suid;
  c.ignored_dev = raw.asked_dev && !raw.trust_dev;
  if ((c.trust_suid || c.trust_dev) && ::geteuid() != 0) {
    return Error(errc::invalid_argument, std::string("-o ") + (c.trust_suid ? "trust_suid" : "trust_dev") +
                                             " needs root (the kernel refuses it to other users)");
  }
  c.foreground = cmd.foreground != 0;
  c.supervise = raw.supervise < 0 ? !c.foreground : raw.supervise != 0;
  c.debug = cmd.debug != 0;
  if (c.debug) c.log_level = std::min(c.log_level, spdlog::level::debug);
  c.single_thread = cmd.singlethread != 0;
  c.clone_fd = cmd.clone_fd != 0;
  c.max_threads = cmd.max_threads;
  return c;
}

}  // namespace pagerfs
