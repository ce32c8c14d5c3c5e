// util/byte_codec.h: the little-endian cursors every on-disk structure is
// written and read with. Byte order is checked against bytes spelled out by
// hand; truncation against every shorter buffer.
#include "util/byte_codec.h"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pagerfs {
namespace {

using Bytes = std::vector<std::byte>;

Bytes bytes_of(std::initializer_list<int> values) {
  Bytes out;
  for (const int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

// One field of each kind, in this order.
constexpr size_t kRecordSize = 1 + 2 + 4 + 8 + 8 + 3 + 2 + 4;

void write_record(ByteWriter& w) {
  w.u8(0x01)
      .u16(0x0302)
      .u32(0x07060504)
      .u64(0x0f0e0d0c0b0a0908)
      .i64(-2)
      .bytes(std::array<uint8_t, 3>{0x10, 0x11, 0x12})
      .chars("AB")
      .zeros(4);
}

TEST(ByteCodec, WritesLittleEndianInFieldOrder) {
  Bytes out(kRecordSize, std::byte{0xff});
  ByteWriter w(out);
  write_record(w);
  EXPECT_TRUE(w.filled());
  EXPECT_EQ(w.position(), kRecordSize);
  EXPECT_EQ(out, bytes_of({0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,
                           0x0d, 0x0e, 0x0f, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x10,
                           0x11, 0x12, 'A', 'B', 0, 0, 0, 0}));
}

TEST(ByteCodec, ReadsLittleEndianInFieldOrder) {
  const Bytes in = bytes_of({0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
                             0x0c, 0x0d, 0x0e, 0x0f, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                             0xff, 0x10, 0x11, 0x12, 'A', 'B', 0, 0, 0, 0});
  ByteReader r(in);
  EXPECT_EQ(r.u8(), 0x01);
  EXPECT_EQ(r.u16(), 0x0302);
  EXPECT_EQ(r.u32(), 0x07060504u);
  EXPECT_EQ(r.u64(), 0x0f0e0d0c0b0a0908u);
  EXPECT_EQ(r.i64(), -2);
  EXPECT_EQ((r.array<3>()), (std::array<uint8_t, 3>{0x10, 0x11, 0x12}));
  EXPECT_EQ(r.chars(2), "AB");
  EXPECT_EQ(r.remaining(), 4u);
  r.skip(4);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.position(), kRecordSize);
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(ByteCodec, RoundTripsExtremeValues) {
  Bytes buf(2 + 4 + 8 + 8 + 8);
  ByteWriter w(buf);
  w.u16(UINT16_MAX).u32(UINT32_MAX).u64(UINT64_MAX).i64(INT64_MIN).i64(INT64_MAX);
  ASSERT_TRUE(w.filled());
  ByteReader r(buf);
  EXPECT_EQ(r.u16(), UINT16_MAX);
  EXPECT_EQ(r.u32(), UINT32_MAX);
  EXPECT_EQ(r.u64(), UINT64_MAX);
  EXPECT_EQ(r.i64(), INT64_MIN);
  EXPECT_EQ(r.i64(), INT64_MAX);
  EXPECT_TRUE(r.ok());
}

TEST(ByteCodec, ReadsViewIntoTheInput) {
  const Bytes in = bytes_of({1, 2, 3, 4});
  ByteReader r(in);
  r.skip(1);
  const std::span<const std::byte> middle = r.bytes(2);
  ASSERT_EQ(middle.size(), 2u);
  EXPECT_EQ(middle.data(), in.data() + 1);
}

TEST(ByteCodec, EveryTruncatedReadFailsWithoutReadingPastTheEnd) {
  Bytes full(kRecordSize);
  ByteWriter w(full);
  write_record(w);
  for (size_t length = 0; length < kRecordSize; ++length) {
    SCOPED_TRACE(length);
    // A copy of exactly `length` bytes, so that ASan sees a read past it.
    const Bytes in(full.begin(), full.begin() + static_cast<ptrdiff_t>(length));
    ByteReader r(in);
    r.u8();
    r.u16();
    r.u32();
    r.u64();
    r.i64();
    r.array<3>();
    r.chars(2);
    r.skip(4);
    EXPECT_FALSE(r.ok());
    EXPECT_LE(r.position(), length);
  }
}

TEST(ByteCodec, AReadPastTheEndYieldsZerosAndStaysFailed) {
  const Bytes in = bytes_of({0xaa, 0xbb, 0xcc});
  ByteReader r(in);
  EXPECT_EQ(r.u32(), 0u);
  EXPECT_FALSE(r.ok());
  // What would still fit is not read either: the reader stays failed.
  EXPECT_EQ(r.u8(), 0u);
  EXPECT_TRUE(r.bytes(1).empty());
  EXPECT_EQ(r.chars(1), "");
  EXPECT_EQ((r.array<2>()), (std::array<uint8_t, 2>{}));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.position(), 0u);
}

TEST(ByteCodec, AHugeLengthDoesNotWrap) {
  const Bytes in = bytes_of({1, 2, 3, 4});
  ByteReader r(in);
  r.skip(2);
  EXPECT_TRUE(r.bytes(SIZE_MAX).empty());
  EXPECT_FALSE(r.ok());
}

TEST(ByteCodec, AWriteThatDoesNotFitWritesNothing) {
  for (size_t length = 0; length < kRecordSize; ++length) {
    SCOPED_TRACE(length);
    Bytes out(length, std::byte{0xee});
    ByteWriter w(out);
    write_record(w);
    EXPECT_FALSE(w.ok());
    EXPECT_FALSE(w.filled());
  }
  Bytes out(3, std::byte{0xee});
  ByteWriter w(out);
  w.u16(0x0201).u16(0x0403).u8(0x05);
  EXPECT_FALSE(w.ok());
  EXPECT_EQ(out, bytes_of({0x01, 0x02, 0xee}));  // the u8 after the failed u16 is not written
}

TEST(ByteCodec, FilledMeansExactlyTheBuffer) {
  Bytes out(4);
  ByteWriter w(out);
  w.u16(1);
  EXPECT_TRUE(w.ok());
  EXPECT_FALSE(w.filled());
  EXPECT_EQ(w.remaining(), 2u);
  w.u16(2);
  EXPECT_TRUE(w.filled());
}

TEST(ByteCodec, SingleFieldPrimitivesAgreeWithTheCursors) {
  Bytes buf(8);
  store_le32(buf.data() + 2, 0x11223344);
  EXPECT_EQ(buf, bytes_of({0, 0, 0x44, 0x33, 0x22, 0x11, 0, 0}));
  EXPECT_EQ(load_le32(buf.data() + 2), 0x11223344u);
  store_le16(buf.data(), 0xbeef);
  store_le64(buf.data(), load_le64(buf.data()));
  ByteReader r(buf);
  EXPECT_EQ(r.u16(), 0xbeef);
  EXPECT_EQ(load_le16(buf.data()), 0xbeef);
}

}  // namespace
}  // namespace pagerfs
