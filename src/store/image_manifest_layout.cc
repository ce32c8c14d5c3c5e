#include "store/image_manifest_layout.h"

#include <xxhash.h>

#include <cassert>

#include "util/byte_codec.h"

namespace pagerfs::image {
namespace {

static_assert(kDigestSize == Digest::kSize);

std::span<const std::byte> as_bytes(std::string_view s) noexcept {
  return std::as_bytes(std::span(s.data(), s.size()));
}

}  // namespace

uint64_t header_checksum(std::span<const std::byte> manifest) noexcept {
  return XXH3_64bits(manifest.data(), kHeaderChecksumOffset);
}

void write_header(const StoredHeader& h, std::span<std::byte> manifest) noexcept {
  ByteWriter w(manifest.first(kHeaderSize));
  w.bytes(h.magic)
      .u32(h.version)
      .u32(h.header_size)
      .u32(h.page_size)
      .u32(h.flags)
      .u64(h.entry_count)
      .u64(h.content_count)
      .u64(h.blob_count)
      .u64(h.strings_size)
      .u64(h.page_count)
      .u64(h.page_table_checksum)
      .bytes(h.reserved);
  assert(w.position() == kHeaderChecksumOffset);
  w.u64(header_checksum(manifest));
  assert(w.filled());
}

StoredHeader read_header(std::span<const std::byte> manifest) noexcept {
  ByteReader r(manifest.first(kHeaderSize));
  StoredHeader h;
  h.magic = r.array<8>();
  h.version = r.u32();
  h.header_size = r.u32();
  h.page_size = r.u32();
  h.flags = r.u32();
  h.entry_count = r.u64();
  h.content_count = r.u64();
  h.blob_count = r.u64();
  h.strings_size = r.u64();
  h.page_count = r.u64();
  h.page_table_checksum = r.u64();
  h.reserved = r.array<48>();
  h.header_checksum = r.u64();
  assert(r.ok() && r.remaining() == 0);
  return h;
}

void write_content(const StoredContent& c, std::span<std::byte> at) noexcept {
  ByteWriter w(at.first(kContentRecordSize));
  w.bytes(c.digest.bytes()).u32(c.blob).u32(c.reserved).u64(c.offset).u64(c.length);
  assert(w.filled());
}

StoredContent read_content(std::span<const std::byte> at) noexcept {
  ByteReader r(at.first(kContentRecordSize));
  StoredContent c;
  c.digest = Digest(r.array<Digest::kSize>());
  c.blob = r.u32();
  c.reserved = r.u32();
  c.offset = r.u64();
  c.length = r.u64();
  assert(r.ok() && r.remaining() == 0);
  return c;
}

void write_blob_record(const BlobRecord& b, std::span<std::byte> at) noexcept {
  ByteWriter w(at.first(kBlobRecordSize));
  w.bytes(b.digest.bytes()).bytes(b.table_digest.bytes()).u64(b.byte_size);
  assert(w.filled());
}

BlobRecord read_blob_record(std::span<const std::byte> at) noexcept {
  ByteReader r(at.first(kBlobRecordSize));
  BlobRecord b;
  b.digest = Digest(r.array<Digest::kSize>());
  b.table_digest = Digest(r.array<Digest::kSize>());
  b.byte_size = r.u64();
  assert(r.ok() && r.remaining() == 0);
  return b;
}

XattrRecordRead read_xattr_record(std::string_view records) noexcept {
  ByteReader r(as_bytes(records));
  XattrRecordRead out;
  out.name_length = r.u8();
  out.record.name = r.chars(out.name_length);
  const uint32_t value_length = r.u32();
  out.record.value = r.chars(value_length);
  out.record.length = r.position();
  out.complete = r.ok();
  return out;
}

void append_xattr_record(std::string& records, const Xattr& xattr) {
  assert(xattr.name.size() <= 255 && xattr.value.size() <= UINT32_MAX);
  const size_t at = records.size();
  records.resize(at + 1 + xattr.name.size() + 4 + xattr.value.size());
  ByteWriter w(std::as_writable_bytes(std::span(records)).subspan(at));
  w.u8(static_cast<uint8_t>(xattr.name.size()))
      .chars(xattr.name)
      .u32(static_cast<uint32_t>(xattr.value.size()))
      .chars(xattr.value);
  assert(w.filled());
}

}  // namespace pagerfs::image
