// pagerfsctl: pack, inspect, verify and read pagerfs stores and blobs, and
// control mounts. This file parses the command line; each subcommand is in
// pagerfsctl_*.cc (see pagerfsctl.h), over the libraries.
//
// Exit status: 0 success; 1 failure (for verify: corruption found); 2 usage
// or I/O error. Errors are one line on stderr: "pagerfsctl: error: ...".
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "pagerfs/control/control.h"
#include "pagerfs/store/image_packer.h"
#include "pagerfs/util/units.h"
#include "tools/pagerfsctl.h"

namespace pagerfs::ctl {

void print_error(const std::string& message) {
  std::fprintf(stderr, "pagerfsctl: error: %s\n", message.c_str());
}

Result<uint64_t> size_option(const std::string& name, const std::string& text) {
  auto size = parse_size(text);
  if (!size) return size.error().with_context(name);
  return size;
}

namespace {

int main_impl(int argc, char** argv) {
  CLI::App app{"pagerfsctl: pack, inspect, verify and read pagerfs blob stores, and control mounts.\n"
               "See pagerfsctl(1) and pagerfs-store(5)."};
  app.name("pagerfsctl");
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("pagerfsctl ") + PAGERFS_VERSION);

  PackArgs pack;
  auto* pack_cmd = app.add_subcommand("pack", "Compress files or standard input into blobs in a store");
  pack_cmd->add_option("--store,-s", pack.store, "Store directory (created if missing)")->required();
  pack_cmd->add_option("--chunk-size", pack.chunk_size,
                       "Chunk size: a power of two from 4K to 4M (K/M suffixes)")
      ->capture_default_str();
  pack_cmd->add_option("--level,-l", pack.level, "zstd compression level")->capture_default_str();
  pack_cmd->add_option("--threads,-j", pack.threads, "Compression threads (0: one per core)")
      ->capture_default_str();
  pack_cmd->add_option("--image,-i", pack.image,
                       "Pack one directory tree as image NAME (replaces an image of that name)");
  pack_cmd->add_option("--pack-threshold", pack.pack_threshold,
                       "With --image: files smaller than SIZE are packed together into shared pack blobs; "
                       "0 packs none (default: " + std::to_string(kDefaultPackThreshold >> 10) + "K)");
  pack_cmd->add_option("--pack-max", pack.pack_max, "With --image: content bytes per pack blob at most")
      ->capture_default_str();
  pack_cmd->add_option("inputs", pack.inputs, "Files to pack; '-' for standard input; with --image, a directory")
      ->required();
  pack_cmd->footer("Prints 'sha256:<hex>  <input>' for each input. A blob already in the store is kept.\n"
                   "With --image, prints one summary line; files already in the store are not compressed again.");

  std::string inspect_path;
  bool inspect_json = false;
  auto* inspect_cmd = app.add_subcommand("inspect", "Show a blob's header and chunk table (no data check)");
  inspect_cmd->add_option("blob", inspect_path, "Blob file")->required();
  inspect_cmd->add_flag("--json", inspect_json, "Machine-readable output");

  std::string verify_store;
  std::vector<std::string> verify_digests;
  unsigned verify_threads = 0;
  auto* verify_cmd =
      app.add_subcommand("verify", "Check blobs completely (structure, chunks, digests) and images");
  verify_cmd->add_option("store", verify_store, "Store directory")->required();
  verify_cmd->add_option("digests", verify_digests, "Blobs to check (default: all blobs and images)");
  verify_cmd->add_option("--threads,-j", verify_threads, "Decoding threads (0: one per core)");
  verify_cmd->footer("Exit status: 0 all good; 1 corruption found; 2 usage or I/O error.");

  std::string images_store;
  std::optional<std::string> images_name;
  bool images_json = false;
  auto* images_cmd = app.add_subcommand("images", "List a store's images, or the entries of one");
  images_cmd->add_option("store", images_store, "Store directory")->required();
  images_cmd->add_option("name", images_name, "An image: list its entries");
  images_cmd->add_flag("--json", images_json, "Machine-readable output");

  ImportArgs import;
  auto* import_cmd = app.add_subcommand("import", "Import a container image (OCI layout or docker archive) as an image");
  import_cmd->add_option("--store,-s", import.store, "Store directory (created if missing)")->required();
  import_cmd->add_option("--image,-i", import.image, "Image NAME (replaces an image of that name)")->required();
  import_cmd->add_option("--chunk-size", import.chunk_size, "Decompressed bytes per chunk (K/M suffixes)")
      ->capture_default_str();
  import_cmd->add_option("--level,-l", import.level, "zstd compression level")->capture_default_str();
  import_cmd->add_option("--threads,-j", import.threads, "Compression threads (0: one per core)")
      ->capture_default_str();
  import_cmd->add_option("--pack-threshold", import.pack_threshold,
                         "Files smaller than SIZE are packed together into shared pack blobs; 0 packs none "
                         "(default: " + std::to_string(kDefaultPackThreshold >> 10) + "K)");
  import_cmd->add_option("--pack-max", import.pack_max, "Content bytes per pack blob at most")
      ->capture_default_str();
  import_cmd->add_option("source", import.source, "oci:DIR[:TAG] or docker-archive:FILE[:REF]")->required();
  import_cmd->footer("Applies the layers in order (whiteouts, opaque directories, hard links) and keeps the image\n"
                     "config beside the image (STORE/configs/NAME). Prints one summary line. On any error the\n"
                     "store is unchanged. See pagerfsctl(1) for what is verified for each source.");

  BundleArgs bundle;
  auto* bundle_cmd =
      app.add_subcommand("bundle", "Write an OCI runtime bundle (config.json) that runs an image with crun or runc");
  bundle_cmd->add_option("--store,-s", bundle.store, "Store directory (for the image config)")->required();
  bundle_cmd->add_option("--image,-i", bundle.image, "Image NAME")->required();
  bundle_cmd->add_option("--mount,-m", bundle.mount, "Where the store is mounted: the root is MOUNT/images/NAME");
  bundle_cmd->add_option("--rootfs", bundle.rootfs, "The root is this directory instead (an overlay over the image)");
  bundle_cmd->add_flag("--writable", bundle.writable, "The root is writable (give --rootfs over an overlay)");
  bundle_cmd->add_flag("--terminal,-t", bundle.terminal, "Give the process a terminal");
  bundle_cmd->add_option("--user,-u", bundle.user,
                         "Run as USER[:GROUP] (names or ids, resolved in the image) instead of the image's User");
  bundle_cmd->add_option("--hostname", bundle.hostname, "The container's host name (default: container)");
  bundle_cmd->add_option("dir", bundle.dir, "Bundle directory (created if missing; config.json replaced)")
      ->required();
  bundle_cmd->add_option("command", bundle.command, "After '--': the command, replacing the image's Cmd");
  bundle_cmd->footer("Then: runc run -b DIR ID, or crun run -b DIR ID. The process is the image config's\n"
                     "(Entrypoint + Cmd, Env, WorkingDir, User resolved in the image's /etc/passwd); see pagerfsctl(1).");

  std::string cat_path;
  std::string cat_offset = "0";
  std::optional<std::string> cat_length;
  unsigned cat_threads = 0;
  auto* cat_cmd = app.add_subcommand("cat", "Write a blob's decompressed bytes to standard output");
  cat_cmd->add_option("blob", cat_path, "Blob file")->required();
  cat_cmd->add_option("--offset", cat_offset, "First byte (K/M/G suffixes)");
  cat_cmd->add_option("--length", cat_length, "Bytes to write (default: to the end)");
  cat_cmd->add_option("--threads,-j", cat_threads, "Decoding threads (0: one per core)");

  PushArgs push;
  auto* push_cmd = app.add_subcommand("push", "Publish images of a store to an OCI registry (tagged with their names)");
  push_cmd->add_option("store", push.store, "Store directory")->required();
  push_cmd->add_option("destination", push.destination, "oci://HOST[:PORT]/REPOSITORY")->required();
  push_cmd->add_option("images", push.images, "Images to push (default: every image of the store)");
  push_cmd->add_option("--credentials", push.credentials,
                       "File with one line USER:PASSWORD, not readable by group or others "
                       "(default: $PAGERFS_REGISTRY_AUTH, if set)");
  push_cmd->add_flag("--plain-http", push.plain_http,
                     "Talk http, not https, to a registry that is not on loopback (trusted networks only)");
  push_cmd->add_option("--threads,-j", push.threads, "Decoding threads for verifying the blobs (0: one per core)");
  push_cmd->footer("Verifies every blob first, uploads the blobs the registry lacks, then the tag. Prints\n"
                   "'pushed NAME sha256:<hex>' per image: pin the image as NAME@sha256:<hex>. See pagerfsctl(1).");

  PullArgs pull;
  auto* pull_cmd = app.add_subcommand("pull", "Fetch an image from an OCI registry or a published store, verified");
  pull_cmd->add_option("source", pull.source, "oci://HOST[:PORT]/REPOSITORY, or the http(s):// URL of a published store")
      ->required();
  pull_cmd->add_option("image", pull.image, "NAME, or NAME@sha256:<hex> to accept only that exact image")->required();
  pull_cmd->add_option("store", pull.store, "Store directory (created if missing)")->required();
  pull_cmd->add_option("--credentials", pull.credentials,
                       "File with one line USER:PASSWORD, not readable by group or others "
                       "(default: $PAGERFS_REGISTRY_AUTH, if set)");
  pull_cmd->add_flag("--plain-http", pull.plain_http,
                     "Talk http, not https, to a registry that is not on loopback (trusted networks only)");
  pull_cmd->add_option("--parallel", pull.parallel, "Blobs downloaded at once")->check(CLI::Range(1u, 64u))
      ->capture_default_str();
  pull_cmd->footer("Every blob is verified whole before it enters the store; the image is written last.\n"
                   "Prints 'pulled NAME sha256:<hex>'; without @sha256 it warns that the image was trusted on\n"
                   "first use. Exit status: 0 pulled; 1 failed (nothing of the image written); 2 usage error.");

  // stats, dump, drop-caches: MOUNTPOINT, or --control SOCKET; prewarm: MOUNTPOINT (to resolve FILEs).
  ControlTarget target;
  const char* control_help = "Talk to this control socket (owned by you or root) instead of the one the mount names";
  bool stats_json = false;
  auto* stats_cmd = app.add_subcommand("stats", "Show a mount's counters (pager, layers, FUSE operations)");
  stats_cmd->add_option("mountpoint", target.mountpoint, "Where the store is mounted");
  stats_cmd->add_option("--control", target.socket, control_help);
  stats_cmd->add_flag("--json", stats_json, "Machine-readable output");
  auto* dump_cmd = app.add_subcommand("dump", "Show a mount's state: requests in flight, open blobs");
  dump_cmd->add_option("mountpoint", target.mountpoint, "Where the store is mounted");
  dump_cmd->add_option("--control", target.socket, control_help);
  std::vector<std::string> prewarm_items;
  auto* prewarm_cmd = app.add_subcommand("prewarm", "Fetch and decode files ahead of need");
  prewarm_cmd->add_option("mountpoint", target.mountpoint, "Where the store is mounted")->required();
  prewarm_cmd->add_option("files", prewarm_items,
                          "FILE or FILE:OFFSET:LENGTH, FILE under the mount point or relative to it")
      ->required();
  prewarm_cmd->add_option("--control", target.socket, control_help);
  prewarm_cmd->footer("Waits as long as the daemon works (no time limit); other control commands give up after " +
                      std::to_string(control::kClientTimeout.count()) + " s.");
  auto* drop_cmd = app.add_subcommand("drop-caches", "Empty a mount's chunk cache and cache layers");
  drop_cmd->add_option("mountpoint", target.mountpoint, "Where the store is mounted");
  drop_cmd->add_option("--control", target.socket, control_help);
  std::string record_image, record_output;
  std::vector<std::string> record_command;
  auto* record_cmd = app.add_subcommand("record", "Record which parts of an image a command reads: a prefetch profile");
  record_cmd->add_option("mountpoint", target.mountpoint, "Where the store is mounted")->required();
  record_cmd->add_option("image", record_image, "The image the profile is for")->required();
  record_cmd->add_option("command", record_command, "The command to run (after --), e.g. a container start")
      ->required();
  record_cmd->add_option("--output,-o", record_output,
                         "Write the profile to this file (default: into the mount's store, as the image's profile)");
  record_cmd->add_option("--control", target.socket, control_help);
  record_cmd->footer("Record on a fresh mount: what the page cache already holds is not read again, and is left out. "
                     "Exits with the command's status.");
  std::string upgrade_binary;
  auto* upgrade_cmd = app.add_subcommand("upgrade", "Replace a mount's server by a new one, with no reader seeing an error");
  upgrade_cmd->add_option("mountpoint", target.mountpoint, "Where the store is mounted (a supervised mount)")->required();
  upgrade_cmd->add_option("--binary", upgrade_binary, "The new pagerfs (absolute path; default: the installed one)");
  upgrade_cmd->add_option("--control", target.socket, control_help);
  upgrade_cmd->footer("The new server starts and gets ready while the old one serves; then the old one stops reading\n"
                      "requests, answers those it has and exits, and the new one takes the connection over.\n"
                      "Prints 'upgraded: server pid PID (generation N)'. Exit status: 0 upgraded; 1 failed (the old\n"
                      "server goes on); 2 usage error.");
  for (CLI::App* cmd : {stats_cmd, dump_cmd, prewarm_cmd, drop_cmd}) {
    cmd->add_option("--timeout", target.timeout_s,
                    "Seconds to wait for the answer (0: no limit; default 30, prewarm: no limit)")
        ->check(CLI::Range(0.0, 1e6));
  }

  // A usage error is one line, and says where the usage is.
  auto usage_error = [&app](const std::string& message) {
    std::string help = "pagerfsctl --help";
    for (const CLI::App* sub : app.get_subcommands()) help = "pagerfsctl " + sub->get_name() + " --help";
    print_error(message + " (see '" + help + "')");
    return kExitUsage;
  };
  // The first operand names the command (the top level has only flags);
  // CLI11 would report an unknown one as a missing subcommand.
  if (argc > 1 && argv[1][0] != '-') {
    const std::string command = argv[1];
    const auto known = app.get_subcommands([&](CLI::App* sub) { return sub->check_name(command); });
    if (known.empty()) return usage_error("unknown command '" + command + "'");
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(e.what());
  }

  if (pack_cmd->parsed()) return run_pack(pack);
  if (import_cmd->parsed()) return run_import(import);
  if (bundle_cmd->parsed()) return run_bundle(bundle);
  if (inspect_cmd->parsed()) return run_inspect(inspect_path, inspect_json);
  if (verify_cmd->parsed()) return run_verify(verify_store, verify_digests, verify_threads);
  if (images_cmd->parsed()) return run_images(images_store, images_name, images_json);
  if (cat_cmd->parsed()) return run_cat(cat_path, cat_offset, cat_length, cat_threads);
  if (push_cmd->parsed()) return run_push(push);
  if (pull_cmd->parsed()) return run_pull(pull);
  if ((stats_cmd->parsed() || dump_cmd->parsed() || drop_cmd->parsed()) &&
      target.mountpoint.empty() == target.socket.empty()) {
    print_error("give a MOUNTPOINT or --control SOCKET (one of them)");
    std::fprintf(stderr, "Run 'pagerfsctl --help' for usage.\n");
    return kExitUsage;
  }
  if (stats_cmd->parsed()) return run_stats(target, stats_json);
  if (dump_cmd->parsed()) return run_control(target, control::make_request("dump"));
  if (drop_cmd->parsed()) return run_control(target, control::make_request("drop-caches"));
  if (prewarm_cmd->parsed()) return run_prewarm(target, prewarm_items);
  if (upgrade_cmd->parsed()) return run_upgrade(target, upgrade_binary);
  if (record_cmd->parsed()) return run_record(target, record_image, record_output, record_command);
  return kExitUsage;
}
}  // namespace
}  // namespace pagerfs::ctl

int main(int argc, char** argv) {
  try {
    return pagerfs::ctl::main_impl(argc, argv);
  } catch (const std::exception& e) {
    pagerfs::ctl::print_error(e.what());
    return 1;
  }
}
