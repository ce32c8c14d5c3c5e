#include "pagerfs/pager/page_range.h"

#include <gtest/gtest.h>

namespace pagerfs::range {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
constexpr uint64_t K = 1024;

TEST(PageRange, Rounding) {
  struct Case { uint64_t x, align, down, up; };
  const Case cases[] = {
      {0, 4096, 0, 0},          {1, 4096, 0, 4096},        {4095, 4096, 0, 4096},
      {4096, 4096, 4096, 4096}, {4097, 4096, 4096, 8192},  {kMax, 4096, kMax - 4095, kMax - 4095},
      {kMax - 4095, 4096, kMax - 4095, kMax - 4095},       {kMax - 4096, 4096, kMax - 8191, kMax - 4095},
      {kMax, 1, kMax, kMax},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(round_down(c.x, c.align), c.down) << c.x;
    EXPECT_EQ(round_up(c.x, c.align), c.up) << c.x;
  }
  EXPECT_EQ(saturating_add(kMax - 1, 5), kMax);
  EXPECT_EQ(saturating_add(3, 4), 7u);
  EXPECT_EQ(page_aligned_size(0), 0u);
  EXPECT_EQ(page_aligned_size(4096 - 42), 4096u);
  EXPECT_EQ(page_aligned_size(kMax), kMax - 4095);
}

struct WindowCase {
  const char* name;
  uint64_t offset, length, ra, byte_size;
  ByteRange want, window;
};

class WindowTest : public ::testing::TestWithParam<WindowCase> {};

TEST_P(WindowTest, Window) {
  const WindowCase& c = GetParam();
  EXPECT_EQ(requested_range(c.offset, c.length, c.byte_size), c.want);
  EXPECT_EQ(readahead_window(c.offset, c.length, c.ra, c.byte_size), c.window);
  const ByteRange w = readahead_window(c.offset, c.length, c.ra, c.byte_size);
  EXPECT_LE(w.end, page_aligned_size(c.byte_size)) << "never past the page-aligned size";
  if (!c.want.empty()) {
    EXPECT_TRUE(w.begin <= c.want.begin && c.want.end <= w.end) << "covers the request";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, WindowTest,
    ::testing::Values(
        WindowCase{"empty_blob", 0, 4096, 128 * K, 0, {0, 0}, {0, 0}},
        WindowCase{"one_byte", 0, 4096, 128 * K, 1, {0, 4096}, {0, 4096}},
        WindowCase{"page_minus_42", 100, 10, 128 * K, 4096 - 42, {100, 110}, {0, 4096}},
        WindowCase{"tail_page", 4000, 4096, 128 * K, 4096 - 42, {4000, 4096}, {0, 4096}},
        WindowCase{"at_end", 4096, 4096, 128 * K, 4096 - 42, {4096, 4096}, {4096, 4096}},
        WindowCase{"past_end", 1 << 30, 4096, 128 * K, 4096, {4096, 4096}, {4096, 4096}},
        WindowCase{"middle", 300 * K, 4 * K, 128 * K, 10 << 20, {300 * K, 304 * K}, {256 * K, 384 * K}},
        WindowCase{"straddle", 127 * K, 2 * K, 128 * K, 10 << 20, {127 * K, 129 * K}, {0, 256 * K}},
        WindowCase{"chunk_minus_1", 0, 1 << 20, 128 * K, 128 * K - 1, {0, 128 * K}, {0, 128 * K}},
        WindowCase{"chunk_plus_1", 128 * K, 4096, 128 * K, 128 * K + 1, {128 * K, 128 * K + 4096}, {128 * K, 128 * K + 4096}},
        WindowCase{"huge_length", 4096, kMax, 128 * K, 1 << 20, {4096, 1 << 20}, {0, 1 << 20}},
        WindowCase{"offset_near_max", kMax - 10, 100, 128 * K, kMaxByteSize, {kMaxByteSize, kMaxByteSize},
                   {kMaxByteSize, kMaxByteSize}},
        WindowCase{"length_near_max", kMaxByteSize - 10, kMax - 5, 128 * K, kMaxByteSize,
                   {kMaxByteSize - 10, kMaxByteSize}, {kMaxByteSize - 128 * K, kMaxByteSize}},
        WindowCase{"huge_blob_end", kMaxByteSize - 5000, 1000, 128 * K, kMaxByteSize - 4200,
                   {kMaxByteSize - 5000, kMaxByteSize - 4096}, {kMaxByteSize - 128 * K, kMaxByteSize - 4096}},
        WindowCase{"huge_blob_tail", kMaxByteSize - 4100, kMax, 128 * K, kMaxByteSize - 4200,
                   {kMaxByteSize - 4100, kMaxByteSize - 4096}, {kMaxByteSize - 128 * K, kMaxByteSize - 4096}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(PageRange, ChunksFor) {
  const uint64_t cs = 64 * K;
  EXPECT_EQ(chunks_for({0, 0}, cs, 100), (ChunkSpan{}));
  EXPECT_EQ(chunks_for({0, 4096}, cs, 0), (ChunkSpan{}));
  EXPECT_EQ(chunks_for({0, 4096}, cs, 1), (ChunkSpan{0, 1}));
  EXPECT_EQ(chunks_for({cs - 1, cs + 1}, cs, 10 * cs), (ChunkSpan{0, 2}));
  EXPECT_EQ(chunks_for({cs, 2 * cs}, cs, 10 * cs), (ChunkSpan{1, 2}));
  // Bytes of the last page past byte_size belong to no chunk.
  EXPECT_EQ(chunks_for({cs + 1, cs + 4096}, cs, cs + 1), (ChunkSpan{}));
  EXPECT_EQ(chunks_for({cs, cs + 4096}, cs, cs + 1), (ChunkSpan{1, 2}));
  EXPECT_EQ(chunks_for({0, kMax}, cs, kMax), (ChunkSpan{0, kMax / cs + 1}));
  EXPECT_EQ(chunk_bytes(1, cs, cs + 1), (ByteRange{cs, cs + 1}));
  EXPECT_EQ(chunk_bytes(kMax / cs, cs, kMax), (ByteRange{kMax / cs * cs, kMax}));
  EXPECT_EQ(intersect({0, 10}, {5, 20}), (ByteRange{5, 10}));
  EXPECT_TRUE(intersect({0, 10}, {10, 20}).empty());
}

}  // namespace
}  // namespace pagerfs::range
