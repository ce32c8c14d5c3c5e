// pagerfsctl bundle: an OCI runtime bundle (config.json) that starts an
// image of a store, from a pagerfs mount or an overlay over it.
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "pagerfs/oci/runtime_bundle.h"
#include "pagerfs/store/image_manifest.h"
#include "pagerfs/store/store.h"
#include "tools/pagerfsctl.h"

namespace pagerfs::ctl {
namespace {

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    const bool octal = field[i] == '\\' && i + 3 < field.size() &&
                       field.find_first_not_of("01234567", i + 1) >= i + 4;
    if (octal) {
      out.push_back(static_cast<char>(std::stoi(field.substr(i + 1, 3), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(field[i]);
    }
  }
  return out;
}

// Whether the FUSE mount at `mountpoint` lets users other than its owner in
// (-o allow_other); nullopt if it is not a mount point.
std::optional<bool> mount_allows_others(const std::string& mountpoint) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, point;
    fields >> id >> parent >> devno >> root >> point;
    if (unescape_mountinfo(point) != mountpoint) continue;
    const size_t dash = line.find(" - ");
    return dash != std::string::npos && line.find("allow_other", dash) != std::string::npos;
  }
  return std::nullopt;
}

std::string absolute_path(const std::string& path) {
  return std::filesystem::absolute(path).lexically_normal().string();
}

}  // namespace

int run_bundle(const BundleArgs& args) {
  if (auto valid = image::validate_image_name(args.image); !valid) {
    return print_error(valid.error().with_context("--image").message()), kExitUsage;
  }
  if (args.mount.empty() == args.rootfs.empty()) {
    return print_error("give --mount MOUNTPOINT or --rootfs DIR (one of them)"), kExitUsage;
  }
  if (!args.rootfs.empty() && !args.writable) {
    // A root of the caller's own is usually an overlay; say what is assumed.
    std::fprintf(stderr,
                 "pagerfsctl: note: --rootfs without --writable: the root is mounted read-only\n");
  }
  auto store = Store::open(args.store);
  if (!store) return print_error(store.error().message()), kExitFailure;
  struct stat st {};
  if (::stat(store.value().image_path(args.image).c_str(), &st) != 0) {
    return print_error("store " + args.store + " has no image '" + args.image + "'"), kExitFailure;
  }
  std::optional<std::vector<std::byte>> image_config;
  if (auto config = store.value().load_image_config(args.image)) {
    image_config = std::move(config).value();
  } else if (config.error().code() != std::errc::no_such_file_or_directory) {
    return print_error(config.error().message()), kExitFailure;
  }

  oci::BundleOptions options;
  const std::string mountpoint = args.mount.empty() ? std::string() : absolute_path(args.mount);
  options.rootfs =
      args.rootfs.empty() ? mountpoint + "/images/" + args.image : absolute_path(args.rootfs);
  options.writable = args.writable;
  options.args = args.command;
  options.terminal = args.terminal;
  options.user = args.user;
  options.hostname = args.hostname;
  auto config = oci::runtime_config(image_config, options);
  if (!config) return print_error(config.error().message()), kExitFailure;
  const uint32_t uid = config.value()["process"]["user"]["uid"].get<uint32_t>();
  if (!mountpoint.empty() && uid != 0 && mount_allows_others(mountpoint) == false) {
    std::fprintf(stderr,
                 "pagerfsctl: warning: the container runs as uid %u, but %s was mounted without -o "
                 "allow_other: "
                 "it will not be able to read its files\n",
                 uid, mountpoint.c_str());
  }
  if (auto written = oci::write_bundle(args.dir, config.value()); !written) {
    return print_error(written.error().message()), kExitFailure;
  }
  const auto& process = config.value()["process"];
  std::string command;
  for (const auto& arg : process["args"])
    command += (command.empty() ? "" : " ") + arg.get<std::string>();
  std::printf("%s/config.json: image %s, root %s (%s), user %u:%u, cwd %s, command: %s\n",
              args.dir.c_str(), args.image.c_str(), options.rootfs.c_str(),
              args.writable ? "writable" : "read-only", uid, process["user"]["gid"].get<uint32_t>(),
              process["cwd"].get<std::string>().c_str(), command.c_str());
  return kExitOk;
}

}  // namespace pagerfs::ctl
