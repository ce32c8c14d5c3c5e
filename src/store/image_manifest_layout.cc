#include "store/image_manifest_layout.h"

#include <xxhash.h>

#include <cassert>

#include "util/byte_codec.h"

namespace pagerfs::image {
namespace {

constexpr size_t kHeaderChecksumOffset = kHeaderSize - 8;
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
      .u64(h.entry_count)
      .u64(h.digest_count)
      .u64(h.strings_size)
      .u64(h.body_checksum)
      .u32(h.flags)
      .u32(h.reserved);
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
  h.entry_count = r.u64();
  h.digest_count = r.u64();
  h.strings_size = r.u64();
  h.body_checksum = r.u64();
  h.flags = r.u32();
  h.reserved = r.u32();
  h.header_checksum = r.u64();
  assert(r.ok() && r.remaining() == 0);
  return h;
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
