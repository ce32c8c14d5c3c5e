#include "pagerfs/format/chunk_stream.h"

#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <thread>
#include <vector>

#include "util/ordered_pipeline.h"

namespace pagerfs {

Result<void> stream_chunks(const BlobReader& reader, uint64_t first, uint64_t end, unsigned threads,
                           const ChunkSink& sink) {
  end = std::min(end, reader.chunk_count());
  if (first >= end) return ok();
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<uint64_t>(threads, end - first));

  using Decoded = Result<std::pair<uint64_t, std::vector<std::byte>>>;
  boost::asio::thread_pool pool(threads);
  OrderedPipeline<Decoded> pipeline(pool, 2 * threads);
  auto consume = [&](Decoded&& chunk) -> Result<void> {
    if (!chunk) return chunk.error();
    return sink(chunk.value().first, chunk.value().second);
  };
  for (uint64_t index = first; index < end; ++index) {
    PAGERFS_TRYV(pipeline.submit(
        [&reader, index]() -> Decoded {
          std::vector<std::byte> data(reader.header().chunk_length(index));
          PAGERFS_TRYV(reader.read_chunk(index, data));
          return std::make_pair(index, std::move(data));
        },
        consume));
  }
  return pipeline.drain(consume);
}

}  // namespace pagerfs
