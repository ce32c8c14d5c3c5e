// Image manifest version 1: every byte of a v1 manifest file validated, in
// the order man/pagerfs-store.5 gives, then converted to EntrySpecs and
// BlobRecords that encode() turns into the version 2 bytes the Manifest
// serves. A v1 manifest records no seek-table digests (the blob records'
// table digests are zero: nothing to anchor) and no blob sizes (a whole-file
// blob's size is its file's).
#include "pagerfs/store/image_manifest.h"

#include <xxhash.h>

#include <cstdio>
#include <limits>
#include <utility>

#include "store/image_manifest_layout.h"
#include "store/image_manifest_rules.h"
#include "util/byte_codec.h"

namespace pagerfs::image {
namespace {

// The version 1 header (64 bytes):
//    0 magic "PGFSIMAG"       8 u32 version (1)       12 u32 header_size (64)
//   16 u64 entry_count (>= 1) 24 u64 digest_count     32 u64 strings_size (< 2^32)
//   40 u64 body_checksum: XXH3-64 of every byte after the header
//   48 u32 flags (0)          52 u32 reserved (0)     56 u64 XXH3-64 of bytes [0, 56)
// then entry_count entries (the v2 layout with nlink reserved, 0),
// digest_count digests of 32 bytes, and the strings.
constexpr size_t kV1HeaderSize = 64;
struct V1Header {
  std::array<uint8_t, 8> magic{};
  uint32_t version = 0;
  uint32_t header_size = 0;
  uint64_t entry_count = 0;
  uint64_t digest_count = 0;
  uint64_t strings_size = 0;
  uint64_t body_checksum = 0;
  uint32_t flags = 0;
  uint32_t reserved = 0;
  uint64_t header_checksum = 0;
};

V1Header read_v1_header(std::span<const std::byte> file) noexcept {
  ByteReader r(file.first(kV1HeaderSize));
  V1Header h;
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
  return h;
}

uint64_t v1_digest_table_offset(uint64_t entry_count) noexcept {
  return kV1HeaderSize + entry_count * kEntrySize;
}
uint64_t v1_string_table_offset(uint64_t entry_count, uint64_t digest_count) noexcept {
  return v1_digest_table_offset(entry_count) + digest_count * kDigestSize;
}

// What the v1 checks need of a manifest under way.
struct V1 {
  std::span<const std::byte> file;
  uint32_t n = 0;
  uint64_t digest_count = 0;
  uint64_t strings_size = 0;
  std::vector<Digest> digests;

  std::string_view strings() const noexcept {
    const uint64_t offset = v1_string_table_offset(n, digest_count);
    return {reinterpret_cast<const char*>(file.data()) + offset, file.size() - offset};
  }
  // Only for entries whose name and parent (< it) are checked.
  std::string path(uint32_t index) const {
    std::vector<std::string_view> names;
    for (uint32_t i = index; i != 0;) {
      const StoredEntry e = read_entry(file, kV1HeaderSize, i);
      names.push_back(strings().substr(e.name_offset, e.name_length));
      i = e.parent;
    }
    std::string out;
    for (auto it = names.rbegin(); it != names.rend(); ++it) {
      if (!out.empty()) out += '/';
      out += *it;
    }
    return out;
  }
};

Error corrupt(const std::string& message) {
  return Error(errc::corrupt_blob, "image manifest: " + message);
}

std::string_view as_chars(std::span<const std::byte> bytes) noexcept {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace

std::string check_records(std::string_view records) {
  std::string_view previous;
  for (size_t pos = 0, index = 0; pos < records.size(); ++index) {
    auto fail = [&](const std::string& what) {
      return "xattr record " + std::to_string(index) + " " + what;
    };
    const XattrRecordRead read = read_xattr_record(records.substr(pos));
    if (read.name_length == 0) return fail("has an empty name");
    if (!read.complete) return fail("runs past xattrs_size");
    const std::string_view name = read.record.name;
    if (const char* problem = xattr_problem(name, read.record.value.size())) return fail(problem);
    if (index > 0 && name <= previous) {
      return fail(quoted(name) + (name == previous ? " is a duplicate"
                                                  : " is not sorted after " + quoted(previous)));
    }
    previous = name;
    pos += read.record.length;
  }
  return {};
}

namespace {

}  // namespace

Result<V1Tree> parse_v1(std::span<const std::byte> bytes) {
  if (bytes.size() < kV1HeaderSize) {
    return corrupt("truncated header: " + std::to_string(bytes.size()) +
                   " bytes, a manifest header has " + std::to_string(kV1HeaderSize));
  }
  const V1Header h = read_v1_header(bytes);
  if (h.magic != kMagic) return corrupt("not a pagerfs image manifest (bad magic)");
  // Before the checksum: a newer version may checksum differently, and must
  // be reported as newer, not as damaged.
  if (h.version != 1) return corrupt("version " + std::to_string(h.version) + " is not 1");
  if (h.header_checksum != XXH3_64bits(bytes.data(), kV1HeaderSize - 8)) {
    return corrupt("header checksum mismatch");
  }
  if (h.header_size != kV1HeaderSize) {
    return corrupt("header size " + std::to_string(h.header_size) + " is not " +
                   std::to_string(kV1HeaderSize));
  }
  if (h.flags != 0) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%x", h.flags);
    return Error(errc::unsupported_format,
                 std::string("image manifest: unknown header flags ") + hex);
  }
  if (h.reserved != 0) return corrupt("reserved header field is not zero");
  const uint64_t entry_count = h.entry_count;
  const uint64_t digest_count = h.digest_count;
  const uint64_t strings_size = h.strings_size;
  if (entry_count == 0) return corrupt("entry count is 0 (there is always a root)");
  if (entry_count > kMaxEntries)
    return corrupt("entry count " + std::to_string(entry_count) + " is too large");
  if (strings_size >= kMaxStringsSize) {
    return corrupt("string table size " + std::to_string(strings_size) + " is not below 2^32");
  }
  // Bounded by 2^38 + 2^32 + 64: no overflow. The digest table takes the
  // rest, which is compared by division so that a huge count cannot wrap.
  const uint64_t fixed = v1_digest_table_offset(entry_count) + strings_size;
  const uint64_t file_size = bytes.size();
  if (file_size < fixed || (file_size - fixed) / kDigestSize != digest_count ||
      (file_size - fixed) % kDigestSize != 0) {
    return corrupt("the file is " + std::to_string(file_size) + " bytes; " +
                   std::to_string(entry_count) + " entries, " + std::to_string(digest_count) +
                   " digests and " + std::to_string(strings_size) +
                   " bytes of strings do not fill exactly that" + " (truncated or trailing data)");
  }
  if (h.body_checksum != XXH3_64bits(bytes.data() + kV1HeaderSize, file_size - kV1HeaderSize)) {
    return corrupt("body checksum mismatch");
  }

  V1 m;
  m.file = bytes;
  const std::span<const std::byte> file = bytes;
  m.n = static_cast<uint32_t>(entry_count);
  m.digest_count = digest_count;
  m.strings_size = strings_size;
  const uint32_t n = m.n;
  ByteReader digest_table(file.subspan(v1_digest_table_offset(n), digest_count * kDigestSize));
  m.digests.resize(digest_count);
  for (uint64_t d = 0; d < digest_count; ++d) {
    m.digests[d] = Digest(digest_table.array<Digest::kSize>());
    // Digests compare as their bytes do.
    if (d > 0 && m.digests[d - 1] >= m.digests[d]) {
      return corrupt("digest table: digest " + std::to_string(d) + " is not greater than digest " +
                     std::to_string(d - 1) + " (the table must be sorted and unique)");
    }
  }
  std::vector<bool> digest_used(digest_count, false);

  const std::string_view strings = as_chars(file.subspan(v1_string_table_offset(n, digest_count)));
  std::vector<uint32_t> hardlinks;
  std::vector<bool> is_directory(n, false);  // of the entries checked so far

  std::string_view previous_name;
  uint32_t previous_parent = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const StoredEntry e = read_entry(file, kV1HeaderSize, i);
    const uint32_t parent = e.parent;
    const uint32_t name_offset = e.name_offset;
    const uint16_t name_length = e.name_length;
    const uint8_t raw_type = e.type;
    const uint32_t mode = e.mode;
    const uint32_t mtime_nsec = e.mtime_nsec;
    const uint32_t xattrs_size = e.xattrs_size;
    const uint32_t xattrs_offset = e.xattrs_offset;
    const uint64_t size = e.size;
    const uint64_t ref = e.ref;

    // What the messages can say about this entry grows as it is validated.
    std::string_view name;
    bool name_known = false;
    bool path_known = false;
    auto fail = [&](const std::string& what) {
      std::string where = "entry " + std::to_string(i);
      if (path_known) {
        where += " (" + quoted(m.path(i)) + ")";
      } else if (name_known) {
        where += " (name " + quoted(name) + ")";
      }
      return corrupt(where + ": " + what);
    };

    if (e.reserved8 != 0 || e.nlink != 0) {
      return fail("reserved fields are not zero");
    }
    if (!is_known_type(raw_type)) return fail("unknown type " + std::to_string(raw_type));
    const auto type = static_cast<EntryType>(raw_type);
    is_directory[i] = type == EntryType::directory;
    if (uint64_t{name_offset} + name_length > strings_size) {
      return fail("name [" + std::to_string(name_offset) + ", +" + std::to_string(name_length) +
                  ") is outside the string table (" + std::to_string(strings_size) + " bytes)");
    }
    name = strings.substr(name_offset, name_length);
    if (i == 0) {
      if (name_length != 0) return fail("the root's name is not empty");
      if (parent != 0) return fail("the root's parent is " + std::to_string(parent) + ", not 0");
      if (type != EntryType::directory)
        return fail(std::string("the root is a ") + type_name(type));
      path_known = true;
    } else {
      if (const char* problem = name_problem(name))
        return fail("name " + quoted(name) + " " + problem);
      name_known = true;
      if (parent >= i || !is_directory[parent]) {
        return fail("parent " + std::to_string(parent) + " is not an earlier directory");
      }
      path_known = true;
      if (parent < previous_parent) {
        return fail("parent " + std::to_string(parent) + " after parent " +
                    std::to_string(previous_parent) +
                    " (entries must be sorted by parent, breadth first)");
      }
      if (parent == previous_parent && name <= previous_name) {
        return fail(name == previous_name
                        ? "duplicate name in its directory"
                        : "names not sorted: " + quoted(name) + " after " + quoted(previous_name));
      }
    }
    previous_parent = parent;
    previous_name = name;

    if (const char* problem = mode_problem(type, mode))
      return fail("mode " + octal(mode) + " " + problem);
    if (mtime_nsec >= kNsecPerSec) {
      return fail("mtime nanoseconds " + std::to_string(mtime_nsec) + " are not below 10^9");
    }
    if (xattrs_size == 0) {
      if (xattrs_offset != 0) return fail("xattrs_offset is not 0 without xattrs");
    } else {
      if (uint64_t{xattrs_offset} + xattrs_size > strings_size) {
        return fail("xattrs [" + std::to_string(xattrs_offset) + ", +" +
                    std::to_string(xattrs_size) + ") are outside the string table (" +
                    std::to_string(strings_size) + " bytes)");
      }
      const std::string problem = check_records(strings.substr(xattrs_offset, xattrs_size));
      if (!problem.empty()) return fail(problem);
    }
    switch (type) {
      case EntryType::directory:
        if (ref != 0) return fail("a directory's ref must be 0");
        if (size > kMaxSize) return fail("size " + std::to_string(size) + " is not below 2^63");
        break;
      case EntryType::file:
        if (size > kMaxSize) return fail("size " + std::to_string(size) + " is not below 2^63");
        if (ref >= digest_count) {
          return fail("digest index " + std::to_string(ref) + " is not below the digest count " +
                      std::to_string(digest_count));
        }
        digest_used[ref] = true;
        break;
      case EntryType::symlink: {
        if (ref > strings_size || size > strings_size - ref) {
          return fail("symlink target [" + std::to_string(ref) + ", +" + std::to_string(size) +
                      ") is outside the string table (" + std::to_string(strings_size) + " bytes)");
        }
        const std::string_view target = strings.substr(ref, size);
        if (const char* problem = symlink_problem(target))
          return fail(std::string("symlink target ") + problem);
        break;
      }
      case EntryType::hardlink:
        if (e.uid != 0 || e.gid != 0 || e.mtime_sec != 0 || mtime_nsec != 0 || size != 0 ||
            xattrs_size != 0) {
          return fail(
              "a hardlink's uid, gid, mtime, size and xattrs must be 0 (it has its target's)");
        }
        if (ref >= n) return fail("hardlink target " + std::to_string(ref) + " is not an entry");
        hardlinks.push_back(i);
        break;
      case EntryType::special:
        if (size != 0) return fail("a special file's size must be 0");
        break;
    }
  }

  for (uint64_t d = 0; d < digest_count; ++d) {
    if (!digest_used[d]) {
      return corrupt("digest " + std::to_string(d) + " (" + m.digests[d].str() +
                     ") is not used by any file");
    }
  }
  for (const uint32_t link : hardlinks) {
    const auto target = static_cast<uint32_t>(read_entry(file, kV1HeaderSize, link).ref);
    const auto target_type = static_cast<EntryType>(read_entry(file, kV1HeaderSize, target).type);
    if (target_type == EntryType::directory || target_type == EntryType::hardlink) {
      return corrupt("entry " + std::to_string(link) + " (" + quoted(m.path(link)) +
                     "): hardlink target " + std::to_string(target) + " (" + quoted(m.path(target)) +
                     ") is a " + type_name(target_type));
    }
  }

  // The tree as EntrySpecs; a path is its parent's (an earlier entry) plus
  // its name.
  V1Tree tree;
  tree.entries.resize(n);
  std::vector<uint64_t> blob_size(digest_count, 0);
  for (uint32_t i = 0; i < n; ++i) {
    const StoredEntry e = read_entry(file, kV1HeaderSize, i);
    EntrySpec& spec = tree.entries[i];
    if (i != 0) {
      const std::string& parent_path = tree.entries[e.parent].path;
      spec.path.reserve(parent_path.size() + 1 + e.name_length);
      spec.path = parent_path;
      if (!spec.path.empty()) spec.path += '/';
      spec.path += strings.substr(e.name_offset, e.name_length);
    }
    spec.type = static_cast<EntryType>(e.type);
    spec.mode = e.mode;
    spec.uid = e.uid;
    spec.gid = e.gid;
    spec.mtime_sec = e.mtime_sec;
    spec.mtime_nsec = e.mtime_nsec;
    spec.size = e.size;
    for (std::string_view rest = strings.substr(e.xattrs_offset, e.xattrs_size); !rest.empty();) {
      const XattrRecord r = read_xattr_record(rest).record;
      spec.xattrs.push_back({std::string(r.name), std::string(r.value)});
      rest.remove_prefix(r.length);
    }
    switch (spec.type) {
      case EntryType::file:
        spec.digest = m.digests[e.ref];
        blob_size[e.ref] = e.size;
        break;
      case EntryType::symlink:
        spec.symlink_target = std::string(strings.substr(e.ref, e.size));
        break;
      case EntryType::special: spec.rdev = e.ref; break;
      case EntryType::hardlink:
      case EntryType::directory: break;
    }
  }
  for (uint32_t i = 0; i < n; ++i) {
    EntrySpec& spec = tree.entries[i];
    if (spec.type == EntryType::hardlink) {
      spec.hardlink_target = tree.entries[read_entry(file, kV1HeaderSize, i).ref].path;
    }
  }
  tree.blobs.reserve(digest_count);
  for (uint64_t d = 0; d < digest_count; ++d) {
    tree.blobs.push_back({.digest = m.digests[d], .table_digest = {}, .byte_size = blob_size[d]});
  }
  return tree;
}

}  // namespace pagerfs::image
