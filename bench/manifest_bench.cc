// Google Benchmark: image manifests of a million entries. Encoding is what a
// pack pays once; opening (version 2: header and page table only) is what
// every mount pays per image; find_child is every lookup(2) in an image.
// BM_OpenAndLookups is issue 14's figure: map a 1,000,000-entry manifest
// from its file and resolve 1000 random paths, each on a fresh open, so
// every page it touches is checked then (the file itself is in the page
// cache: the disk is not measured).
//
// The tree: 100 top directories x 100 subdirectories x 99 files (1,010,101
// entries), with names drawn from common file names so that names repeat
// across directories as in a real /usr, and one xattr on one file in ten.
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "pagerfs/store/image_manifest.h"

using namespace pagerfs;

namespace {

constexpr int kTop = 100;
constexpr int kSub = 100;
constexpr int kFiles = 99;

const char* const kStems[] = {"libc",   "README",  "index",  "__init__", "Makefile",
                              "config", "main",    "utils",  "LICENSE",  "setup",
                              "test",   "module",  "core",   "helpers",  "types",
                              "string", "python3", "libssl", "locale",   "charset"};
const char* const kSuffixes[] = {".so.6", ".md",   ".js", ".py",  "",
                                 ".h",    ".conf", ".gz", ".txt", ".1.gz"};

std::vector<image::EntrySpec> make_tree() {
  std::mt19937_64 rng(1);
  std::vector<image::EntrySpec> specs;
  specs.reserve(1 + kTop + kTop * kSub + kTop * kSub * kFiles);
  auto add = [&](std::string path, image::EntryType type, uint32_t mode) -> image::EntrySpec& {
    image::EntrySpec& e = specs.emplace_back();
    e.path = std::move(path);
    e.type = type;
    e.mode = mode;
    e.uid = 0;
    e.mtime_sec = 1700000000 + static_cast<int64_t>(rng() % 1000000);
    return e;
  };
  add("", image::EntryType::directory, 040755);
  for (int t = 0; t < kTop; ++t) {
    const std::string top = "pkg-" + std::to_string(t * 37 % 1000) + "-1.2";
    add(top, image::EntryType::directory, 040755);
    for (int s = 0; s < kSub; ++s) {
      const std::string sub = top + "/" + kStems[s % std::size(kStems)] + "-" + std::to_string(s);
      add(sub, image::EntryType::directory, 040755);
      for (int f = 0; f < kFiles; ++f) {
        std::string name = std::string(kStems[f % std::size(kStems)]) + "_" +
                           std::to_string(f / 7) + kSuffixes[f % std::size(kSuffixes)];
        image::EntrySpec& e = add(sub + "/" + name, image::EntryType::file, 0100644);
        std::array<uint8_t, Digest::kSize> raw{};
        // A fifth of the files share content with another one.
        const uint64_t content = rng() % 5 == 0 ? rng() % 1000 : rng();
        e.size = content % 200000;  // one content, one size
        for (size_t i = 0; i < 8; ++i) raw[i] = static_cast<uint8_t>(content >> (8 * i));
        raw[31] = static_cast<uint8_t>(f);
        e.digest = Digest(raw);
        if (f % 10 == 0) e.xattrs = {{"security.selinux", "system_u:object_r:usr_t:s0"}};
      }
    }
  }
  return specs;
}

const std::vector<image::EntrySpec>& tree() {
  static const auto specs = make_tree();
  return specs;
}

// Every file a whole blob of its own size.
std::vector<image::BlobRecord> records() {
  std::vector<image::BlobRecord> out;
  for (const image::EntrySpec& e : tree()) {
    if (e.type == image::EntryType::file) out.push_back({e.digest, {}, e.size});
  }
  return out;
}

const std::vector<std::byte>& encoded() {
  static const auto bytes = image::encode(tree(), records()).value();
  return bytes;
}

const image::Manifest& parsed() {
  static const auto manifest = image::Manifest::parse(encoded()).value();
  return manifest;
}

void BM_Encode(benchmark::State& state) {
  const auto& specs = tree();
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<image::EntrySpec> copy = specs;
    state.ResumeTiming();
    auto bytes = image::encode(std::move(copy), records());
    if (!bytes) state.SkipWithError(bytes.error().message().c_str());
    benchmark::DoNotOptimize(bytes);
    state.PauseTiming();
    bytes = std::vector<std::byte>{};  // freeing is not encoding
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * specs.size()));
  state.counters["entries"] = static_cast<double>(specs.size());
  state.counters["manifest_MiB"] = static_cast<double>(encoded().size()) / (1 << 20);
}
BENCHMARK(BM_Encode)->Unit(benchmark::kMillisecond)->MinTime(2);

void BM_Parse(benchmark::State& state) {
  const auto& bytes = encoded();
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<std::byte> copy = bytes;
    state.ResumeTiming();
    auto manifest = image::Manifest::parse(std::move(copy));
    if (!manifest) state.SkipWithError(manifest.error().message().c_str());
    benchmark::DoNotOptimize(manifest);
    state.PauseTiming();
    manifest = image::Manifest::parse(std::vector<std::byte>{});  // frees outside the timing
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * tree().size()));
  state.counters["entries"] = static_cast<double>(tree().size());
}
BENCHMARK(BM_Parse)->Unit(benchmark::kMillisecond)->MinTime(2);

// Lookups in directories of 100 entries, in random order so that the entries
// are not all in cache: of existing names (suffix "") or of missing ones ("~").
void find_child(benchmark::State& state, const char* suffix) {
  const image::Manifest& m = parsed();
  std::mt19937 rng(2);
  std::vector<std::pair<uint32_t, std::string>> queries;
  for (int i = 0; i < 4096; ++i) {
    const uint32_t child = 1 + static_cast<uint32_t>(rng() % (m.size() - 1));
    const image::Entry e = m.entry(child).value();
    queries.emplace_back(e.parent, std::string(e.name) + suffix);
  }
  size_t i = 0;
  for (auto _ : state) {
    const auto& [dir, name] = queries[i++ % queries.size()];
    auto found = m.find_child(dir, name);
    benchmark::DoNotOptimize(found);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
void BM_FindChildHit(benchmark::State& state) { find_child(state, ""); }
void BM_FindChildMiss(benchmark::State& state) { find_child(state, "~"); }
BENCHMARK(BM_FindChildHit);
BENCHMARK(BM_FindChildMiss);

// A whole path from the root, as a first lookup of "pkg/dir/file" does.
void BM_ResolvePath(benchmark::State& state) {
  const image::Manifest& m = parsed();
  std::mt19937 rng(4);
  std::vector<std::string> paths;
  for (int i = 0; i < 4096; ++i)
    paths.push_back(m.path(1 + static_cast<uint32_t>(rng() % (m.size() - 1))));
  size_t i = 0;
  for (auto _ : state) {
    auto found = m.find(paths[i++ % paths.size()]);
    benchmark::DoNotOptimize(found);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_ResolvePath);

void BM_OpenAndLookups(benchmark::State& state) {
  char path[] = "/tmp/manifest-bench-XXXXXX";
  const int fd = ::mkstemp(path);
  const auto& bytes = encoded();
  if (fd < 0 || ::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    state.SkipWithError("cannot write the manifest file");
    return;
  }
  ::unlink(path);
  std::mt19937 rng(5);
  std::vector<std::string> paths;
  for (int i = 0; i < 1000; ++i) paths.push_back(parsed().path(1 + static_cast<uint32_t>(rng() % (parsed().size() - 1))));
  for (auto _ : state) {
    auto m = image::Manifest::map(fd, bytes.size());
    if (!m) {
      state.SkipWithError(m.error().message().c_str());
      break;
    }
    for (const std::string& p : paths) {
      auto found = m.value().find(p);
      if (!found || !found.value()) state.SkipWithError("a path was not found");
      benchmark::DoNotOptimize(found);
    }
  }
  ::close(fd);
  state.counters["entries"] = static_cast<double>(tree().size());
  state.counters["manifest_MiB"] = static_cast<double>(bytes.size()) / (1 << 20);
}
BENCHMARK(BM_OpenAndLookups)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
