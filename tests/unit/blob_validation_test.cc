// Every invariant of blob format v2 violated on purpose, truncation at every
// byte, and bit flips everywhere: a damaged blob is an error, never a wrong byte.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstring>
#include <functional>
#include <limits>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/format/blob_writer.h"
#include "support/test_data.h"
#include "util/byte_codec.h"

namespace pagerfs {
namespace {

using Blob = std::vector<std::byte>;

// 10000 bytes in 4 KiB chunks: 3 chunks, the last one partial.
Blob sample_blob(bool compressible = false) {
  const auto content = compressible ? testing::compressible_bytes(10000) : testing::random_bytes(10000);
  Blob blob;
  auto input = memory_input_stream(content);
  auto output = memory_writable_file(&blob);
  BlobWriterOptions options;
  options.chunk_size = 4096;
  EXPECT_TRUE(write_blob(*input, *output, options));
  return blob;
}

void put16(Blob& b, size_t off, uint16_t v) { store_le16(b.data() + off, v); }
void put32(Blob& b, size_t off, uint32_t v) { store_le32(b.data() + off, v); }
void put64(Blob& b, size_t off, uint64_t v) { store_le64(b.data() + off, v); }
uint64_t get64(const Blob& b, size_t off) { return load_le64(b.data() + off); }

void reseal_header(Blob& b) { put64(b, 120, XXH3_64bits(b.data(), 120)); }
// Recomputes the seek table checksum (and the header's) after editing the table.
void reseal_table(Blob& b) {
  const uint64_t table = get64(b, 40);
  put64(b, 48, XXH3_64bits(b.data() + table, b.size() - table));
  reseal_header(b);
}
size_t entry(const Blob& b, size_t index) { return get64(b, 40) + format::kSeekEntrySizeV2 * index; }

Result<std::unique_ptr<BlobReader>> open(const Blob& b) {
  return BlobReader::open(memory_random_access_file(b));
}

// Opens the blob and reads every byte; returns the first error, if any.
Result<std::vector<std::byte>> read_all(const Blob& b) {
  PAGERFS_TRY(reader, open(b));
  std::vector<std::byte> out(reader->byte_size());
  PAGERFS_TRYV(reader->read(0, out));
  return out;
}

struct Violation {
  const char* name;
  std::function<void(Blob&)> mutate;
  errc code;
  const char* message;  // a substring of the expected message
};

class HeaderViolationTest : public ::testing::TestWithParam<Violation> {};

TEST_P(HeaderViolationTest, IsRejectedOnOpen) {
  Blob blob = sample_blob();
  ASSERT_TRUE(open(blob)) << "the sample must be valid";
  GetParam().mutate(blob);
  auto reader = open(blob);
  ASSERT_FALSE(reader) << GetParam().name;
  EXPECT_EQ(reader.error().code(), GetParam().code) << reader.error().message();
  EXPECT_NE(reader.error().message().find(GetParam().message), std::string::npos)
      << reader.error().message();
  EXPECT_EQ(reader.error().message().find('\n'), std::string::npos) << "one line";
}

const Violation kViolations[] = {
    {"magic", [](Blob& b) { b[0] = std::byte{'X'}; }, errc::corrupt_blob, "bad magic"},
    {"version", [](Blob& b) { put16(b, 8, 3); reseal_header(b); }, errc::unsupported_format, "version 3"},
    {"version_0", [](Blob& b) { put16(b, 8, 0); reseal_header(b); }, errc::unsupported_format, "version 0"},
    // A v2 blob relabelled v1: its table is not a whole number of 24-byte entries.
    {"version_1", [](Blob& b) { put16(b, 8, 1); reseal_header(b); }, errc::corrupt_blob, "seek table of 3 entries needs 72"},
    {"version_unsealed", [](Blob& b) { put16(b, 8, 7); }, errc::unsupported_format, "version 7"},
    {"header_checksum", [](Blob& b) { b[20] ^= std::byte{1}; }, errc::corrupt_blob, "header checksum"},
    {"header_size", [](Blob& b) { put16(b, 10, 64); reseal_header(b); }, errc::corrupt_blob, "header size 64"},
    {"flags", [](Blob& b) { put32(b, 12, 4); reseal_header(b); }, errc::unsupported_format, "flags 0x4"},
    {"codec", [](Blob& b) { put32(b, 28, 2); reseal_header(b); }, errc::unsupported_format, "codec 2"},
    {"reserved", [](Blob& b) { b[100] = std::byte{1}; reseal_header(b); }, errc::corrupt_blob, "reserved"},
    {"chunk_size_odd", [](Blob& b) { put32(b, 24, 6000); reseal_header(b); }, errc::corrupt_blob, "chunk size 6000"},
    {"chunk_size_small", [](Blob& b) { put32(b, 24, 2048); reseal_header(b); }, errc::corrupt_blob, "chunk size 2048"},
    {"chunk_size_big", [](Blob& b) { put32(b, 24, 8u << 20); reseal_header(b); }, errc::corrupt_blob, "chunk size"},
    {"chunk_size_zero", [](Blob& b) { put32(b, 24, 0); reseal_header(b); }, errc::corrupt_blob, "chunk size 0"},
    {"byte_size", [](Blob& b) { put64(b, 16, 20000); reseal_header(b); }, errc::corrupt_blob, "chunk count 3"},
    {"chunk_count", [](Blob& b) { put64(b, 32, 4); reseal_header(b); }, errc::corrupt_blob, "chunk count 4"},
    {"huge_byte_size",
     [](Blob& b) {
       put64(b, 16, std::numeric_limits<uint64_t>::max());
       put64(b, 32, (std::numeric_limits<uint64_t>::max() >> 12) + 1);
       reseal_header(b);
     },
     errc::corrupt_blob, "seek table of"},
    {"table_offset_zero", [](Blob& b) { put64(b, 40, 0); reseal_header(b); }, errc::corrupt_blob, "seek table offset 0"},
    {"table_offset_past_end", [](Blob& b) { put64(b, 40, b.size() + 1); reseal_header(b); }, errc::corrupt_blob, "outside the file"},
    {"table_offset_max", [](Blob& b) { put64(b, 40, std::numeric_limits<uint64_t>::max()); reseal_header(b); }, errc::corrupt_blob, "outside the file"},
    {"trailing_data", [](Blob& b) { b.push_back(std::byte{0}); }, errc::corrupt_blob, "trailing data"},
    {"table_checksum", [](Blob& b) { b[entry(b, 1) + 17] ^= std::byte{0x10}; }, errc::corrupt_blob, "seek table checksum"},
    {"frame_gap", [](Blob& b) { put64(b, entry(b, 1), get64(b, entry(b, 1)) + 1); reseal_table(b); }, errc::corrupt_blob, "chunk 1: frame offset"},
    {"first_frame_offset", [](Blob& b) { put64(b, entry(b, 0), 0); reseal_table(b); }, errc::corrupt_blob, "chunk 0: frame offset 0"},
    {"frame_size_zero", [](Blob& b) { put32(b, entry(b, 2) + 8, 0); reseal_table(b); }, errc::corrupt_blob, "chunk 2: compressed size 0"},
    {"frame_size_huge", [](Blob& b) { put32(b, entry(b, 0) + 8, 0xffffffff); reseal_table(b); }, errc::corrupt_blob, "compressed size 4294967295"},
    {"frame_past_table", [](Blob& b) { put32(b, entry(b, 2) + 8, load_le32(b.data() + entry(b, 2) + 8) + 1); reseal_table(b); }, errc::corrupt_blob, "chunk 2: frame runs past"},
    {"frame_short", [](Blob& b) { put32(b, entry(b, 2) + 8, load_le32(b.data() + entry(b, 2) + 8) - 1); reseal_table(b); }, errc::corrupt_blob, "stray bytes"},
    {"entry_reserved", [](Blob& b) { put32(b, entry(b, 1) + 12, 1); reseal_table(b); }, errc::corrupt_blob, "chunk 1: reserved"},
};

INSTANTIATE_TEST_SUITE_P(Invariants, HeaderViolationTest, ::testing::ValuesIn(kViolations),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(BlobValidation, TruncationAtEveryByteIsRejected) {
  const Blob blob = sample_blob();
  for (size_t len = 0; len < blob.size(); ++len) {
    auto reader = open(Blob(blob.begin(), blob.begin() + static_cast<ptrdiff_t>(len)));
    ASSERT_FALSE(reader) << "truncated to " << len << " bytes";
    EXPECT_EQ(reader.error().code(), errc::corrupt_blob) << len;
  }
}

TEST(BlobValidation, EmptyAndGarbageFilesAreRejected) {
  EXPECT_FALSE(open(Blob{}));
  EXPECT_FALSE(open(Blob(128, std::byte{0})));
  const auto garbage = testing::random_bytes(5000, 77);
  auto reader = open(garbage);
  ASSERT_FALSE(reader);
  EXPECT_NE(reader.error().message().find("bad magic"), std::string::npos);
}

// Flipping any single bit anywhere either fails (open or read) or leaves the
// content byte-identical (a zstd header bit the decoder ignores); it never
// yields different bytes.
void expect_every_flip_caught(const Blob& blob) {
  auto original = read_all(blob);
  ASSERT_TRUE(original);
  size_t detected = 0;
  for (size_t i = 0; i < blob.size(); ++i) {
    Blob damaged = blob;
    damaged[i] ^= std::byte{static_cast<uint8_t>(1u << (i % 8))};
    auto got = read_all(damaged);
    if (!got) {
      ++detected;
      continue;
    }
    ASSERT_TRUE(got.value() == original.value()) << "flip at byte " << i << " changed the content silently";
  }
  EXPECT_GE(detected, blob.size() * 99 / 100) << "flips detected";
}

TEST(BlobValidation, BitFlipsInRandomContentAreCaught) { expect_every_flip_caught(sample_blob(false)); }
TEST(BlobValidation, BitFlipsInCompressedContentAreCaught) { expect_every_flip_caught(sample_blob(true)); }

TEST(BlobValidation, SwappedFramesFailTheChunkChecksum) {
  Blob blob = sample_blob(false);  // random content: chunks 0 and 1 have equal frame sizes
  const uint64_t off0 = get64(blob, entry(blob, 0)), off1 = get64(blob, entry(blob, 1));
  const uint32_t size0 = load_le32(blob.data() + entry(blob, 0) + 8);
  ASSERT_EQ(size0, load_le32(blob.data() + entry(blob, 1) + 8));
  std::swap_ranges(blob.begin() + static_cast<ptrdiff_t>(off0),
                   blob.begin() + static_cast<ptrdiff_t>(off0 + size0),
                   blob.begin() + static_cast<ptrdiff_t>(off1));
  auto reader = open(blob);
  ASSERT_TRUE(reader);
  std::vector<std::byte> chunk(4096);
  auto read = reader.value()->read_chunk(0, chunk);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code(), errc::checksum_mismatch);
  EXPECT_NE(read.error().message().find("chunk 0"), std::string::npos);
}

TEST(BlobValidation, FrameOfTheWrongLengthIsRejected) {
  // Chunk 2 holds 10000 - 8192 = 1808 bytes; give it chunk 0's frame (4096 bytes).
  Blob blob = sample_blob(false);
  const uint64_t off0 = get64(blob, entry(blob, 0));
  const uint32_t size0 = load_le32(blob.data() + entry(blob, 0) + 8);
  Blob frame0(blob.begin() + static_cast<ptrdiff_t>(off0), blob.begin() + static_cast<ptrdiff_t>(off0 + size0));
  const uint64_t off2 = get64(blob, entry(blob, 2));
  const uint64_t table = get64(blob, 40);
  Blob table_bytes(blob.begin() + static_cast<ptrdiff_t>(table), blob.end());
  blob.resize(off2);
  blob.insert(blob.end(), frame0.begin(), frame0.end());
  const uint64_t new_table = blob.size();
  blob.insert(blob.end(), table_bytes.begin(), table_bytes.end());
  put64(blob, 40, new_table);
  put32(blob, entry(blob, 2) + 8, size0);
  reseal_table(blob);
  auto reader = open(blob);
  ASSERT_TRUE(reader) << reader.error().message();
  std::vector<std::byte> chunk(1808);
  auto read = reader.value()->read_chunk(2, chunk);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code(), errc::corrupt_blob);
  EXPECT_NE(read.error().message().find("declares 4096 bytes, expected 1808"), std::string::npos)
      << read.error().message();
}

TEST(BlobValidation, ChunkIndexOutOfRangeIsAnError) {
  auto reader = open(sample_blob());
  ASSERT_TRUE(reader);
  EXPECT_FALSE(reader.value()->read_frame(3));
  EXPECT_FALSE(reader.value()->read_frame(std::numeric_limits<uint64_t>::max()));
}

}  // namespace
}  // namespace pagerfs
