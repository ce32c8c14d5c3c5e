// Blob format v2: each seek entry carries its chunk's SHA-256, the table
// digest anchors the seek table; v1 blobs (24-byte entries) keep reading.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/format/blob_writer.h"
#include "pagerfs/format/chunk_codec.h"
#include "support/blob_forgery.h"
#include "support/test_data.h"
#include "util/byte_codec.h"

namespace pagerfs {
namespace {

using Blob = std::vector<std::byte>;

struct Packed {
  Blob file;
  WrittenBlob written;
};

Packed pack(const std::vector<std::byte>& content, uint32_t chunk_size = 4096) {
  Packed p;
  auto input = memory_input_stream(content);
  auto output = memory_writable_file(&p.file);
  BlobWriterOptions options;
  options.chunk_size = chunk_size;
  auto written = write_blob(*input, *output, options);
  EXPECT_TRUE(written) << written.error().message();
  if (written) p.written = written.value();
  return p;
}

std::unique_ptr<BlobReader> open_blob(const Blob& b) {
  auto reader = BlobReader::open(memory_random_access_file(b));
  EXPECT_TRUE(reader) << reader.error().message();
  return reader ? std::move(reader).value() : nullptr;
}

// The table digest computed from the specification (pagerfs-store(5)), not
// from format::table_digest: the two must agree.
Digest table_digest_by_hand(const Blob& file) {
  const uint64_t table = testing::seek_table_offset(file);
  std::vector<std::byte> bytes;
  auto append = [&](size_t offset, size_t n) {
    bytes.insert(bytes.end(), file.begin() + static_cast<ptrdiff_t>(offset),
                 file.begin() + static_cast<ptrdiff_t>(offset + n));
  };
  append(16, 8);   // byte_size
  append(24, 4);   // chunk_size
  append(28, 4);   // codec
  append(32, 8);   // chunk_count
  append(56, 32);  // content digest
  append(table, file.size() - table);
  return Sha256::of(bytes);
}

// The content of tests/data/v1-blob (see its README).
std::vector<std::byte> v1_content() {
  std::vector<std::byte> out(10000);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::byte>((i * 7 + i / 300) % 251);
  return out;
}

Blob v1_blob_file() {
  const char* root = std::getenv("PAGERFS_SOURCE_ROOT");
  EXPECT_NE(root, nullptr) << "run through meson test";
  if (root == nullptr) return {};
  std::ifstream in(std::string(root) +
                       "/tests/data/v1-blob/e17de274f118f08e1f1c5e4645e0e667e004d2713f46211fe12ff015aa667c9e",
                   std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Blob out(chars.size());
  std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}

TEST(BlobV2, RoundTripCarriesEveryChunksSha256) {
  for (bool compressible : {false, true}) {
    const auto content = compressible ? testing::compressible_bytes(10000) : testing::random_bytes(10000);
    const Packed p = pack(content);
    EXPECT_EQ(p.written.header.version, format::kVersion2);
    auto reader = open_blob(p.file);
    ASSERT_NE(reader, nullptr);
    EXPECT_EQ(reader->header().version, 2);
    EXPECT_EQ(load_le16(p.file.data() + testing::kHeaderVersionOffset), 2);
    ASSERT_EQ(reader->chunk_count(), 3u);
    EXPECT_EQ(reader->header().seek_table_size(), 3 * format::kSeekEntrySizeV2);
    for (uint64_t c = 0; c < 3; ++c) {
      const auto chunk = std::span(content).subspan(c * 4096, reader->header().chunk_length(c));
      EXPECT_EQ(reader->chunks()[c].sha256, Sha256::of(chunk)) << "chunk " << c;
      EXPECT_EQ(reader->chunks()[c].checksum, format::chunk_checksum(chunk));
    }
    std::vector<std::byte> back(content.size());
    ASSERT_TRUE(reader->read(0, back));
    EXPECT_TRUE(back == content);
    // The anchor: what the writer returned, what the reader computes, and
    // the specification's definition, all one.
    EXPECT_EQ(reader->table_digest(), p.written.table_digest);
    EXPECT_EQ(reader->table_digest(), table_digest_by_hand(p.file));
    EXPECT_NE(reader->table_digest(), Digest{});
  }
}

TEST(BlobV2, EmptyContentHasAnEmptyTableAndADigest) {
  const Packed p = pack({});
  auto reader = open_blob(p.file);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->chunk_count(), 0u);
  EXPECT_EQ(reader->table_digest(), table_digest_by_hand(p.file));
}

TEST(BlobV2, TheTableDigestChangesWithTheTableAndTheHeaderFields) {
  const auto content = testing::random_bytes(10000);
  const Packed a = pack(content, 4096);
  const Packed b = pack(content, 8192);
  EXPECT_EQ(a.written.header.digest, b.written.header.digest);
  EXPECT_NE(a.written.table_digest, b.written.table_digest) << "same content, other chunking";
  Blob forged = a.file;
  testing::forge_chunk_sha256(forged, 1, Digest{});
  auto reader = open_blob(forged);
  ASSERT_NE(reader, nullptr);
  EXPECT_NE(reader->table_digest(), a.written.table_digest);
}

TEST(BlobV2, AV1BlobWrittenBeforeV2StillReads) {
  const Blob file = v1_blob_file();
  ASSERT_EQ(file.size(), 1172u);
  auto reader = open_blob(file);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->header().version, format::kVersion1);
  EXPECT_FALSE(reader->header().has_chunk_sha256());
  EXPECT_EQ(reader->header().seek_table_size(), 3 * format::kSeekEntrySizeV1);
  const auto content = v1_content();
  EXPECT_EQ(reader->header().digest, Sha256::of(content));
  for (const auto& e : reader->chunks()) EXPECT_EQ(e.sha256, Digest{}) << "v1 has no chunk SHA-256";
  std::vector<std::byte> back(content.size());
  ASSERT_TRUE(reader->read(0, back));
  EXPECT_TRUE(back == content);
  // Defined for v1 too, and not the v2 blob's of the same content.
  EXPECT_EQ(reader->table_digest(), table_digest_by_hand(file));
  EXPECT_NE(reader->table_digest(), pack(content).written.table_digest);
}

TEST(BlobV2, AV1BlobKeepsItsXxh3Check) {
  Blob file = v1_blob_file();
  ASSERT_FALSE(file.empty());
  // Damage chunk 1's frame: a v1 chunk is still checked by XXH3 (or zstd).
  auto reader = open_blob(file);
  ASSERT_NE(reader, nullptr);
  const format::ChunkEntry e = reader->chunks()[1];
  file[e.offset + e.compressed_size / 2] ^= std::byte{0x04};
  reader = open_blob(file);
  ASSERT_NE(reader, nullptr);
  std::vector<std::byte> chunk(4096);
  EXPECT_FALSE(reader->read_chunk(1, chunk));
}

// A chunk whose bytes differ from the anchored ones but whose XXH3 was made
// to match (the forger rewrote it): SHA-256 catches it, XXH3 alone cannot.
TEST(BlobV2, AForgedChunkWithAMatchingXxh3FailsItsSha256) {
  const auto content = testing::random_bytes(10000);
  auto other = content;
  other[5000] ^= std::byte{0xff};  // chunk 1
  const Packed genuine = pack(content);
  Packed forged = pack(other);
  auto genuine_reader = open_blob(genuine.file);
  ASSERT_NE(genuine_reader, nullptr);
  testing::forge_chunk_sha256(forged.file, 1, genuine_reader->chunks()[1].sha256);
  testing::forge_header_digest(forged.file, genuine.written.header.digest);
  auto reader = open_blob(forged.file);
  ASSERT_NE(reader, nullptr) << "the forgery passes every structural and XXH3 check";
  std::vector<std::byte> chunk(4096);
  EXPECT_TRUE(reader->read_chunk(0, chunk)) << "chunk 0 is genuine";
  auto read = reader->read_chunk(1, chunk);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code(), errc::digest_mismatch);
  EXPECT_EQ(to_errno(read.error()), EIO);
  EXPECT_NE(read.error().message().find("SHA-256"), std::string::npos) << read.error().message();
  // The XXH3-only check accepts it: the forgery is real.
  auto frame = reader->read_frame(1);
  ASSERT_TRUE(frame);
  EXPECT_TRUE(decompress_chunk(reader->header(), 1, reader->chunks()[1], frame.value(), chunk, ChunkVerify::xxh3));
  EXPECT_FALSE(decompress_chunk(reader->header(), 1, reader->chunks()[1], frame.value(), chunk, ChunkVerify::sha256));
  // And the forged table is not the genuine anchor.
  EXPECT_NE(reader->table_digest(), genuine.written.table_digest);
}

// Every byte of a small v2 blob flipped: open and read never crash, and never
// yield other content than the original.
TEST(BlobV2, EveryByteFlippedIsAnErrorOrTheSameContent) {
  const auto content = testing::compressible_bytes(10000);
  const Packed p = pack(content);
  for (size_t i = 0; i < p.file.size(); ++i) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
      Blob damaged = p.file;
      damaged[i] ^= std::byte{mask};
      auto reader = BlobReader::open(memory_random_access_file(damaged));
      if (!reader) continue;
      std::vector<std::byte> back(reader.value()->byte_size());
      if (reader.value()->byte_size() != content.size()) continue;
      auto read = reader.value()->read(0, back);
      if (read) {
        ASSERT_TRUE(back == content) << "flip " << int{mask} << " at byte " << i;
      }
      // The anchor always notices a changed table or header field.
      if (i >= testing::seek_table_offset(p.file)) {
        EXPECT_NE(reader.value()->table_digest(), p.written.table_digest) << i;
      }
    }
  }
}

// Forged SHA-256 fields (the table's XXH3 recomputed): every chunk whose
// claimed SHA-256 is wrong fails; with the fields intact every chunk reads.
TEST(BlobV2, EveryForgedSha256FieldIsCaught) {
  const auto content = testing::random_bytes(10000);
  const Packed p = pack(content);
  for (uint64_t c = 0; c < 3; ++c) {
    for (size_t byte : {size_t{0}, size_t{17}, size_t{31}}) {
      Blob forged = p.file;
      forged[testing::v2_entry(forged, c) + testing::kEntrySha256Offset + byte] ^= std::byte{1};
      testing::reseal(forged);
      auto reader = open_blob(forged);
      ASSERT_NE(reader, nullptr);
      std::vector<std::byte> back(content.size());
      auto read = reader->read(0, back);
      ASSERT_FALSE(read) << "chunk " << c << " byte " << byte;
      EXPECT_EQ(read.error().code(), errc::digest_mismatch);
    }
  }
}

}  // namespace
}  // namespace pagerfs
