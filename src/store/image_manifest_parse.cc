// Image manifest parsing: every byte of a manifest file validated, in the
// order man/pagerfs-store.5 gives, before a Manifest is handed out; and the
// per-directory child slices and link counts computed on the way.
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

Error corrupt(const std::string& message) {
  return Error(errc::corrupt_blob, "image manifest: " + message);
}

std::string_view as_chars(std::span<const std::byte> bytes) noexcept {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

uint32_t saturating_increment(uint32_t v) noexcept {
  return v == std::numeric_limits<uint32_t>::max() ? v : v + 1;
}

// Why the records are not a valid xattr list, or an empty string.
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
      return fail(quote(name) + (name == previous ? " is a duplicate"
                                                  : " is not sorted after " + quote(previous)));
    }
    previous = name;
    pos += read.record.length;
  }
  return {};
}

}  // namespace

Result<Manifest> Manifest::parse(std::vector<std::byte> bytes) {
  if (bytes.size() < kHeaderSize) {
    return corrupt("truncated header: " + std::to_string(bytes.size()) +
                   " bytes, a manifest header has " + std::to_string(kHeaderSize));
  }
  const StoredHeader h = read_header(bytes);
  if (h.magic != kMagic) return corrupt("not a pagerfs image manifest (bad magic)");
  // Before the checksum: a newer version may checksum differently, and must
  // be reported as newer, not as damaged.
  if (h.version > kVersion) {
    return Error(errc::unsupported_format, "image manifest: version " + std::to_string(h.version) +
                                               " is not supported (this reader knows version " +
                                               std::to_string(kVersion) + ")");
  }
  if (h.version == 0) return corrupt("version 0 is invalid");
  if (h.header_checksum != header_checksum(bytes)) return corrupt("header checksum mismatch");
  if (h.header_size != kHeaderSize) {
    return corrupt("header size " + std::to_string(h.header_size) + " is not " +
                   std::to_string(kHeaderSize));
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
  const uint64_t fixed = digest_table_offset(entry_count) + strings_size;
  const uint64_t file_size = bytes.size();
  if (file_size < fixed || (file_size - fixed) / kDigestSize != digest_count ||
      (file_size - fixed) % kDigestSize != 0) {
    return corrupt("the file is " + std::to_string(file_size) + " bytes; " +
                   std::to_string(entry_count) + " entries, " + std::to_string(digest_count) +
                   " digests and " + std::to_string(strings_size) +
                   " bytes of strings do not fill exactly that" + " (truncated or trailing data)");
  }
  if (h.body_checksum != XXH3_64bits(bytes.data() + kHeaderSize, file_size - kHeaderSize)) {
    return corrupt("body checksum mismatch");
  }

  // Moved in now so that messages can use path(); moving keeps the buffer.
  Manifest m;
  m.bytes_ = std::move(bytes);
  const std::span<const std::byte> file = m.bytes_;
  m.entry_count_ = static_cast<uint32_t>(entry_count);
  const uint32_t n = m.entry_count_;
  ByteReader digest_table(file.subspan(digest_table_offset(n), digest_count * kDigestSize));
  m.digests_.resize(digest_count);
  for (uint64_t d = 0; d < digest_count; ++d) {
    m.digests_[d] = Digest(digest_table.array<Digest::kSize>());
    // Digests compare as their bytes do.
    if (d > 0 && m.digests_[d - 1] >= m.digests_[d]) {
      return corrupt("digest table: digest " + std::to_string(d) + " is not greater than digest " +
                     std::to_string(d - 1) + " (the table must be sorted and unique)");
    }
  }
  std::vector<bool> digest_used(digest_count, false);

  const std::string_view strings = as_chars(file.subspan(string_table_offset(n, digest_count)));
  m.child_begin_.assign(n, 0);
  m.child_count_.assign(n, 0);
  m.nlink_.assign(n, 0);
  std::vector<uint32_t> hardlinks;
  std::vector<bool> is_directory(n, false);  // of the entries checked so far

  std::string_view previous_name;
  uint32_t previous_parent = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const StoredEntry e = read_entry(file, i);
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
        where += " (" + quote(m.path(i)) + ")";
      } else if (name_known) {
        where += " (name " + quote(name) + ")";
      }
      return corrupt(where + ": " + what);
    };

    if (e.reserved8 != 0 || e.reserved32 != 0) {
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
        return fail("name " + quote(name) + " " + problem);
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
                        : "names not sorted: " + quote(name) + " after " + quote(previous_name));
      }
      if (m.child_count_[parent]++ == 0) m.child_begin_[parent] = i;
      if (type == EntryType::directory) m.nlink_[parent] = saturating_increment(m.nlink_[parent]);
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
    m.nlink_[i] = type == EntryType::directory ? 2 : 1;
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
      return corrupt("digest " + std::to_string(d) + " (" + m.digests_[d].str() +
                     ") is not used by any file");
    }
  }
  for (const uint32_t link : hardlinks) {
    const auto target = static_cast<uint32_t>(read_entry(file, link).ref);
    const auto target_type = static_cast<EntryType>(read_entry(file, target).type);
    if (target_type == EntryType::directory || target_type == EntryType::hardlink) {
      return corrupt("entry " + std::to_string(link) + " (" + quote(m.path(link)) +
                     "): hardlink target " + std::to_string(target) + " (" + quote(m.path(target)) +
                     ") is a " + type_name(target_type));
    }
    m.nlink_[target] = saturating_increment(m.nlink_[target]);
  }
  return m;
}

}  // namespace pagerfs::image
