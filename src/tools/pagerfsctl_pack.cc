// pagerfsctl pack: blobs from files or standard input, or an image from a tree.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <optional>
#include <string>

#include "pagerfs/store/image_manifest.h"
#include "pagerfs/store/image_packer.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/file.h"
#include "pagerfs/util/units.h"
#include "store/pack_planner.h"
#include "tools/pagerfsctl.h"
#include "tools/progress_line.h"

namespace pagerfs::ctl {
namespace {

std::optional<uint64_t> regular_file_size(const std::string& path) {
  struct stat st {};
  if (path == "-" || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<uint64_t>(st.st_size);
}

int run_pack_image(const Store& store, const PackArgs& args, BlobWriterOptions options) {
  if (args.inputs.size() != 1) return print_error("--image packs exactly one directory"), kExitUsage;
  if (auto valid = image::validate_image_name(args.image); !valid) {
    return print_error(valid.error().with_context("--image").message()), kExitUsage;
  }
  const std::string& dir = args.inputs.front();
  ImagePackOptions image_options;
  image_options.blob = options;
  auto sizes = pack_sizes(args.pack_threshold, args.pack_max);
  if (!sizes) return print_error(sizes.error().message()), kExitUsage;
  image_options.pack_threshold = sizes.value().threshold;
  image_options.pack_max = sizes.value().max;
  ProgressLine progress("packing image " + args.image, std::nullopt);
  image_options.on_progress = [&progress](const ImagePackProgress& p) { progress.update(p.bytes_done); };
  const auto start = std::chrono::steady_clock::now();
  auto packed = pack_image(store, args.image, dir, image_options);
  if (!packed) return print_error(packed.error().message()), kExitFailure;
  const ImagePackResult& r = packed.value();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "image %s: %llu entries, %llu files (%s), %llu distinct, %llu packed in %llu pack(s), %llu new blob(s) "
      "(%s stored), %.1f s\n",
      args.image.c_str(), static_cast<unsigned long long>(r.entries), static_cast<unsigned long long>(r.files),
      format_size(r.content_bytes).c_str(), static_cast<unsigned long long>(r.distinct_blobs),
      static_cast<unsigned long long>(r.packed_files), static_cast<unsigned long long>(r.packs),
      static_cast<unsigned long long>(r.new_blobs), format_size(r.new_blob_bytes).c_str(), seconds);
  return kExitOk;
}

}  // namespace

// Packing into a store whose directories others may enter could expose the
// private files packed (older stores were 0755 with 0444 blobs). pack never
// changes an existing directory's mode, since a store may be shared on
// purpose; it says once what would close it.
void warn_if_loose(const Store& store) {
  const std::vector<std::string> loose = store.loose_directories();
  if (loose.empty()) return;
  std::string command = "chmod 0700";
  for (const std::string& dir : loose) command += " '" + dir + "'";
  std::fprintf(stderr,
               "pagerfsctl: warning: store directories open to group or others can expose packed private "
               "files; to close them: %s\n",
               command.c_str());
}

Result<BlobWriterOptions> blob_options(const std::string& chunk_size, int level, unsigned threads) {
  BlobWriterOptions options;
  PAGERFS_TRY(chunk, size_option("--chunk-size", chunk_size));
  if (chunk > UINT32_MAX) return Error(errc::invalid_argument, "--chunk-size: too large");
  options.chunk_size = static_cast<uint32_t>(chunk);
  options.level = level;
  options.threads = threads;
  PAGERFS_TRYV(validate(options));
  return options;
}

Result<PackSizes> pack_sizes(const std::optional<std::string>& threshold, const std::string& max) {
  PackSizes sizes;
  if (threshold) {
    PAGERFS_TRY(value, size_option("--pack-threshold", *threshold));
    sizes.threshold = value;
  }
  PAGERFS_TRY(pack_max, size_option("--pack-max", max));
  sizes.max = pack_max;
  PAGERFS_TRYV(validate(PackPlanOptions{sizes.threshold, sizes.max}));
  return sizes;
}

int run_pack(const PackArgs& args) {
  auto blob = blob_options(args.chunk_size, args.level, args.threads);
  if (!blob) return print_error(blob.error().message()), kExitUsage;
  BlobWriterOptions options = blob.value();
  if (std::count(args.inputs.begin(), args.inputs.end(), "-") > 1) {
    return print_error("standard input ('-') can be packed only once"), kExitUsage;
  }

  auto store = Store::create(args.store);
  if (!store) return print_error(store.error().message()), kExitFailure;
  warn_if_loose(store.value());
  if (!args.image.empty()) return run_pack_image(store.value(), args, options);
  int status = kExitOk;
  for (const std::string& input_path : args.inputs) {
    auto input = open_input_stream(input_path);
    if (!input) {
      print_error(input.error().message());
      status = kExitFailure;
      continue;
    }
    const std::optional<uint64_t> total = regular_file_size(input_path);
    // Small inputs finish before a progress line would help.
    const bool show = !total || *total >= (64u << 20);
    ProgressLine progress("packing " + input_path, total);
    if (show) options.on_progress = [&progress](uint64_t done) { progress.update(done); };
    auto packed = store.value().pack(*input.value(), options);
    options.on_progress = nullptr;
    if (!packed) {
      print_error(packed.error().with_context("pack '" + input_path + "'").message());
      status = kExitFailure;
      continue;
    }
    std::printf("%s  %s\n", packed.value().header.digest.str().c_str(), input_path.c_str());
    std::fflush(stdout);
  }
  return status;
}

}  // namespace pagerfs::ctl
