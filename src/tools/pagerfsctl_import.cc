// pagerfsctl import: a container image (OCI layout, docker archive) as an
// image of a store.
#include <chrono>
#include <cstdio>
#include <string>

#include "pagerfs/oci/image_source.h"
#include "pagerfs/oci/importer.h"
#include "pagerfs/store/image_manifest.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/units.h"
#include "tools/pagerfsctl.h"
#include "tools/progress_line.h"

namespace pagerfs::ctl {

int run_import(const ImportArgs& args) {
  if (auto valid = image::validate_image_name(args.image); !valid) {
    return print_error(valid.error().with_context("--image").message()), kExitUsage;
  }
  auto blob = blob_options(args.chunk_size, args.level, args.threads);
  if (!blob) return print_error(blob.error().message()), kExitUsage;
  auto sizes = pack_sizes(args.pack_threshold, args.pack_max);
  if (!sizes) return print_error(sizes.error().message()), kExitUsage;
  oci::ImportOptions options;
  options.blob = blob.value();
  options.pack_threshold = sizes.value().threshold;
  options.pack_max = sizes.value().max;

  auto source = oci::open_image_source(args.source);
  if (!source) {
    const bool usage = source.error().code() == make_error_code(errc::invalid_argument) &&
                       !args.source.starts_with("oci:") && !args.source.starts_with("docker-archive:");
    return print_error(source.error().message()), usage ? kExitUsage : kExitFailure;
  }
  auto store = Store::create(args.store);
  if (!store) return print_error(store.error().message()), kExitFailure;
  warn_if_loose(store.value());

  ProgressLine progress("importing " + args.source, std::nullopt);
  size_t shown_layer = 0;
  options.on_progress = [&](const oci::ImportProgress& p) {
    if (p.layer != shown_layer) {
      shown_layer = p.layer;
      progress.relabel("importing layer " + std::to_string(p.layer + 1) + "/" + std::to_string(p.layers));
    }
    progress.update(p.raw_bytes);
  };
  const auto start = std::chrono::steady_clock::now();
  auto imported = oci::import_image(store.value(), args.image, source.value(), options);
  if (!imported) return print_error(imported.error().message()), kExitFailure;
  const oci::ImportResult& r = imported.value();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("image %s: %llu layers, %llu entries, %llu files (%s), %llu new blob(s) (%llu pack(s)), "
              "manifest %s, %.1f s\n",
              args.image.c_str(), static_cast<unsigned long long>(r.layers),
              static_cast<unsigned long long>(r.entries), static_cast<unsigned long long>(r.files),
              format_size(r.content_bytes).c_str(), static_cast<unsigned long long>(r.new_blobs),
              static_cast<unsigned long long>(r.new_packs), format_size(r.manifest_bytes).c_str(), seconds);
  return kExitOk;
}

}  // namespace pagerfs::ctl
