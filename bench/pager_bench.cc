// Google Benchmark micro-benchmarks of the pager: decode throughput per core
// and the cost of one page-in request, cold (fetch + decode) and warm (from
// the chunk cache). Content: PAGERFS_BENCH_INPUT (a file; e.g. a tar of
// /usr/lib) or, by default, 32 MiB of text-like generated data.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>

#include "pagerfs/format/blob_writer.h"
#include "pagerfs/format/chunk_codec.h"
#include "pagerfs/layers/memory_layer.h"
#include "pagerfs/pager/pager.h"

using namespace pagerfs;

namespace {

std::vector<std::byte> bench_content() {
  std::vector<std::byte> out;
  if (const char* path = std::getenv("PAGERFS_BENCH_INPUT")) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> data(64 << 20);
    in.read(data.data(), static_cast<std::streamsize>(data.size()));
    data.resize(static_cast<size_t>(in.gcount()));
    out.resize(data.size());
    std::memcpy(out.data(), data.data(), data.size());
    return out;
  }
  static const char* kWords[] = {"page ", "fault ", "chunk ", "zstd ", "blob ", "\n", "0x7f3a ", "mmap "};
  std::mt19937_64 rng(1);
  while (out.size() < (32u << 20)) {
    for (const char* p = kWords[rng() % 8]; *p; ++p) out.push_back(static_cast<std::byte>(*p));
    if (rng() % 4 == 0) out.push_back(static_cast<std::byte>(rng()));
  }
  return out;
}

// A blob in memory: the writer's output served by a single complete layer.
class MemoryStore final : public Layer {
 public:
  explicit MemoryStore(std::vector<std::byte> file) : file_(std::move(file)) {}
  std::string_view type() const noexcept override { return "memstore"; }
  uint32_t sector_size() const noexcept override { return 4096; }
  bool is_complete() const noexcept override { return true; }
  Result<std::optional<uint64_t>> blob_size(const Digest&) override { return std::optional<uint64_t>(file_.size()); }
  Result<void> read(const BlobExtent&, std::span<std::byte> out, SectorMarker& m) override {
    std::memcpy(out.data(), file_.data() + m.first() * 4096, out.size());
    m.mark(m.first(), m.count());
    return ok();
  }

 private:
  std::vector<std::byte> file_;
};

struct Fixture {
  explicit Fixture(uint32_t chunk_size) {
    content = bench_content();
    std::vector<std::byte> file;
    auto in = memory_input_stream(content);
    auto out = memory_writable_file(&file);
    BlobWriterOptions options;
    options.chunk_size = chunk_size;
    header = write_blob(*in, *out, options).value().header;
    stack = LayerStack::create({std::make_shared<MemoryStore>(std::move(file))}, nullptr).value();
  }
  std::vector<std::byte> content;
  format::BlobHeader header;
  std::shared_ptr<LayerStack> stack;
};

// One chunk decoded and checked as the daemon does: XXH3-64 (the default),
// or also SHA-256 (-o verify=sha256).
void decode_chunk_bench(benchmark::State& state, ChunkVerify verify) {
  Fixture f(static_cast<uint32_t>(state.range(0)));
  auto reader = BlobReader::open(open_blob_through(f.stack, f.header.digest).value()).value();
  std::vector<std::vector<std::byte>> frames;
  // Every chunk of the content, as the page-in benchmarks touch them all.
  for (uint64_t i = 0; i < reader->chunk_count(); ++i) frames.push_back(reader->read_frame(i).value());
  std::vector<std::byte> out(f.header.chunk_size);
  uint64_t i = 0;
  for (auto _ : state) {
    const uint64_t c = i++ % frames.size();
    if (!decompress_chunk(f.header, c, reader->chunks()[c], frames[c], std::span(out).first(f.header.chunk_length(c)),
                          verify)) {
      state.SkipWithError("decode");
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * f.header.chunk_size);
}
void BM_DecodeChunk(benchmark::State& state) { decode_chunk_bench(state, ChunkVerify::xxh3); }
void BM_DecodeChunkSha256(benchmark::State& state) { decode_chunk_bench(state, ChunkVerify::sha256); }
BENCHMARK(BM_DecodeChunk)->Arg(16 << 10)->Arg(64 << 10)->Arg(128 << 10)->Arg(256 << 10);
BENCHMARK(BM_DecodeChunkSha256)->Arg(128 << 10);

// One 4 KiB page-in at a random offset; `warm`: the chunk is always cached.
void page_in_bench(benchmark::State& state, bool warm) {
  Fixture f(128 << 10);
  PagerOptions options;
  options.readahead = 128 << 10;
  options.threads = 1;
  options.chunk_cache_bytes = warm ? (256u << 20) : 0;
  auto pager = Pager::create(f.stack, options).value();
  auto blob = pager->open(f.header.digest).value();
  std::mt19937_64 rng(2);
  for (auto _ : state) {
    const uint64_t page = rng() % (f.content.size() / 4096);
    auto r = pager->page_in(*blob, page * 4096, 4096, [](Pager::Pieces pieces) {
      benchmark::DoNotOptimize(pieces.data());
    });
    if (!r) state.SkipWithError("page_in");
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
void BM_PageInCold(benchmark::State& state) { page_in_bench(state, false); }
void BM_PageInWarm(benchmark::State& state) { page_in_bench(state, true); }
BENCHMARK(BM_PageInCold);
BENCHMARK(BM_PageInWarm);

}  // namespace

BENCHMARK_MAIN();
