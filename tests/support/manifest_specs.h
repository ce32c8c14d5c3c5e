// Building image manifests in tests: EntrySpecs of every type in one call
// each, encode and parse that fail the test on an error, and a sample tree
// with every entry type. Shared by the image_manifest*_test.cc files.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xxhash.h>

#include <cstring>

#include "pagerfs/store/image_manifest.h"
#include "util/byte_codec.h"

namespace pagerfs::image::specs {

using Bytes = std::vector<std::byte>;

inline Digest digest_of(uint8_t seed) {
  std::array<uint8_t, Digest::kSize> raw{};
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(seed * 31 + i * 7);
  return Digest(raw);
}

inline EntrySpec dir(std::string path, uint32_t perm = 0755) {
  EntrySpec e;
  e.path = std::move(path);
  e.type = EntryType::directory;
  e.mode = S_IFDIR | perm;
  return e;
}

inline EntrySpec file(std::string path, uint8_t content, uint64_t size = 100) {
  EntrySpec e;
  e.path = std::move(path);
  e.type = EntryType::file;
  e.mode = S_IFREG | 0644;
  e.size = size;
  e.digest = digest_of(content);
  return e;
}

inline EntrySpec symlink(std::string path, std::string target) {
  EntrySpec e;
  e.path = std::move(path);
  e.type = EntryType::symlink;
  e.mode = S_IFLNK | 0777;
  e.symlink_target = std::move(target);
  return e;
}

inline EntrySpec hardlink(std::string path, std::string target) {
  EntrySpec e;
  e.path = std::move(path);
  e.type = EntryType::hardlink;
  e.hardlink_target = std::move(target);
  return e;
}

inline EntrySpec special(std::string path, uint32_t mode, uint64_t rdev = 0) {
  EntrySpec e;
  e.path = std::move(path);
  e.type = EntryType::special;
  e.mode = mode;
  e.rdev = rdev;
  return e;
}

// The BlobRecords for `specs` with made-up digests: every whole-file blob
// the size of its file, every pack as long as its furthest content, table
// digests derived from the blob's digest (any value does for the manifest).
inline std::vector<BlobRecord> records_for(const std::vector<EntrySpec>& specs) {
  std::vector<BlobRecord> out;
  auto table_of = [](const Digest& d) {
    std::array<uint8_t, Digest::kSize> raw = d.bytes();
    for (uint8_t& b : raw) b = static_cast<uint8_t>(b ^ 0x5a);
    return Digest(raw);
  };
  for (const EntrySpec& e : specs) {
    if (e.type != EntryType::file) continue;
    if (!e.packed) {
      out.push_back({.digest = e.digest, .table_digest = table_of(e.digest), .byte_size = e.size});
      continue;
    }
    const uint64_t end = e.packed->offset + e.size;
    auto it = std::find_if(out.begin(), out.end(), [&](const BlobRecord& r) { return r.digest == e.packed->blob; });
    if (it == out.end()) {
      out.push_back({.digest = e.packed->blob, .table_digest = table_of(e.packed->blob), .byte_size = end});
    } else {
      it->byte_size = std::max(it->byte_size, end);
    }
  }
  return out;
}

// encode(specs, records_for(specs)).
inline Result<Bytes> encode(std::vector<EntrySpec> specs) {
  auto records = records_for(specs);
  return image::encode(std::move(specs), std::move(records));
}

inline Bytes encode_ok(std::vector<EntrySpec> specs) {
  auto bytes = encode(std::move(specs));
  EXPECT_TRUE(bytes) << bytes.error().message();
  return bytes ? std::move(bytes).value() : Bytes{};
}

// The version 1 bytes of the version 2 manifest `v2` (which names whole
// blobs only): what the version 1 encoder wrote for the same tree. Version 1
// is a 64-byte header, the entries (nlink and a directory's ref 0), the
// digest table (the content digests) and the strings.
inline Bytes to_v1(const Bytes& v2) {
  auto m = Manifest::parse(v2);
  EXPECT_TRUE(m) << m.error().message();
  if (!m) return {};
  const uint64_t n = load_le64(v2.data() + 24), contents = load_le64(v2.data() + 32),
                 blobs = load_le64(v2.data() + 40), strings = load_le64(v2.data() + 48),
                 pages = load_le64(v2.data() + 56);
  const uint64_t body = 128 + pages * 8;
  Bytes out(64 + n * 64 + contents * 32 + strings);
  for (uint64_t i = 0; i < n; ++i) {
    std::byte* e = out.data() + 64 + i * 64;
    std::memcpy(e, v2.data() + body + i * 64, 64);
    store_le32(e + 60, 0);                                            // nlink
    if (static_cast<uint8_t>(e[10]) == 1) store_le64(e + 48, 0);      // a directory's ref
  }
  for (uint64_t k = 0; k < contents; ++k) {
    std::memcpy(out.data() + 64 + n * 64 + k * 32, v2.data() + body + n * 64 + k * 56, 32);
  }
  std::memcpy(out.data() + 64 + n * 64 + contents * 32, v2.data() + body + n * 64 + contents * 56 + blobs * 72,
              strings);
  const std::array<uint8_t, 8> magic = kMagic;
  std::memcpy(out.data(), magic.data(), 8);
  store_le32(out.data() + 8, 1);
  store_le32(out.data() + 12, 64);
  store_le64(out.data() + 16, n);
  store_le64(out.data() + 24, contents);
  store_le64(out.data() + 32, strings);
  store_le64(out.data() + 40, XXH3_64bits(out.data() + 64, out.size() - 64));
  store_le64(out.data() + 56, XXH3_64bits(out.data(), 56));
  return out;
}

inline Bytes encode_v1_ok(std::vector<EntrySpec> specs) { return to_v1(encode_ok(std::move(specs))); }

inline Manifest parse_ok(Bytes bytes) {
  auto m = Manifest::parse(std::move(bytes));
  if (!m) ADD_FAILURE() << m.error().message();
  return std::move(m).value();
}


inline uint32_t at(const Manifest& m, std::string_view path) {
  const auto index = m.find(path);
  EXPECT_TRUE(index && index.value()) << path;
  return index && index.value() ? *index.value() : 0;
}

// The entry at `path`, failing the test on a malformed entry.
inline std::optional<uint32_t> find_ok(const Manifest& m, std::string_view path) {
  auto index = m.find(path);
  EXPECT_TRUE(index) << index.error().message();
  return index ? index.value() : std::nullopt;
}

inline Content content_ok(const Manifest& m, const Entry& file) {
  auto c = m.content(file);
  EXPECT_TRUE(c) << c.error().message();
  return c ? c.value() : Content{};
}

// The link count stat shows for entry `index` (a hardlink: its target's).
inline uint32_t nlink_of(const Manifest& m, uint32_t index) {
  auto target = m.resolve(index);
  EXPECT_TRUE(target) << target.error().message();
  return target ? m.entry(target.value()).value().nlink : 0;
}

// Entry `index` of a manifest that must be well-formed there.
inline Entry entry_ok(const Manifest& m, uint32_t index) {
  auto e = m.entry(index);
  EXPECT_TRUE(e) << e.error().message();
  return e ? e.value() : Entry{};
}

// Every entry type, xattrs, two hard links to one file, a shared digest.
inline std::vector<EntrySpec> every_type() {
  std::vector<EntrySpec> specs;
  EntrySpec root = dir("", 0750);
  root.uid = 1000;
  root.gid = 100;
  root.mtime_sec = 1700000000;
  root.mtime_nsec = 123456789;
  root.xattrs = {{"user.z", "last"}, {"user.a", "first"}};
  specs.push_back(root);
  specs.push_back(dir("usr"));
  specs.push_back(dir("usr/lib"));
  specs.push_back(dir("usr/share", 0700));
  EntrySpec libc = file("usr/lib/libc.so.6", 1, 2'000'000);
  libc.mtime_sec = -5;  // before the epoch
  libc.mtime_nsec = 999'999'999;
  libc.xattrs = {{"security.capability", std::string("\x01\x00\x00\x02", 4)}, {"user.empty", ""}};
  specs.push_back(libc);
  specs.push_back(file("usr/lib/empty", 2, 0));
  specs.push_back(file("usr/share/copy-of-libc", 1, 2'000'000));
  specs.push_back(symlink("usr/lib/libc.so", "libc.so.6"));
  specs.push_back(hardlink("usr/libc-link", "usr/lib/libc.so.6"));
  specs.push_back(hardlink("libc-link2", "usr/lib/libc.so.6"));
  specs.push_back(special("dev-null", S_IFCHR | 0666, 0x0103));
  specs.push_back(special("disk", S_IFBLK | 0660, 0x0800));
  specs.push_back(special("fifo", S_IFIFO | 0600));
  specs.push_back(special("sock", S_IFSOCK | 0755));
  specs.push_back(dir("empty-dir"));
  return specs;
}

// The name of a parameterised case: its `name`, with every character but
// letters and digits made '_' (what gtest accepts).
template <class Case>
std::string param_name(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.name;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

}  // namespace pagerfs::image::specs
