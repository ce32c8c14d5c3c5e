// libFuzzer target: the input is a whole image manifest file.
//
// Manifest::parse runs on the raw bytes, and again with both XXH3 checksums
// recomputed ("re-sealed"): random mutation almost never gets a checksum
// right, and without the fix-up the fuzzer would never get past them to the
// structural checks. Whatever parse accepts is then walked through every
// accessor, with the invariants a reader (the FUSE layer) relies on checked:
// a tree rooted at entry 0, children slices that find_child agrees with,
// paths that resolve back to their entry, hard links that end at a
// non-directory, xattrs that list and look up alike. Finally the accepted
// manifest is rebuilt as EntrySpecs and encoded: the encoder's rules are the
// parser's, so it must accept it, and reproduce the same tree.
// Seeds are manifests packed by pagerfsctl (see scripts/fuzz).
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

// Header field offsets (man/pagerfs-store.5), for the checksum fix-up only.
constexpr size_t kOffBodyChecksum = 40;
constexpr size_t kOffHeaderChecksum = 56;

// Recomputes the body and header checksums in place. Returns whether
// anything changed.
bool reseal(std::vector<std::byte>& bytes) {
  if (bytes.size() < image::kHeaderSize) return false;
  const std::vector<std::byte> before(bytes.begin(), bytes.begin() + image::kHeaderSize);
  store_le64(bytes.data() + kOffBodyChecksum,
             XXH3_64bits(bytes.data() + image::kHeaderSize, bytes.size() - image::kHeaderSize));
  store_le64(bytes.data() + kOffHeaderChecksum, XXH3_64bits(bytes.data(), kOffHeaderChecksum));
  return !std::equal(before.begin(), before.end(), bytes.begin());
}

void check(bool condition) {
  if (!condition) __builtin_trap();
}


image::EntrySpec spec_of(const image::Manifest& m, uint32_t index) {
  const image::Entry e = m.entry(index);
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
    case image::EntryType::file:
      s.size = e.size;
      s.digest = m.digest_of(e);
      break;
    case image::EntryType::symlink:
      s.symlink_target = std::string(m.symlink_target(e));
      break;
    case image::EntryType::hardlink:
      s.hardlink_target = m.path(m.resolve(index));
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

void walk(const image::Manifest& m) {
  const uint32_t n = m.size();
  check(n >= 1);
  const image::Entry root = m.entry(0);
  check(root.type == image::EntryType::directory && root.name.empty() && root.parent == 0);
  check(m.path(0).empty());

  uint64_t children_total = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const image::Entry e = m.entry(i);
    check(e.index == i);
    if (i > 0) {
      check(e.parent < i && m.entry(e.parent).type == image::EntryType::directory);
      check(!e.name.empty() && e.name.size() <= image::kMaxNameLength);
      check(e.name.find('/') == std::string_view::npos && e.name != "." && e.name != "..");
    }
    const std::string path = m.path(i);
    check(m.find(path) == i);

    const image::Manifest::Children c = m.children(i);
    check(c.first <= n && c.count <= n - c.first);
    if (e.type != image::EntryType::directory) check(c.count == 0);
    children_total += c.count;
    uint32_t subdirs = 0;
    for (uint32_t k = 0; k < c.count; ++k) {
      const image::Entry child = m.entry(c.first + k);
      check(child.parent == i);
      check(m.find_child(i, child.name) == c.first + k);
      if (k > 0) check(m.entry(c.first + k - 1).name < child.name);
      if (child.type == image::EntryType::directory) ++subdirs;
    }
    check(!m.find_child(i, ""));
    if (e.type == image::EntryType::directory) check(m.nlink(i) == 2 + subdirs);

    const uint32_t target = m.resolve(i);
    check(target < n);
    const image::EntryType target_type = m.entry(target).type;
    if (e.type == image::EntryType::hardlink) {
      check(target_type != image::EntryType::directory && target_type != image::EntryType::hardlink);
      check(m.nlink(i) == m.nlink(target) && m.nlink(target) >= 2);
    } else {
      check(target == i);
      check(m.nlink(i) >= 1);
    }

    const std::vector<image::Xattr> xattrs = m.xattrs(e);
    for (size_t k = 0; k < xattrs.size(); ++k) {
      check(!xattrs[k].name.empty() && xattrs[k].value.size() <= image::kMaxXattrValue);
      if (k > 0) check(xattrs[k - 1].name < xattrs[k].name);
      const auto value = m.xattr(e, xattrs[k].name);
      check(value && *value == xattrs[k].value);
    }
    check(!m.xattr(e, ""));

    const std::string_view link = m.symlink_target(e);
    if (e.type == image::EntryType::symlink) {
      check(!link.empty() && link.size() == e.size && link.size() <= image::kMaxSymlinkLength);
    } else {
      check(link.empty());
    }
    if (e.type == image::EntryType::file) check(e.ref < m.digests().size());
  }
  check(children_total == n - 1);  // every entry but the root is someone's child
  check(!m.find_child(n, "x"));
  check(m.children(n).count == 0);

  // The encoder must accept what the parser accepted, and produce the same
  // tree: breadth-first order is canonical, so the indexes agree too.
  std::vector<image::EntrySpec> specs;
  specs.reserve(n);
  for (uint32_t i = 0; i < n; ++i) specs.push_back(spec_of(m, i));
  auto encoded = image::encode(specs);
  check(encoded.has_value());
  auto again = image::Manifest::parse(encoded.value());
  check(again.has_value());
  const image::Manifest& m2 = again.value();
  check(m2.size() == n);
  for (uint32_t i = 0; i < n; ++i) {
    const image::Entry a = m.entry(i);
    const image::Entry b = m2.entry(i);
    check(a.parent == b.parent && a.name == b.name && a.type == b.type && a.mode == b.mode);
    check(a.uid == b.uid && a.gid == b.gid && a.mtime_sec == b.mtime_sec);
    check(a.mtime_nsec == b.mtime_nsec && a.size == b.size && m.nlink(i) == m2.nlink(i));
    check(m.resolve(i) == m2.resolve(i) && m.xattrs(a) == m2.xattrs(b));
    if (a.type == image::EntryType::file) check(m.digest_of(a) == m2.digest_of(b));
    if (a.type == image::EntryType::special) check(a.ref == b.ref);
    if (a.type == image::EntryType::symlink) check(m.symlink_target(a) == m2.symlink_target(b));
  }
  // Encoding is deterministic: the re-encoded tree encodes to the same bytes.
  std::vector<image::EntrySpec> specs2;
  for (uint32_t i = 0; i < n; ++i) specs2.push_back(spec_of(m2, i));
  auto encoded2 = image::encode(std::move(specs2));
  check(encoded2.has_value() && encoded2.value() == encoded.value());
}

void fuzz(std::vector<std::byte> bytes) {
  auto parsed = image::Manifest::parse(std::move(bytes));
  if (!parsed) {
    const std::string& message = parsed.error().message();
    check(!message.empty() && message.find('\n') == std::string::npos);
    return;
  }
  walk(parsed.value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* begin = reinterpret_cast<const std::byte*>(data);
  std::vector<std::byte> bytes(begin, begin + size);
  fuzz(bytes);
  if (reseal(bytes)) fuzz(std::move(bytes));
  return 0;
}
