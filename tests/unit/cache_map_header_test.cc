// The cache map header (layers/cache_map_header.h): its bytes are those of
// man/pagerfs-store.5 (a cache written by an earlier build stays readable),
// and every damage the reader must notice is noticed.
#include "layers/cache_map_header.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstring>

#include "util/byte_codec.h"

namespace pagerfs {
namespace {

constexpr uint32_t kSectorSize = 4096;

TEST(CacheMapHeader, BytesAreTheDocumentedLayout) {
  const auto h = encode_map_header({kSectorSize, 0x0102030405060708});
  // Off 0 magic, 8 u32 version, 12 u32 sector_size, 16 u64 blob_size,
  // 24 32 zero bytes, 56 u64 XXH3-64 of bytes 0 to 55.
  EXPECT_EQ(std::memcmp(h.data(), "PGFSCMAP", 8), 0);
  EXPECT_EQ(load_le32(h.data() + 8), 1u);
  EXPECT_EQ(load_le32(h.data() + 12), kSectorSize);
  EXPECT_EQ(load_le64(h.data() + 16), 0x0102030405060708u);
  for (size_t i = 24; i < 56; ++i) EXPECT_EQ(h[i], std::byte{0}) << i;
  EXPECT_EQ(load_le64(h.data() + 56), XXH3_64bits(h.data(), 56));
}

TEST(CacheMapHeader, RoundTrips) {
  const auto h = encode_map_header({kSectorSize, 12345});
  auto decoded = decode_map_header(h, kSectorSize);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded.value().sector_size, kSectorSize);
  EXPECT_EQ(decoded.value().blob_size, 12345u);
}

TEST(CacheMapHeader, DamageIsNoticed) {
  const auto good = encode_map_header({kSectorSize, 12345});
  auto fails = [](std::span<const std::byte> bytes, const char* message) {
    auto decoded = decode_map_header(bytes, kSectorSize);
    ASSERT_FALSE(decoded);
    EXPECT_EQ(decoded.error().code(), errc::corrupt_blob);
    EXPECT_EQ(decoded.error().message(), message);
  };
  for (size_t length = 0; length < good.size(); ++length) {
    fails(std::span(good).first(length), "bad map header");
  }
  for (const size_t at : {0, 8, 16, 56}) {
    auto bad = good;
    bad[at] ^= std::byte{1};
    fails(bad, "bad map header");
  }
  auto version = good;
  store_le32(version.data() + 8, 2);
  store_le64(version.data() + 56, XXH3_64bits(version.data(), 56));
  fails(version, "bad map header");
  fails(encode_map_header({2 * kSectorSize, 12345}), "map of another sector size");
}

}  // namespace
}  // namespace pagerfs
