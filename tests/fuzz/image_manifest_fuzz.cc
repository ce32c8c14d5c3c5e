// libFuzzer target: the input is a whole image manifest file (version 2, or
// version 1, which is converted).
//
// Manifest::parse runs on the raw bytes, and again with the page table and
// the checksums recomputed ("re-sealed", version 2; version 1's two
// checksums): random mutation almost never gets a checksum right, and
// without the fix-up the fuzzer would never get past them to the field
// checks. Whatever opens is walked through every accessor: a lookup may fail
// (a malformed entry is found on use) but never crash, loop, or return a bad
// name or an index out of range. If verify() accepts the manifest, every
// accessor must succeed and the invariants a reader (the FUSE layer) relies
// on hold: a tree rooted at entry 0, children slices that find_child agrees
// with, paths that resolve back to their entry, hard links that end at a
// non-directory, xattrs that list and look up alike, contents inside their
// blobs. Finally a verified manifest is rebuilt as EntrySpecs and
// BlobRecords and encoded: the encoder must accept it and reproduce the
// same tree. Seeds are manifests packed by pagerfsctl (see scripts/fuzz).
#include <xxhash.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/store/image_manifest.h"
#include "util/byte_codec.h"

namespace {

namespace image = pagerfs::image;
using pagerfs::store_le64;

using pagerfs::load_le32;
using pagerfs::load_le64;

// Recomputes the checksums in place (version 1: body and header; version
// 2: the page table, its checksum and the header's). Returns whether
// anything changed.
bool reseal(std::vector<std::byte>& bytes) {
  const std::vector<std::byte> before = bytes;
  if (bytes.size() >= 64 && load_le32(bytes.data() + 8) == 1) {
    store_le64(bytes.data() + 40, XXH3_64bits(bytes.data() + 64, bytes.size() - 64));
    store_le64(bytes.data() + 56, XXH3_64bits(bytes.data(), 56));
  } else if (bytes.size() >= image::kHeaderSize) {
    const uint64_t pages = load_le64(bytes.data() + 56);
    if (pages <= (bytes.size() - image::kHeaderSize) / 8) {
      const uint64_t body = image::kHeaderSize + pages * 8;
      for (uint64_t p = 0; p < pages && body + p * image::kPageSize < bytes.size(); ++p) {
        const uint64_t start = body + p * image::kPageSize;
        store_le64(bytes.data() + image::kHeaderSize + p * 8,
                   XXH3_64bits(bytes.data() + start, std::min<uint64_t>(image::kPageSize, bytes.size() - start)));
      }
      store_le64(bytes.data() + 64, XXH3_64bits(bytes.data() + image::kHeaderSize, pages * 8));
    }
    store_le64(bytes.data() + 120, XXH3_64bits(bytes.data(), 120));
  }
  return bytes != before;
}

void check(bool condition) {
  if (!condition) __builtin_trap();
}


bool good_name(std::string_view name) {
  return !name.empty() && name.size() <= image::kMaxNameLength && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos && name != "." && name != "..";
}

// What a mount can do with a manifest that opened: every lookup may fail,
// nothing may go out of range.
void walk_lenient(const image::Manifest& m) {
  const uint32_t n = m.size();
  for (uint32_t i = 0; i < n; ++i) {
    auto e = m.entry(i);
    if (!e) {
      check(!e.error().message().empty() && e.error().message().find('\n') == std::string::npos);
      continue;
    }
    if (i > 0) check(good_name(e.value().name) && e.value().parent < i);
    if (auto c = m.children(i)) {
      check(c.value().count == 0 || (c.value().first > i && c.value().first <= n &&
                                     c.value().count <= n - c.value().first));
      for (uint32_t k = 0; k < c.value().count && k < 64; ++k) {
        auto child = m.entry(c.value().first + k);
        if (!child) continue;
        auto found = m.find_child(i, child.value().name);
        if (found && found.value()) check(*found.value() < n);
      }
    }
    if (auto target = m.resolve(i)) check(target.value() < n);
    (void)m.xattrs(e.value());
    (void)m.symlink_target(e.value());
    (void)m.path(i);
    if (e.value().type == image::EntryType::file) {
      if (auto c = m.content(e.value())) {
        check(c.value().length == e.value().size);
        (void)m.find_content(c.value().digest);
      }
    }
  }
  for (uint32_t k = 0; k < m.content_count(); ++k) (void)m.content_at(k);
  for (uint32_t k = 0; k < m.blob_count(); ++k) (void)m.blob_at(k);
}

image::EntrySpec spec_of(const image::Manifest& m, uint32_t index) {
  const image::Entry e = m.entry(index).value();
  image::EntrySpec s;
  s.path = m.path(index);
  s.type = e.type;
  s.mode = e.mode;
  s.uid = e.uid;
  s.gid = e.gid;
  s.mtime_sec = e.mtime_sec;
  s.mtime_nsec = e.mtime_nsec;
  s.xattrs = m.xattrs(e);
  switch (e.type) {
    case image::EntryType::file: {
      const image::Content c = m.content(e).value();
      s.size = e.size;
      s.digest = c.digest;
      if (c.packed()) s.packed = image::PackedRef{c.blob, c.offset};
      break;
    }
    case image::EntryType::symlink:
      s.symlink_target = std::string(m.symlink_target(e));
      break;
    case image::EntryType::hardlink:
      s.hardlink_target = m.path(m.resolve(index).value());
      break;
    case image::EntryType::special:
      s.rdev = e.ref;
      break;
    case image::EntryType::directory:
      s.size = e.size;
      break;
  }
  return s;
}

std::vector<image::BlobRecord> records_of(const image::Manifest& m) {
  std::vector<image::BlobRecord> out;
  for (uint32_t k = 0; k < m.blob_count(); ++k) out.push_back(m.blob_at(k).value());
  return out;
}

// A verified manifest: everything succeeds, and the invariants hold.
void walk_strict(const image::Manifest& m) {
  const uint32_t n = m.size();
  check(n >= 1);
  const image::Entry root = m.entry(0).value();
  check(root.type == image::EntryType::directory && root.name.empty() && root.parent == 0);
  check(m.path(0).empty());
  uint64_t children_total = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const image::Entry e = m.entry(i).value();
    check(e.index == i);
    if (i > 0) {
      check(e.parent < i && m.entry(e.parent).value().type == image::EntryType::directory);
      check(good_name(e.name));
    }
    check(m.find(m.path(i)).value() == i);
    const image::Manifest::Children c = m.children(i).value();
    check(c.count == 0 || (c.first <= n && c.count <= n - c.first));
    if (e.type != image::EntryType::directory) check(c.count == 0);
    children_total += c.count;
    uint32_t subdirs = 0;
    for (uint32_t k = 0; k < c.count; ++k) {
      const image::Entry child = m.entry(c.first + k).value();
      check(child.parent == i);
      check(m.find_child(i, child.name).value() == c.first + k);
      if (k > 0) check(m.entry(c.first + k - 1).value().name < child.name);
      if (child.type == image::EntryType::directory) ++subdirs;
    }
    check(!m.find_child(i, "").value());
    if (e.type == image::EntryType::directory) check(e.nlink == 2 + subdirs);
    const uint32_t target = m.resolve(i).value();
    check(target < n);
    const image::Entry t = m.entry(target).value();
    if (e.type == image::EntryType::hardlink) {
      check(t.type != image::EntryType::directory && t.type != image::EntryType::hardlink);
      check(t.nlink >= 2);
    } else {
      check(target == i && e.nlink >= 1);
    }
    const std::vector<image::Xattr> xattrs = m.xattrs(e);
    for (size_t k = 0; k < xattrs.size(); ++k) {
      check(!xattrs[k].name.empty() && xattrs[k].value.size() <= image::kMaxXattrValue);
      if (k > 0) check(xattrs[k - 1].name < xattrs[k].name);
      const auto value = m.xattr(e, xattrs[k].name);
      check(value && *value == xattrs[k].value);
    }
    const std::string_view link = m.symlink_target(e);
    if (e.type == image::EntryType::symlink) {
      check(!link.empty() && link.size() == e.size && link.size() <= image::kMaxSymlinkLength);
    } else {
      check(link.empty());
    }
    if (e.type == image::EntryType::file) {
      const image::Content content = m.content(e).value();
      check(m.find_content(content.digest).value()->offset == content.offset);
    }
  }
  check(children_total == n - 1);  // every entry but the root is someone's child

  // The encoder must accept what verify accepted, and produce the same tree:
  // breadth-first order is canonical, so the indexes agree too.
  std::vector<image::EntrySpec> specs;
  specs.reserve(n);
  for (uint32_t i = 0; i < n; ++i) specs.push_back(spec_of(m, i));
  auto encoded = image::encode(specs, records_of(m));
  check(encoded.has_value());
  auto again = image::Manifest::parse(encoded.value());
  check(again.has_value());
  const image::Manifest& m2 = again.value();
  check(m2.verify().has_value());
  check(m2.size() == n);
  for (uint32_t i = 0; i < n; ++i) {
    const image::Entry a = m.entry(i).value();
    const image::Entry b = m2.entry(i).value();
    check(a.parent == b.parent && a.name == b.name && a.type == b.type && a.mode == b.mode);
    check(a.uid == b.uid && a.gid == b.gid && a.mtime_sec == b.mtime_sec && a.nlink == b.nlink);
    check(a.mtime_nsec == b.mtime_nsec && a.size == b.size);
    check(m.resolve(i).value() == m2.resolve(i).value() && m.xattrs(a) == m2.xattrs(b));
    if (a.type == image::EntryType::file) {
      const image::Content ca = m.content(a).value(), cb = m2.content(b).value();
      check(ca.digest == cb.digest && ca.blob == cb.blob && ca.offset == cb.offset &&
            ca.table_digest == cb.table_digest);
    }
    if (a.type == image::EntryType::special) check(a.ref == b.ref);
    if (a.type == image::EntryType::symlink) check(m.symlink_target(a) == m2.symlink_target(b));
  }
}

void fuzz(std::vector<std::byte> bytes) {
  auto parsed = image::Manifest::parse(std::move(bytes));
  if (!parsed) {
    const std::string& message = parsed.error().message();
    check(!message.empty() && message.find('\n') == std::string::npos);
    return;
  }
  walk_lenient(parsed.value());
  if (parsed.value().verify()) walk_strict(parsed.value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* begin = reinterpret_cast<const std::byte*>(data);
  std::vector<std::byte> bytes(begin, begin + size);
  fuzz(bytes);
  if (reseal(bytes)) fuzz(std::move(bytes));
  return 0;
}
