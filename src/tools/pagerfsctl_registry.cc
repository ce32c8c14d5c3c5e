// pagerfsctl push and pull: images to and from an OCI registry, and pulled
// from a store published over http(s). The work is in remote/image_push.h
// and remote/image_pull.h; this file checks the arguments and reports.
#include <cstdio>
#include <string>

#include "remote/image_pull.h"
#include "remote/image_push.h"
#include "remote/registry_client.h"
#include "tools/pagerfsctl.h"
#include "tools/progress_line.h"
#include "util/mutex.h"

namespace pagerfs::ctl {

int run_push(const PushArgs& args) {
  auto location = remote::RegistryLocation::parse(args.destination, args.plain_http);
  if (!location) return print_error(location.error().message()), kExitUsage;
  auto credentials = remote::load_credentials(args.credentials);
  if (!credentials) return print_error(credentials.error().message()), kExitUsage;
  auto store = Store::open(args.store);
  if (!store) return print_error(store.error().message()), kExitUsage;

  std::vector<std::string> names = args.images;
  if (names.empty()) {
    auto all = store.value().list_images();
    if (!all) return print_error(all.error().message()), kExitFailure;
    names = std::move(all).value();
    if (names.empty()) return print_error("store '" + args.store + "' has no images to push"), kExitFailure;
  }
  // Every name first: a name that cannot be a tag fails before any upload.
  for (const std::string& name : names) {
    if (!remote::is_valid_tag(name)) {
      return print_error("image '" + name + "' cannot be pushed: a registry tag is [A-Za-z0-9_][A-Za-z0-9._-]{0,127}"),
             kExitUsage;
    }
  }

  remote::RegistryClient client(location.value(), std::move(credentials).value(),
                                remote::RegistryOptions{.plain_http = args.plain_http});
  for (const std::string& name : names) {
    ProgressLine progress("push " + name, std::nullopt);
    remote::PushOptions options{.verify_threads = args.threads,
                                .progress = [&](uint64_t done, uint64_t) { progress.update(done); }};
    auto pushed = remote::push_image(store.value(), client, name, options);
    if (!pushed) return print_error(pushed.error().message()), kExitFailure;
    const remote::PushResult& r = pushed.value();
    std::printf("pushed %s %s\n", name.c_str(), r.digest.str().c_str());
    std::fflush(stdout);
    std::fprintf(stderr, "pagerfsctl: %s: %zu blob(s) uploaded (%s), %zu already in %s\n", name.c_str(), r.uploaded,
                 format_size(r.bytes).c_str(), r.present, location.value().str().c_str());
  }
  return kExitOk;
}

int run_pull(const PullArgs& args) {
  auto ref = remote::parse_image_reference(args.image);
  if (!ref) return print_error(ref.error().message()), kExitUsage;
  std::unique_ptr<remote::PullSource> source;
  std::optional<remote::RegistryClient> client;
  if (args.source.starts_with("oci://")) {
    auto location = remote::RegistryLocation::parse(args.source, args.plain_http);
    if (!location) return print_error(location.error().message()), kExitUsage;
    if (!remote::is_valid_tag(ref.value().name)) {
      return print_error("image '" + ref.value().name + "': a registry tag is [A-Za-z0-9_][A-Za-z0-9._-]{0,127}"),
             kExitUsage;
    }
    auto credentials = remote::load_credentials(args.credentials);
    if (!credentials) return print_error(credentials.error().message()), kExitUsage;
    client.emplace(location.value(), std::move(credentials).value(),
                   remote::RegistryOptions{.plain_http = args.plain_http});
    source = remote::registry_pull_source(*client);
  } else if (args.source.starts_with("http://") || args.source.starts_with("https://")) {
    if (args.credentials) return print_error("--credentials is for oci:// sources (put USER:PASS@ in the URL)"), kExitUsage;
    source = remote::http_pull_source(args.source);
  } else {
    return print_error("'" + args.source + "': a source is oci://HOST[:PORT]/REPOSITORY or an http(s):// URL"),
           kExitUsage;
  }
  auto store = Store::create(args.store);
  if (!store) return print_error(store.error().message()), kExitUsage;

  ProgressLine progress("pull " + ref.value().name, std::nullopt);
  Mutex progress_mu;
  remote::PullOptions options{.parallel = args.parallel, .progress = [&](uint64_t bytes) {
                                MutexLock lock(progress_mu);
                                progress.update(bytes);
                              }};
  auto pulled = remote::pull_image(store.value(), *source, ref.value(), options);
  if (!pulled) return print_error(pulled.error().message()), kExitFailure;
  const remote::PullResult& r = pulled.value();
  if (!r.profile_warning.empty()) {
    std::fprintf(stderr, "pagerfsctl: warning: image %s: prefetch profile left out: %s\n", ref.value().name.c_str(),
                 r.profile_warning.c_str());
  }
  if (!ref.value().digest) {
    std::fprintf(stderr,
                 "pagerfsctl: warning: image %s was trusted on first use (no @sha256 digest given); "
                 "pin it as %s@%s\n",
                 ref.value().name.c_str(), ref.value().name.c_str(), r.digest.str().c_str());
  }
  std::printf("pulled %s %s\n", ref.value().name.c_str(), r.digest.str().c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "pagerfsctl: %s: %zu blob(s) downloaded (%s), %zu already in the store\n",
               ref.value().name.c_str(), r.downloaded, format_size(r.bytes).c_str(), r.present);
  return kExitOk;
}

}  // namespace pagerfs::ctl
