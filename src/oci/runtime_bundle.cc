#include "pagerfs/oci/runtime_bundle.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "oci/json_fields.h"
#include "pagerfs/util/file.h"
#include "util/posix_io.h"
#include "util/quoted.h"
#include "util/unique_fd.h"

namespace pagerfs::oci {
namespace {

// /etc/passwd and /etc/group of an image are read whole; real ones are a few KiB.
constexpr uint64_t kMaxAccountFileBytes = 4 << 20;
constexpr const char* kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const char* const kConfigFile = "the image config";

// Docker's default capability set: what images expect of uid 0.
const char* const kDefaultCapabilities[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE",
};

// Paths of /proc and /sys a container must not see or change (runc spec's).
const char* const kMaskedPaths[] = {
    "/proc/acpi",          "/proc/asound",     "/proc/kcore",       "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/sys/firmware",       "/proc/scsi",
};
const char* const kReadonlyPaths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

// Opens `rel` under the tree `root_fd` with every symlink resolved as if
// `root_fd` were "/": nothing outside the image is reached.
Result<UniqueFd> open_in_root(int root_fd, const std::string& rel, int flags, uint64_t resolve) {
  open_how how{};
  // O_PATH takes no other flag but O_DIRECTORY and O_CLOEXEC.
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC | ((flags & O_PATH) != 0 ? 0 : O_NOCTTY));
  how.resolve = resolve | RESOLVE_NO_MAGICLINKS;
  UniqueFd fd(static_cast<int>(::syscall(SYS_openat2, root_fd, rel.c_str(), &how, sizeof how)));
  if (!fd) return Error::from_errno(errno, "the image's /" + rel);
  return fd;
}

// The whole of /etc/passwd or /etc/group of the image; nullopt if it has none.
Result<std::optional<std::string>> read_account_file(int root_fd, const std::string& rel) {
  auto fd = open_in_root(root_fd, rel, O_RDONLY | O_NONBLOCK, RESOLVE_IN_ROOT);
  if (!fd) {
    if (fd.error().code() == std::errc::no_such_file_or_directory)
      return std::optional<std::string>();
    return fd.error();
  }
  struct stat st {};
  if (::fstat(fd.value().get(), &st) != 0) return Error::from_errno(errno, "the image's /" + rel);
  if (!S_ISREG(st.st_mode))
    return Error(errc::invalid_argument, "the image's /" + rel + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxAccountFileBytes) {
    return Error(errc::invalid_argument, "the image's /" + rel + " is larger than 4 MiB");
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  PAGERFS_TRY(n, pread_some(fd.value().get(), std::as_writable_bytes(std::span(text)), 0,
                            "the image's /" + rel));
  text.resize(n);
  return std::optional<std::string>(std::move(text));
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> out;
  for (size_t start = 0;;) {
    const size_t end = text.find(separator, start);
    out.push_back(text.substr(start, end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

std::optional<uint32_t> parse_id(std::string_view text) {
  uint32_t id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return id;
}

// The fields of the line of an account file whose field 0 (by name) or
// field 2 (by id) is `key`; nullopt if none.
std::optional<std::vector<std::string_view>> find_account(std::string_view file,
                                                          std::string_view key, bool by_id,
                                                          size_t min_fields) {
  for (std::string_view line : split(file, '\n')) {
    const auto fields = split(line, ':');
    if (fields.size() < min_fields) continue;
    if ((by_id ? fields[2] : fields[0]) == key) return fields;
  }
  return std::nullopt;
}

Error user_error(const std::string& user, const std::string& what) {
  return Error(errc::invalid_argument, "the image's user '" + user.substr(0, 80) + "': " + what);
}

// Every member of `json` (an array) as a string.
Result<std::vector<std::string>> strings_of(const Json& array, const std::string& what) {
  std::vector<std::string> out;
  for (size_t i = 0; i < array.size(); ++i) {
    if (!array[i].is_string()) {
      return Error(errc::corrupt_blob, std::string(kConfigFile) + ": " + what + "[" +
                                           std::to_string(i) + "] is not a string");
    }
    out.push_back(array[i].get<std::string>());
  }
  return out;
}

// The optional array of strings `key` of `object`.
Result<std::vector<std::string>> string_array(const Json& object, std::string_view key) {
  PAGERFS_TRY(array,
              member(object, key, Json::value_t::array, kConfigFile, "config", /*optional=*/true));
  if (array == nullptr) return std::vector<std::string>();
  return strings_of(*array, "config." + std::string(key));
}

Result<std::string> optional_string(const Json& object, std::string_view key,
                                    const std::string& what) {
  PAGERFS_TRY(value,
              member(object, key, Json::value_t::string, kConfigFile, what, /*optional=*/true));
  return value == nullptr ? std::string() : value->get<std::string>();
}

// What the image config says of the process (its "config" member).
struct ImageProcess {
  std::string user;
  std::vector<std::string> env, entrypoint, cmd;
  std::string working_dir;
  Json annotations = Json::object();
};

Result<ImageProcess> parse_image_process(std::span<const std::byte> bytes) {
  PAGERFS_TRY(json, parse_json(bytes, kConfigFile));
  ImageProcess p;
  for (const char* key : {"os", "architecture", "author", "created"}) {
    PAGERFS_TRY(value, optional_string(json, key, "the config"));
    if (!value.empty()) p.annotations[std::string("org.opencontainers.image.") + key] = value;
  }
  PAGERFS_TRY(config, member(json, "config", Json::value_t::object, kConfigFile, "the config",
                             /*optional=*/true));
  if (config == nullptr) return p;
  PAGERFS_TRY(user, optional_string(*config, "User", "config"));
  PAGERFS_TRY(env, string_array(*config, "Env"));
  PAGERFS_TRY(entrypoint, string_array(*config, "Entrypoint"));
  PAGERFS_TRY(cmd, string_array(*config, "Cmd"));
  PAGERFS_TRY(working_dir, optional_string(*config, "WorkingDir", "config"));
  PAGERFS_TRY(stop_signal, optional_string(*config, "StopSignal", "config"));
  p.user = std::move(user);
  p.env = std::move(env);
  p.entrypoint = std::move(entrypoint);
  p.cmd = std::move(cmd);
  p.working_dir = std::move(working_dir);
  if (!stop_signal.empty()) p.annotations["org.opencontainers.image.stopSignal"] = stop_signal;
  PAGERFS_TRY(labels, member(*config, "Labels", Json::value_t::object, kConfigFile, "config",
                             /*optional=*/true));
  if (labels != nullptr) {
    for (const auto& [key, value] : labels->items()) {
      if (!value.is_string()) {
        return Error(errc::corrupt_blob,
                     std::string(kConfigFile) + ": config.Labels." + key + " is not a string");
      }
      p.annotations[key] = value;
    }
  }
  return p;
}

// A directory the runtime needs in a read-only root (it cannot create one).
Result<void> require_directory(int root_fd, const std::string& path, const std::string& why) {
  const std::string rel = path == "/" ? "." : path.substr(path.find_first_not_of('/'));
  auto fd = open_in_root(root_fd, rel, O_PATH | O_DIRECTORY, RESOLVE_IN_ROOT);
  if (fd) return ok();
  const std::error_code code = fd.error().code();
  if (code != std::errc::no_such_file_or_directory && code != std::errc::not_a_directory)
    return fd.error();
  return Error(errc::invalid_argument,
               "the image has no directory " + path + " (" + why +
                   "), and a read-only root cannot get one: use a writable root "
                   "(--rootfs over an overlay, --writable)");
}

Json mount(const char* destination, const char* type, const char* source,
           std::vector<std::string> options) {
  return Json{{"destination", destination},
              {"type", type},
              {"source", source},
              {"options", std::move(options)}};
}

std::string hostname_for(const std::string& wanted) {
  return wanted.empty() ? std::string("container") : wanted;
}

}  // namespace

Result<ProcessUser> resolve_user(int rootfs_fd, const std::string& user) {
  ProcessUser out;
  if (user.empty()) return out;
  const size_t colon = user.find(':');
  const std::string name = user.substr(0, colon);
  const std::optional<std::string> group = colon == std::string::npos
                                               ? std::nullopt
                                               : std::optional<std::string>(user.substr(colon + 1));
  if (name.empty() || (group && group->empty()))
    return user_error(user, "malformed (want USER[:GROUP])");

  PAGERFS_TRY(passwd, read_account_file(rootfs_fd, "etc/passwd"));
  const std::optional<uint32_t> uid = parse_id(name);
  std::optional<std::vector<std::string_view>> account;
  if (passwd) account = find_account(*passwd, name, /*by_id=*/uid.has_value(), 7);
  std::string account_name;
  if (account) {
    const auto account_uid = parse_id((*account)[2]);
    const auto account_gid = parse_id((*account)[3]);
    if (!account_uid || !account_gid)
      return user_error(user, "malformed line in the image's /etc/passwd");
    out.uid = *account_uid;
    out.gid = *account_gid;
    account_name = std::string((*account)[0]);
  } else if (uid) {
    out.uid = *uid;  // a numeric user needs no account; its group is 0 unless given
  } else {
    return user_error(user,
                      passwd ? "not in the image's /etc/passwd" : "the image has no /etc/passwd");
  }

  PAGERFS_TRY(groups, read_account_file(rootfs_fd, "etc/group"));
  if (group) {
    if (const auto gid = parse_id(*group)) {
      out.gid = *gid;
    } else {
      const auto entry = groups ? find_account(*groups, *group, /*by_id=*/false, 3) : std::nullopt;
      const auto named = entry ? parse_id((*entry)[2]) : std::nullopt;
      if (!named)
        return user_error(user,
                          "group '" + group->substr(0, 80) + "' is not in the image's /etc/group");
      out.gid = *named;
    }
  }
  // The groups that list the user as a member, as login(1) would give them.
  if (groups && !account_name.empty()) {
    for (std::string_view line : split(*groups, '\n')) {
      const auto fields = split(line, ':');
      if (fields.size() < 4) continue;
      const auto gid = parse_id(fields[2]);
      if (!gid || *gid == out.gid) continue;
      for (std::string_view member : split(fields[3], ',')) {
        if (member == account_name) {
          out.additional_gids.push_back(*gid);
          break;
        }
      }
    }
  }
  return out;
}

Result<nlohmann::json> runtime_config(const std::optional<std::vector<std::byte>>& image_config,
                                      const BundleOptions& options) {
  if (options.rootfs.empty() || options.rootfs.front() != '/') {
    return Error(errc::invalid_argument,
                 "the root " + pagerfs::quoted(options.rootfs) + " is not an absolute path");
  }
  ImageProcess image;
  if (image_config) {
    PAGERFS_TRY(parsed, parse_image_process(*image_config));
    image = std::move(parsed);
  }
  std::vector<std::string> args = image.entrypoint;
  const std::vector<std::string>& cmd = options.args.empty() ? image.cmd : options.args;
  args.insert(args.end(), cmd.begin(), cmd.end());
  if (args.empty()) {
    return Error(errc::invalid_argument,
                 image_config ? "the image config has no Entrypoint or Cmd: give a command"
                              : "the image has no config (it was packed, not imported): "
                                "give a command");
  }
  const std::string cwd = image.working_dir.empty() ? "/" : image.working_dir;
  if (cwd.front() != '/') {
    return Error(errc::corrupt_blob, std::string(kConfigFile) + ": config.WorkingDir '" +
                                         cwd.substr(0, 80) + "' is not absolute");
  }

  UniqueFd root(::open(options.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Error::from_errno(errno, "the root " + pagerfs::quoted(options.rootfs));
  PAGERFS_TRY(user, resolve_user(root.get(), options.user.value_or(image.user)));
  if (!options.writable) {
    for (const char* dir : {"/proc", "/dev", "/sys"}) {
      PAGERFS_TRYV(require_directory(root.get(), dir, "the runtime mounts over it"));
    }
    PAGERFS_TRYV(require_directory(root.get(), cwd, "the working directory"));
  }

  std::vector<std::string> env = image.env;
  bool has_path = false;
  for (const std::string& e : env) has_path = has_path || e.starts_with("PATH=");
  if (!has_path) env.insert(env.begin(), kDefaultPath);

  Json capabilities = Json::object();
  const std::vector<std::string> all(std::begin(kDefaultCapabilities),
                                     std::end(kDefaultCapabilities));
  capabilities["bounding"] = all;
  // Only root keeps them in effect; another user starts with none, as in docker.
  capabilities["effective"] = user.uid == 0 ? all : std::vector<std::string>();
  capabilities["permitted"] = user.uid == 0 ? all : std::vector<std::string>();

  Json process = {
      {"terminal", options.terminal},
      {"user", {{"uid", user.uid}, {"gid", user.gid}}},
      {"args", args},
      {"env", env},
      {"cwd", cwd},
      {"capabilities", capabilities},
      {"rlimits", Json::array({{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}})},
      // The mount is nosuid anyway; this also stops file capabilities.
      {"noNewPrivileges", true},
  };
  if (!user.additional_gids.empty()) process["user"]["additionalGids"] = user.additional_gids;

  Json mounts = Json::array({
      mount("/proc", "proc", "proc", {}),
      mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
  });
  Json namespaces = Json::array();
  for (const char* ns : {"pid", "network", "ipc", "uts", "mount"})
    namespaces.push_back({{"type", ns}});

  Json config = {
      {"ociVersion", "1.0.2"},
      {"process", process},
      {"root", {{"path", options.rootfs}, {"readonly", !options.writable}}},
      {"hostname", hostname_for(options.hostname)},
      {"mounts", mounts},
      {"linux",
       {{"resources", {{"devices", Json::array({{{"allow", false}, {"access", "rwm"}}})}}},
        {"namespaces", namespaces},
        {"maskedPaths", std::vector<std::string>(std::begin(kMaskedPaths), std::end(kMaskedPaths))},
        {"readonlyPaths",
         std::vector<std::string>(std::begin(kReadonlyPaths), std::end(kReadonlyPaths))}}},
  };
  if (!image.annotations.empty()) config["annotations"] = image.annotations;
  return config;
}

Result<void> write_bundle(const std::string& dir, const nlohmann::json& config) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return Error::from_errno(errno, "bundle " + pagerfs::quoted(dir));
  const std::string final_path = dir + "/config.json";
  std::string temp = dir + "/.config.json.XXXXXX";
  UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "bundle " + pagerfs::quoted(dir));
  const std::string text = config.dump(2) + "\n";
  auto written = [&]() -> Result<void> {
    PAGERFS_TRYV(pwrite_all(fd.get(), bytes_of(text), 0, temp));
    if (::fchmod(fd.get(), 0644) != 0 || ::fsync(fd.get()) != 0)
      return Error::from_errno(errno, temp);
    if (::rename(temp.c_str(), final_path.c_str()) != 0)
      return Error::from_errno(errno, final_path);
    return ok();
  }();
  if (!written) ::unlink(temp.c_str());
  return written;
}

}  // namespace pagerfs::oci
