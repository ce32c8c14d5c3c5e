// pagerfsctl: pack, inspect, verify and read pagerfs stores and blobs.
//
// Exit status: 0 success; 1 failure (for verify: corruption found); 2 usage
// or I/O error. Errors are one line on stderr: "pagerfsctl: error: ...".
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/format/chunk_stream.h"
#include "pagerfs/control/control.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/store/image_manifest.h"
#include "pagerfs/store/image_packer.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/units.h"
#include "pagerfs/store/verify.h"

namespace pagerfs {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

void print_error(const std::string& message) {
  std::fprintf(stderr, "pagerfsctl: error: %s\n", message.c_str());
}

// Validates a size option given as text ("64K"), for CLI11.
Result<uint64_t> size_option(const std::string& name, const std::string& text) {
  auto size = parse_size(text);
  if (!size) return size.error().with_context(name);
  return size;
}

// A one-line progress display on a terminal, redrawn at most 5 times a second.
class Progress {
 public:
  Progress(std::string label, std::optional<uint64_t> total)
      : label_(std::move(label)), total_(total), enabled_(::isatty(STDERR_FILENO) == 1),
        start_(std::chrono::steady_clock::now()), last_(start_) {}
  ~Progress() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
  }

  void update(uint64_t done) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const auto rate = static_cast<uint64_t>(static_cast<double>(done) / std::max(seconds, 1e-3));
    std::string line = "\r\033[K" + label_ + "  " + format_size(done);
    if (total_ && *total_ > 0) {
      line += " / " + format_size(*total_) + "  " + std::to_string(done * 100 / *total_) + "%";
    }
    line += "  " + format_size(rate) + "/s";
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
    drawn_ = true;
  }

 private:
  std::string label_;
  std::optional<uint64_t> total_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

std::optional<uint64_t> regular_file_size(const std::string& path) {
  struct stat st {};
  if (path == "-" || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<uint64_t>(st.st_size);
}

// ---- pack -------------------------------------------------------------------

struct PackArgs {
  std::string store;
  std::string chunk_size = "128K";
  int level = kDefaultCompressionLevel;
  unsigned threads = 0;
  std::string image;  // pack one directory as this image
  std::vector<std::string> inputs;
};

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

int run_pack_image(const Store& store, const PackArgs& args, BlobWriterOptions options) {
  if (args.inputs.size() != 1) return print_error("--image packs exactly one directory"), kExitUsage;
  if (auto valid = image::validate_image_name(args.image); !valid) {
    return print_error(valid.error().with_context("--image").message()), kExitUsage;
  }
  const std::string& dir = args.inputs.front();
  ImagePackOptions image_options;
  image_options.blob = options;
  Progress progress("packing image " + args.image, std::nullopt);
  image_options.on_progress = [&progress](const ImagePackProgress& p) { progress.update(p.bytes_done); };
  const auto start = std::chrono::steady_clock::now();
  auto packed = pack_image(store, args.image, dir, image_options);
  if (!packed) return print_error(packed.error().message()), kExitFailure;
  const ImagePackResult& r = packed.value();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("image %s: %llu entries, %llu files (%s), %llu distinct, %llu new blob(s) (%s stored), %.1f s\n",
              args.image.c_str(), static_cast<unsigned long long>(r.entries),
              static_cast<unsigned long long>(r.files), format_size(r.content_bytes).c_str(),
              static_cast<unsigned long long>(r.distinct_blobs), static_cast<unsigned long long>(r.new_blobs),
              format_size(r.new_blob_bytes).c_str(), seconds);
  return kExitOk;
}

int run_pack(const PackArgs& args) {
  BlobWriterOptions options;
  auto chunk = size_option("--chunk-size", args.chunk_size);
  if (!chunk) return print_error(chunk.error().message()), kExitUsage;
  if (chunk.value() > UINT32_MAX) return print_error("--chunk-size: too large"), kExitUsage;
  options.chunk_size = static_cast<uint32_t>(chunk.value());
  options.level = args.level;
  options.threads = args.threads;
  if (auto valid = validate(options); !valid) return print_error(valid.error().message()), kExitUsage;
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
    Progress progress("packing " + input_path, total);
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

// ---- inspect ----------------------------------------------------------------

int run_inspect(const std::string& path, bool json) {
  // The user's own path: a symlink of theirs is followed; a FIFO or device
  // is refused at once.
  auto reader = BlobReader::open(path, Symlinks::follow);
  if (!reader) return print_error(reader.error().message()), kExitFailure;
  const BlobReader& r = *reader.value();
  const format::BlobHeader& h = r.header();
  uint64_t min_frame = 0, max_frame = 0, total_frames = 0;
  for (const format::ChunkEntry& e : r.chunks()) {
    min_frame = total_frames == 0 ? e.compressed_size : std::min<uint64_t>(min_frame, e.compressed_size);
    max_frame = std::max<uint64_t>(max_frame, e.compressed_size);
    total_frames += e.compressed_size;
  }
  const double ratio = r.file_size() == 0 ? 0.0 : static_cast<double>(h.byte_size) / static_cast<double>(r.file_size());
  const uint64_t mean_frame = h.chunk_count == 0 ? 0 : total_frames / h.chunk_count;
  const uint64_t last_chunk = h.chunk_count == 0 ? 0 : h.chunk_length(h.chunk_count - 1);
  if (json) {
    nlohmann::json out = {
        {"path", path},
        {"format_version", format::kVersion},
        {"codec", "zstd"},
        {"digest", h.digest.str()},
        {"byte_size", h.byte_size},
        {"file_size", r.file_size()},
        {"ratio", ratio},
        {"chunk_size", h.chunk_size},
        {"chunk_count", h.chunk_count},
        {"last_chunk_size", last_chunk},
        {"seek_table_offset", h.seek_table_offset},
        {"seek_table_size", h.seek_table_size()},
        {"frames", {{"total", total_frames}, {"min", min_frame}, {"mean", mean_frame}, {"max", max_frame}}},
    };
    std::cout << out.dump(2) << '\n';
    return kExitOk;
  }
  std::printf("blob        %s\n", path.c_str());
  std::printf("digest      %s\n", h.digest.str().c_str());
  std::printf("format      pagerfs blob v%u, zstd\n", unsigned{format::kVersion});
  std::printf("size        %llu bytes (%s)\n", static_cast<unsigned long long>(h.byte_size),
              format_size(h.byte_size).c_str());
  std::printf("stored      %llu bytes (%s), ratio %.2f\n",
              static_cast<unsigned long long>(r.file_size()), format_size(r.file_size()).c_str(), ratio);
  std::printf("chunks      %llu x %s (last %llu bytes)\n", static_cast<unsigned long long>(h.chunk_count),
              format_size(h.chunk_size).c_str(), static_cast<unsigned long long>(last_chunk));
  std::printf("frames      min %llu, mean %llu, max %llu bytes\n",
              static_cast<unsigned long long>(min_frame), static_cast<unsigned long long>(mean_frame),
              static_cast<unsigned long long>(max_frame));
  std::printf("seek table  %llu bytes at offset %llu\n",
              static_cast<unsigned long long>(h.seek_table_size()),
              static_cast<unsigned long long>(h.seek_table_offset));
  return kExitOk;
}

// ---- verify -----------------------------------------------------------------

int run_verify(const std::string& store_path, const std::vector<std::string>& digests, unsigned threads) {
  auto store = Store::open(store_path);
  if (!store) return print_error(store.error().message()), kExitUsage;
  std::vector<Digest> targets;
  if (digests.empty()) {
    auto all = store.value().list_blobs();
    if (!all) return print_error(all.error().message()), kExitUsage;
    targets = std::move(all).value();
  } else {
    for (const std::string& text : digests) {
      auto d = Digest::parse(text);
      if (!d) return print_error(d.error().message()), kExitUsage;
      targets.push_back(d.value());
    }
  }
  size_t corrupt = 0, failed = 0;
  std::unordered_map<Digest, uint64_t, DigestHash> good;  // byte sizes of the blobs found whole
  for (const Digest& digest : targets) {
    auto verified = verify_blob(store.value().blob_path(digest), digest, threads);
    if (verified) {
      good[digest] = verified.value().byte_size;
      std::printf("ok       %s\n", digest.str().c_str());
    } else if (is_corruption(verified.error().code())) {
      ++corrupt;
      std::printf("CORRUPT  %s\n", digest.str().c_str());
      std::fprintf(stderr, "pagerfsctl: corrupt blob %s: %s\n", digest.str().c_str(),
                   verified.error().message().c_str());
    } else {
      ++failed;
      std::printf("ERROR    %s\n", digest.str().c_str());
      std::fprintf(stderr, "pagerfsctl: cannot verify %s: %s\n", digest.str().c_str(),
                   verified.error().message().c_str());
    }
  }
  std::fflush(stdout);
  std::fprintf(stderr, "pagerfsctl: %zu blob(s) checked: %zu ok, %zu corrupt, %zu unreadable\n",
               targets.size(), targets.size() - corrupt - failed, corrupt, failed);

  // Images, when the whole store was checked: each manifest must be valid and
  // name only whole blobs of the sizes it claims.
  if (digests.empty()) {
    auto names = store.value().list_images();
    if (!names) return print_error(names.error().message()), kExitUsage;
    size_t bad_images = 0;
    for (const std::string& name : names.value()) {
      auto problem = [&]() -> std::optional<Error> {
        auto manifest = store.value().load_image(name);
        if (!manifest) return manifest.error();
        const image::Manifest& m = manifest.value();
        // A damaged blob counts as missing: it was reported above.
        if (auto whole = image::require_blobs(name, m, [&](const Digest& d) { return good.contains(d); }); !whole) {
          return Error(errc::corrupt_blob, whole.error().message());
        }
        for (uint32_t i = 0; i < m.size(); ++i) {
          const image::Entry e = m.entry(i);
          if (e.type != image::EntryType::file || good.at(m.digest_of(e)) == e.size) continue;
          return Error(errc::corrupt_blob, "image '" + name + "': '" + m.path(i) + "': blob " +
                                               m.digest_of(e).str() + " has " +
                                               std::to_string(good.at(m.digest_of(e))) +
                                               " bytes, the image says " + std::to_string(e.size));
        }
        return std::nullopt;
      }();
      if (!problem) {
        std::printf("ok       image %s\n", name.c_str());
        continue;
      }
      ++bad_images;
      const bool damaged = is_corruption(problem->code());
      std::printf("%s image %s\n", damaged ? "CORRUPT " : "ERROR   ", name.c_str());
      std::fprintf(stderr, "pagerfsctl: %s\n", problem->message().c_str());
      if (damaged) ++corrupt; else ++failed;
    }
    std::fflush(stdout);
    std::fprintf(stderr, "pagerfsctl: %zu image(s) checked: %zu ok, %zu bad\n", names.value().size(),
                 names.value().size() - bad_images, bad_images);
  }
  if (corrupt > 0) return kExitFailure;
  return failed > 0 ? kExitUsage : kExitOk;
}

// ---- images -----------------------------------------------------------------

const char* type_name(image::EntryType type) {
  switch (type) {
    case image::EntryType::directory: return "dir";
    case image::EntryType::file: return "file";
    case image::EntryType::symlink: return "symlink";
    case image::EntryType::hardlink: return "hardlink";
    case image::EntryType::special: return "special";
  }
  return "?";
}

// The paths of a manifest's entries, in index order, each built from its
// parent's: a listing then costs what it prints, however deep the tree
// (Manifest::path walks up to the root for every entry). Entries are breadth
// first with each directory's children contiguous, so a directory's path is
// dropped once its children are past, and at most about one level's paths
// are held.
class EntryPaths {
 public:
  explicit EntryPaths(const image::Manifest& m) : m_(m) {}

  // The path of `e` ("" for the root); call for every entry in index order.
  const std::string& of(const image::Entry& e) {
    if (e.index == 0) {
      path_.clear();
    } else {
      if (e.parent != parent_) dirs_.erase(std::exchange(parent_, e.parent));
      auto it = dirs_.find(e.parent);
      if (it == dirs_.end()) it = dirs_.emplace(e.parent, m_.path(e.parent)).first;  // not in order
      path_ = it->second;
      if (!path_.empty()) path_ += '/';
      path_ += e.name;
    }
    if (e.type == image::EntryType::directory) dirs_[e.index] = path_;
    return path_;
  }

 private:
  const image::Manifest& m_;
  std::unordered_map<uint32_t, std::string> dirs_;  // directories whose children may come
  uint32_t parent_ = 0;
  std::string path_;
};

// Lists the store's images, or the entries of one.
int run_images(const std::string& store_path, const std::optional<std::string>& name, bool json) {
  auto store = Store::open(store_path);
  if (!store) return print_error(store.error().message()), kExitFailure;
  if (name) {
    auto manifest = store.value().load_image(*name);
    if (!manifest) return print_error(manifest.error().message()), kExitFailure;
    const image::Manifest& m = manifest.value();
    nlohmann::json entries = nlohmann::json::array();
    EntryPaths paths(m);
    for (uint32_t i = 0; i < m.size(); ++i) {
      const image::Entry e = m.entry(i);
      const std::string& walked = paths.of(e);
      const std::string_view path = i == 0 ? std::string_view(".") : std::string_view(walked);
      std::string detail;
      if (e.type == image::EntryType::file) detail = m.digest_of(e).str();
      if (e.type == image::EntryType::symlink) detail = "-> " + std::string(m.symlink_target(e));
      if (e.type == image::EntryType::hardlink) detail = "=> " + m.path(m.resolve(i));
      if (json) {
        nlohmann::json j = {{"path", std::string(path)}, {"type", type_name(e.type)}, {"mode", e.mode & 07777},
                            {"uid", e.uid}, {"gid", e.gid}, {"mtime_ns", e.mtime_sec * 1000000000 + e.mtime_nsec},
                            {"size", e.size}, {"nlink", m.nlink(i)}};
        if (e.type == image::EntryType::file) j["digest"] = m.digest_of(e).str();
        if (e.type == image::EntryType::symlink) j["target"] = std::string(m.symlink_target(e));
        if (e.type == image::EntryType::hardlink) j["target"] = m.path(m.resolve(i));
        nlohmann::json xattrs = nlohmann::json::object();
        for (const image::Xattr& x : m.xattrs(e)) xattrs[x.name] = x.value;
        if (!xattrs.empty()) j["xattrs"] = xattrs;
        entries.push_back(std::move(j));
        continue;
      }
      std::printf("%-8s %04o %5u %5u %12llu  %.*s%s%s\n", type_name(e.type), e.mode & 07777, e.uid, e.gid,
                  static_cast<unsigned long long>(e.size), static_cast<int>(path.size()), path.data(),
                  detail.empty() ? "" : "  ",
                  detail.c_str());
    }
    if (json) std::cout << entries.dump(2) << '\n';
    return kExitOk;
  }
  auto names = store.value().list_images();
  if (!names) return print_error(names.error().message()), kExitFailure;
  nlohmann::json images = nlohmann::json::array();
  if (!json && !names.value().empty()) std::printf("%-24s %10s %10s %12s\n", "IMAGE", "ENTRIES", "FILES", "SIZE");
  int status = kExitOk;
  for (const std::string& image_name : names.value()) {
    auto manifest = store.value().load_image(image_name);
    if (!manifest) {
      print_error(manifest.error().message());
      status = kExitFailure;
      continue;
    }
    const image::Manifest& m = manifest.value();
    uint64_t files = 0, bytes = 0;
    for (uint32_t i = 0; i < m.size(); ++i) {
      const image::Entry e = m.entry(i);
      if (e.type != image::EntryType::file) continue;
      ++files;
      bytes += e.size;
    }
    if (json) {
      images.push_back({{"name", image_name}, {"entries", m.size()}, {"files", files}, {"bytes", bytes},
                        {"blobs", m.digests().size()}});
    } else {
      std::printf("%-24s %10u %10llu %12s\n", image_name.c_str(), m.size(), static_cast<unsigned long long>(files),
                  format_size(bytes).c_str());
    }
  }
  if (json) std::cout << images.dump(2) << '\n';
  return status;
}

// ---- cat --------------------------------------------------------------------

Result<void> write_all(int fd, std::span<const std::byte> data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "write to standard output");
    }
    data = data.subspan(static_cast<size_t>(n));
  }
  return ok();
}

int run_cat(const std::string& path, const std::string& offset_text,
            const std::optional<std::string>& length_text, unsigned threads) {
  auto offset = size_option("--offset", offset_text);
  if (!offset) return print_error(offset.error().message()), kExitUsage;
  std::optional<uint64_t> length;
  if (length_text) {
    auto parsed = size_option("--length", *length_text);
    if (!parsed) return print_error(parsed.error().message()), kExitUsage;
    length = parsed.value();
  }
  auto reader = BlobReader::open(path, Symlinks::follow);
  if (!reader) return print_error(reader.error().message()), kExitFailure;
  const BlobReader& r = *reader.value();
  const uint64_t begin = std::min(offset.value(), r.byte_size());
  const uint64_t end = begin + std::min(length.value_or(UINT64_MAX), r.byte_size() - begin);
  if (begin == end) return kExitOk;
  const uint64_t chunk_size = r.chunk_size();
  auto sink = [&](uint64_t index, std::span<const std::byte> data) -> Result<void> {
    const uint64_t chunk_start = index * chunk_size;
    const uint64_t from = std::max(begin, chunk_start) - chunk_start;
    const uint64_t to = std::min(end, chunk_start + data.size()) - chunk_start;
    return write_all(STDOUT_FILENO, data.subspan(from, to - from));
  };
  if (auto streamed = stream_chunks(r, begin / chunk_size, (end - 1) / chunk_size + 1, threads, sink);
      !streamed) {
    return print_error(streamed.error().message()), kExitFailure;
  }
  return kExitOk;
}

// ---- stats, dump, prewarm, drop-caches: the control socket of a mount --------

// Where to send a control request: the socket a mount names (checked: a
// pagerfs mount, a socket of the mount's owner), or one given with --control
// (checked: a socket of the caller's or root's).
struct ControlTarget {
  std::string mountpoint;  // empty with --control only
  std::string socket;      // --control, or empty
  std::optional<double> timeout_s;  // --timeout; 0: none
};

// Sends `request` to the daemon; returns its answer. Every command but a
// prewarm (which may decode a whole image) gets control::kClientTimeout.
Result<std::string> ask(const ControlTarget& target, const control::Request& request) {
  auto endpoint = target.socket.empty() ? control::socket_for_mount(target.mountpoint)
                                        : control::explicit_socket(target.socket);
  if (!endpoint) return endpoint.error();
  std::optional<std::chrono::milliseconds> timeout = control::kClientTimeout;
  if (request.command == "prewarm") timeout.reset();
  if (target.timeout_s) {
    timeout.reset();
    if (*target.timeout_s > 0) timeout = std::chrono::milliseconds(static_cast<int64_t>(*target.timeout_s * 1000));
  }
  return control::request(endpoint.value(), control::encode_request(request), timeout);
}

int run_control(const ControlTarget& target, const control::Request& request) {
  auto answer = ask(target, request);
  if (!answer) return print_error(answer.error().message()), kExitFailure;
  std::fputs(answer.value().c_str(), stdout);
  return kExitOk;
}

int run_stats(const ControlTarget& target, bool json) {
  if (json) return run_control(target, {"stats", {}});
  auto answer = ask(target, {"stats", {}});
  if (!answer) return print_error(answer.error().message()), kExitFailure;
  const auto s = nlohmann::json::parse(answer.value());
  const auto& p = s["pager"];
  std::printf("store        %s (%llu blobs)\n", s["store"].get<std::string>().c_str(),
              s["blobs"].get<unsigned long long>());
  std::printf("pager        %llu faults, %llu chunks decoded, %llu read ahead, chunk cache %s\n",
              p["faults"].get<unsigned long long>(), p["chunks_decoded"].get<unsigned long long>(),
              p["readahead_chunks"].get<unsigned long long>(),
              format_size(p["chunk_cache_bytes"].get<uint64_t>()).c_str());
  std::printf("             cache hits %llu, misses %llu, coalesced %llu; decode p50 %llu us, p99 %llu us\n",
              p["chunk_cache_hits"].get<unsigned long long>(), p["chunk_cache_misses"].get<unsigned long long>(),
              p["coalesced_waits"].get<unsigned long long>(),
              p["decode_latency"]["p50_us"].get<unsigned long long>(),
              p["decode_latency"]["p99_us"].get<unsigned long long>());
  for (const auto& l : s["layers"]) {
    std::printf("layer %-6s %llu reads, %s served, %llu sectors missed, %llu errors, %s cached\n",
                l["type"].get<std::string>().c_str(), l["reads"].get<unsigned long long>(),
                format_size(l["bytes_read"].get<uint64_t>()).c_str(),
                l["sectors_missed"].get<unsigned long long>(), l["errors"].get<unsigned long long>(),
                format_size(l["bytes_cached"].get<uint64_t>()).c_str());
  }
  if (s.contains("control")) {
    const auto& c = s["control"];
    std::printf("control      %llu connections; refused: %llu other uid, %llu oversized, %llu timed out, %llu over "
                "the connection limit\n",
                c["connections"].get<unsigned long long>(), c["refused_peers"].get<unsigned long long>(),
                c["oversized"].get<unsigned long long>(), c["timed_out"].get<unsigned long long>(),
                c["evicted"].get<unsigned long long>());
  }
  for (const auto& [name, op] : s["fuse"].items()) {
    if (!op.contains("calls") || op["calls"].get<uint64_t>() == 0 || !op.contains("latency")) continue;
    std::printf("fuse %-8s %llu calls, %llu errors, p50 %llu us, p99 %llu us\n", name.c_str(),
                op["calls"].get<unsigned long long>(), op["errors"].get<unsigned long long>(),
                op["latency"]["p50_us"].get<unsigned long long>(),
                op["latency"]["p99_us"].get<unsigned long long>());
  }
  return kExitOk;
}

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

  std::string cat_path;
  std::string cat_offset = "0";
  std::optional<std::string> cat_length;
  unsigned cat_threads = 0;
  auto* cat_cmd = app.add_subcommand("cat", "Write a blob's decompressed bytes to standard output");
  cat_cmd->add_option("blob", cat_path, "Blob file")->required();
  cat_cmd->add_option("--offset", cat_offset, "First byte (K/M/G suffixes)");
  cat_cmd->add_option("--length", cat_length, "Bytes to write (default: to the end)");
  cat_cmd->add_option("--threads,-j", cat_threads, "Decoding threads (0: one per core)");

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
  if (inspect_cmd->parsed()) return run_inspect(inspect_path, inspect_json);
  if (verify_cmd->parsed()) return run_verify(verify_store, verify_digests, verify_threads);
  if (images_cmd->parsed()) return run_images(images_store, images_name, images_json);
  if (cat_cmd->parsed()) return run_cat(cat_path, cat_offset, cat_length, cat_threads);
  if ((stats_cmd->parsed() || dump_cmd->parsed() || drop_cmd->parsed()) &&
      target.mountpoint.empty() == target.socket.empty()) {
    print_error("give a MOUNTPOINT or --control SOCKET (one of them)");
    std::fprintf(stderr, "Run 'pagerfsctl --help' for usage.\n");
    return kExitUsage;
  }
  if (stats_cmd->parsed()) return run_stats(target, stats_json);
  if (dump_cmd->parsed()) return run_control(target, {"dump", {}});
  if (drop_cmd->parsed()) return run_control(target, {"drop-caches", {}});
  if (prewarm_cmd->parsed()) {
    // Paths may be given under the mount point or relative to it.
    char root[PATH_MAX];
    if (::realpath(target.mountpoint.c_str(), root) == nullptr) {
      return print_error("'" + target.mountpoint + "': " + std::strerror(errno)), kExitFailure;
    }
    control::Request request{"prewarm", {}};
    for (const std::string& item : prewarm_items) {
      // FILE or FILE:OFFSET:LENGTH; FILE may be relative to the current directory.
      control::PrewarmItem parsed = control::parse_prewarm_item(item);
      char resolved[PATH_MAX];
      if (::realpath(parsed.path.c_str(), resolved) != nullptr) parsed.path = resolved;
      if (parsed.path.starts_with(std::string(root) + "/")) parsed.path = parsed.path.substr(std::strlen(root) + 1);
      request.items.push_back(std::move(parsed));
    }
    return run_control(target, request);
  }
  return kExitUsage;
}

}  // namespace
}  // namespace pagerfs

int main(int argc, char** argv) {
  try {
    return pagerfs::main_impl(argc, argv);
  } catch (const std::exception& e) {
    pagerfs::print_error(e.what());
    return 1;
  }
}
