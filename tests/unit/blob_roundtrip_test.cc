// Writer -> reader round trips at every size edge, for random and
// compressible content, whole and by random ranges.
#include <gtest/gtest.h>
#include <unistd.h>

#include <random>
#include <set>
#include <thread>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/format/blob_writer.h"
#include "pagerfs/format/chunk_stream.h"
#include "pagerfs/util/digest.h"
#include "support/test_data.h"

namespace pagerfs {
namespace {

using testing::compressible_bytes;
using testing::random_bytes;

std::vector<std::byte> pack(const std::vector<std::byte>& content, uint32_t chunk_size,
                            unsigned threads = 2) {
  std::vector<std::byte> blob;
  auto input = memory_input_stream(content);
  auto output = memory_writable_file(&blob);
  BlobWriterOptions options;
  options.chunk_size = chunk_size;
  options.threads = threads;
  auto header = write_blob(*input, *output, options);
  EXPECT_TRUE(header) << header.error().message();
  return blob;
}

std::unique_ptr<BlobReader> open_blob(std::vector<std::byte> blob) {
  auto reader = BlobReader::open(memory_random_access_file(std::move(blob)));
  EXPECT_TRUE(reader) << reader.error().message();
  return reader ? std::move(reader).value() : nullptr;
}

struct RoundTripCase {
  uint64_t size;
  uint32_t chunk_size;
  bool compressible;
};

class RoundTripTest : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(RoundTripTest, ReadsBackEveryByte) {
  const RoundTripCase c = GetParam();
  const auto content = c.compressible ? compressible_bytes(c.size) : random_bytes(c.size);
  auto reader = open_blob(pack(content, c.chunk_size));
  ASSERT_NE(reader, nullptr);

  EXPECT_EQ(reader->byte_size(), c.size);
  EXPECT_EQ(reader->chunk_size(), c.chunk_size);
  EXPECT_EQ(reader->chunk_count(), (c.size + c.chunk_size - 1) / c.chunk_size);
  EXPECT_EQ(reader->header().digest, Sha256::of(content));

  std::vector<std::byte> whole(c.size + 100);
  auto n = reader->read(0, whole);
  ASSERT_TRUE(n) << n.error().message();
  ASSERT_EQ(n.value(), c.size);
  whole.resize(c.size);
  EXPECT_TRUE(whole == content);

  // Random ranges, including ones that cross chunk boundaries and the end.
  std::mt19937_64 rng(c.size * 31 + c.chunk_size);
  for (int i = 0; i < 200 && c.size > 0; ++i) {
    const uint64_t offset = rng() % (c.size + 10);
    std::vector<std::byte> buf(rng() % (3 * c.chunk_size) + 1);
    auto got = reader->read(offset, buf);
    ASSERT_TRUE(got) << got.error().message();
    const uint64_t expect = offset >= c.size ? 0 : std::min<uint64_t>(buf.size(), c.size - offset);
    ASSERT_EQ(got.value(), expect) << "offset " << offset;
    ASSERT_TRUE(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(expect),
                           content.begin() + static_cast<ptrdiff_t>(std::min(offset, c.size))))
        << "offset " << offset << " length " << buf.size();
  }
}

std::vector<RoundTripCase> round_trip_cases() {
  std::vector<RoundTripCase> cases;
  for (uint32_t chunk : {4096u, 65536u}) {
    std::set<uint64_t> sizes = {0, 1, 4095, 4096, 4097, chunk - 1, chunk, chunk + 1,
                                uint64_t{3} * 1024 * 1024 + 17};
    for (uint64_t size : sizes) {
      for (bool compressible : {false, true}) cases.push_back({size, chunk, compressible});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Sizes, RoundTripTest, ::testing::ValuesIn(round_trip_cases()),
                         [](const auto& info) {
                           return "size" + std::to_string(info.param.size) + "_chunk" +
                                  std::to_string(info.param.chunk_size) +
                                  (info.param.compressible ? "_text" : "_random");
                         });

TEST(BlobWriter, OutputDoesNotDependOnThreadCount) {
  const auto content = compressible_bytes(1 << 20);
  EXPECT_TRUE(pack(content, 16384, 1) == pack(content, 16384, 2));
  EXPECT_TRUE(pack(content, 16384, 1) == pack(content, 16384, 7));
}

TEST(BlobWriter, CompressesCompressibleContent) {
  const auto content = compressible_bytes(1 << 20);
  EXPECT_LT(pack(content, 65536).size(), content.size() / 2);
}

TEST(BlobWriter, StreamsFromAPipe) {
  const auto content = random_bytes(1 << 20, 9);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // The writer thread feeds the pipe in odd-sized pieces: reads come back short.
  std::thread feeder([&] {
    size_t done = 0;
    while (done < content.size()) {
      const size_t n = std::min<size_t>(777, content.size() - done);
      ASSERT_EQ(::write(fds[1], content.data() + done, n), static_cast<ssize_t>(n));
      done += n;
    }
    ::close(fds[1]);
  });
  std::vector<std::byte> blob;
  auto input = fd_input_stream(fds[0], "pipe");
  auto output = memory_writable_file(&blob);
  BlobWriterOptions options;
  options.chunk_size = 8192;
  auto header = write_blob(*input, *output, options);
  feeder.join();
  ::close(fds[0]);
  ASSERT_TRUE(header) << header.error().message();
  EXPECT_EQ(header.value().header.digest, Sha256::of(content));
  auto reader = open_blob(blob);
  ASSERT_NE(reader, nullptr);
  std::vector<std::byte> back(content.size());
  ASSERT_TRUE(reader->read(0, back));
  EXPECT_TRUE(back == content);
}

TEST(BlobWriter, RejectsBadOptions) {
  for (uint32_t chunk : {0u, 1u, 2048u, 4095u, 6000u, 8u << 20}) {
    BlobWriterOptions options;
    options.chunk_size = chunk;
    auto valid = validate(options);
    ASSERT_FALSE(valid) << chunk;
    EXPECT_EQ(valid.error().code(), errc::invalid_argument);
  }
  BlobWriterOptions options;
  options.level = 99;
  EXPECT_FALSE(validate(options));
}

TEST(BlobWriter, ReportsProgress) {
  const auto content = random_bytes(100000);
  std::vector<std::byte> blob;
  auto input = memory_input_stream(content);
  auto output = memory_writable_file(&blob);
  BlobWriterOptions options;
  options.chunk_size = 4096;
  uint64_t last = 0;
  int calls = 0;
  options.on_progress = [&](uint64_t done) {
    EXPECT_GT(done, last);
    last = done;
    ++calls;
  };
  ASSERT_TRUE(write_blob(*input, *output, options));
  EXPECT_EQ(last, content.size());
  EXPECT_EQ(calls, 25);
}

TEST(ChunkStream, DeliversChunksInOrder) {
  const auto content = random_bytes(200000, 5);
  auto reader = open_blob(pack(content, 4096));
  ASSERT_NE(reader, nullptr);
  std::vector<std::byte> back;
  uint64_t expected_index = 3;
  auto streamed = stream_chunks(*reader, 3, 40, 3, [&](uint64_t index, std::span<const std::byte> d) {
    EXPECT_EQ(index, expected_index++);
    back.insert(back.end(), d.begin(), d.end());
    return Result<void>(ok());
  });
  ASSERT_TRUE(streamed);
  ASSERT_EQ(back.size(), 37u * 4096);
  EXPECT_TRUE(std::equal(back.begin(), back.end(), content.begin() + 3 * 4096));
}

TEST(ChunkStream, StopsAtSinkError) {
  auto reader = open_blob(pack(random_bytes(100000), 4096));
  ASSERT_NE(reader, nullptr);
  int calls = 0;
  auto streamed = stream_chunks(*reader, 0, reader->chunk_count(), 2,
                                [&](uint64_t, std::span<const std::byte>) -> Result<void> {
                                  if (++calls == 5) return Error(errc::invalid_argument, "stop");
                                  return ok();
                                });
  ASSERT_FALSE(streamed);
  EXPECT_EQ(streamed.error().message(), "stop");
  EXPECT_EQ(calls, 5);
}

}  // namespace
}  // namespace pagerfs
