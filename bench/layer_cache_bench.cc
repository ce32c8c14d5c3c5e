// How much a warm cache disk helps a slow store: a `local` layer slowed by
// the fault layer (PAGERFS_BENCH_LATENCY_US per read, default 2000) under a
// `cache` layer in a temporary directory. Reads a blob file cold (every read
// goes to the slow store and fills the cache), then warm (all from the
// cache), and prints both rates and their ratio.
//
// usage: layer_cache_bench STORE DIGEST [READ_SIZE]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "pagerfs/layers/cache_layer.h"
#include "layers/fault_layer.h"
#include "pagerfs/layers/layer_stack.h"
#include "pagerfs/layers/local_layer.h"
#include "pagerfs/util/units.h"

using namespace pagerfs;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: layer_cache_bench STORE DIGEST [READ_SIZE]\n");
    return 2;
  }
  auto store = Store::open(argv[1]);
  auto digest = Digest::parse(argv[2]);
  if (!store || !digest) {
    std::fprintf(stderr, "layer_cache_bench: bad store or digest\n");
    return 1;
  }
  const uint64_t read_size = argc > 3 ? parse_size(argv[3]).value() : 128 * 1024;
  const char* latency = std::getenv("PAGERFS_BENCH_LATENCY_US");
  auto faults = std::make_shared<FaultConfig>();
  faults->latency_us = latency ? std::strtoull(latency, nullptr, 10) : 2000;

  const auto dir = std::filesystem::temp_directory_path() / ("pagerfs-cache-bench-" + std::to_string(::getpid()));
  CacheLayerOptions options;
  options.budget_bytes = uint64_t{4} << 30;
  auto cache = make_cache_layer(dir, options).value();
  auto stack = LayerStack::create({cache, make_fault_layer(make_local_layer(store.value()), faults)}, nullptr).value();
  const uint64_t size = stack->blob_size(digest.value()).value();
  const BlobExtent blob{digest.value(), size};

  std::vector<std::byte> buf(read_size);
  auto pass = [&] {
    const auto start = std::chrono::steady_clock::now();
    for (uint64_t off = 0; off < size; off += read_size) {
      const uint64_t n = std::min(read_size, size - off);
      if (!stack->read(blob, off, std::span(buf).first(n))) std::abort();
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const double cold = pass();
  const double warm = pass();
  const double mb = static_cast<double>(size) / 1e6;
  std::printf("blob %s: %s in %s reads, store latency %llu us\n", digest.value().str().c_str(),
              format_size(size).c_str(), format_size(read_size).c_str(),
              static_cast<unsigned long long>(faults->latency_us.load()));
  std::printf("cold (slow store, fills the cache): %.3f s, %.1f MB/s\n", cold, mb / cold);
  std::printf("warm (cache disk):                  %.3f s, %.1f MB/s\n", warm, mb / warm);
  std::printf("warm/cold speed-up: %.1fx\n", cold / warm);
  std::filesystem::remove_all(dir);
  return 0;
}
