// Image manifest encoding: EntrySpecs (a tree described by paths, in any
// order) and BlobRecords checked against the rules and laid out as a version 2
// manifest file: entries breadth first, sorted by (parent, name), with their
// child slices and link counts; contents and blobs sorted and unique; equal
// strings stored once; the page table last.
#include "pagerfs/store/image_manifest.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <cassert>
#include <limits>
#include <utility>

#include "store/image_manifest_layout.h"
#include "store/image_manifest_rules.h"
#include "util/byte_codec.h"

namespace pagerfs::image {
namespace {

Error invalid(std::string_view path, const std::string& message) {
  return Error(errc::invalid_argument, "image: " + quoted(path) + ": " + message);
}

Result<void> check_path(std::string_view path) {
  if (path.empty()) return ok();
  if (path.front() == '/') return invalid(path, "path starts with '/'");
  if (path.back() == '/') return invalid(path, "path ends with '/'");
  size_t start = 0;
  for (;;) {
    const size_t slash = path.find('/', start);
    const std::string_view component =
        path.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (component.empty()) return invalid(path, "empty path component");
    if (const char* problem = name_problem(component)) {
      return invalid(path, "bad path component " + quoted(component) + " (" + problem + ")");
    }
    if (slash == std::string_view::npos) return ok();
    start = slash + 1;
  }
}

// The checks that need only the entry itself. Sorts its xattrs.
Result<void> check_spec(EntrySpec& e) {
  PAGERFS_TRYV(check_path(e.path));
  const auto raw_type = static_cast<uint8_t>(e.type);
  if (!is_known_type(raw_type))
    return invalid(e.path, "unknown entry type " + std::to_string(raw_type));
  if (e.path.empty() && e.type != EntryType::directory)
    return invalid(e.path, "the root is not a directory");
  if (const char* problem = mode_problem(e.type, e.mode)) {
    return invalid(e.path, "mode " + octal(e.mode) + ": " + problem);
  }
  if (e.mtime_nsec >= kNsecPerSec) {
    return invalid(e.path,
                   "mtime nanoseconds " + std::to_string(e.mtime_nsec) + " are not below 10^9");
  }
  auto unused = [&](bool set, const char* field) -> Result<void> {
    if (set) return invalid(e.path, std::string(field) + " is set on a " + type_name(e.type));
    return ok();
  };
  PAGERFS_TRYV(unused(e.type != EntryType::file && e.digest != Digest{}, "a digest"));
  PAGERFS_TRYV(unused(e.type != EntryType::file && e.packed.has_value(), "a pack reference"));
  PAGERFS_TRYV(
      unused(e.type != EntryType::symlink && !e.symlink_target.empty(), "a symlink target"));
  PAGERFS_TRYV(
      unused(e.type != EntryType::hardlink && !e.hardlink_target.empty(), "a hardlink target"));
  PAGERFS_TRYV(unused(e.type != EntryType::special && e.rdev != 0, "rdev"));
  if (e.size > kMaxSize) {
    return invalid(e.path, "size " + std::to_string(e.size) + " is not below 2^63");
  }
  switch (e.type) {
    case EntryType::file:
    case EntryType::directory: break;
    case EntryType::symlink:
      if (const char* problem = symlink_problem(e.symlink_target)) {
        return invalid(e.path, "symlink target " + quoted(e.symlink_target) + " " + problem);
      }
      if (e.size != 0 && e.size != e.symlink_target.size()) {
        return invalid(e.path, "size " + std::to_string(e.size) +
                                   " is not the symlink target's length " +
                                   std::to_string(e.symlink_target.size()));
      }
      e.size = e.symlink_target.size();
      break;
    case EntryType::hardlink:
      if (e.hardlink_target.empty()) return invalid(e.path, "a hardlink without a target");
      PAGERFS_TRYV(unused(e.uid != 0 || e.gid != 0, "an owner"));
      PAGERFS_TRYV(unused(e.mtime_sec != 0 || e.mtime_nsec != 0, "an mtime"));
      PAGERFS_TRYV(unused(e.size != 0, "a size"));
      PAGERFS_TRYV(unused(!e.xattrs.empty(), "an xattr"));
      break;
    case EntryType::special: PAGERFS_TRYV(unused(e.size != 0, "a size")); break;
  }
  std::sort(e.xattrs.begin(), e.xattrs.end(),
            [](const Xattr& a, const Xattr& b) { return a.name < b.name; });
  for (size_t i = 0; i < e.xattrs.size(); ++i) {
    const Xattr& x = e.xattrs[i];
    if (const char* problem = xattr_problem(x.name, x.value.size())) {
      return invalid(e.path, "xattr " + quoted(x.name) + " " + problem);
    }
    if (i > 0 && x.name == e.xattrs[i - 1].name)
      return invalid(e.path, "duplicate xattr " + quoted(x.name));
  }
  return ok();
}

uint32_t hash32(std::string_view s) noexcept {
  return static_cast<uint32_t>(XXH3_64bits(s.data(), s.size()));
}

// Paths to entry indexes. Open addressing over a flat array: a million
// node-based map entries cost a million allocations and cache misses.
class PathIndex {
 public:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

  explicit PathIndex(const std::vector<EntrySpec>& entries) : entries_(entries) {
    size_t capacity = 16;
    while (capacity < 2 * entries.size()) capacity *= 2;
    slots_.assign(capacity, Slot{kNone, 0});
    mask_ = capacity - 1;
  }

  // Inserts `index` under its path; returns the index already there, if any.
  uint32_t insert(uint32_t index) {
    const std::string_view path = entries_[index].path;
    const uint32_t hash = hash32(path);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      Slot& slot = slots_[i];
      if (slot.index == kNone) {
        slot = {index, hash};
        return kNone;
      }
      if (slot.hash == hash && entries_[slot.index].path == path) return slot.index;
    }
  }

  uint32_t find(std::string_view path) const noexcept {
    const uint32_t hash = hash32(path);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.index == kNone) return kNone;
      if (slot.hash == hash && entries_[slot.index].path == path) return slot.index;
    }
  }

 private:
  struct Slot {
    uint32_t index;
    uint32_t hash;
  };
  const std::vector<EntrySpec>& entries_;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

// The string table: equal strings (names like "Makefile", identical xattr
// sets, common link targets) are stored once.
class StringTable {
 public:
  explicit StringTable(size_t expected) {
    size_t capacity = 16;
    while (capacity < 2 * expected) capacity *= 2;
    slots_.assign(capacity, Slot{});
  }

  Result<uint32_t> add(std::string_view s, std::string_view path) {
    if (s.empty()) return 0u;
    const uint32_t hash = hash32(s);
    const size_t mask = slots_.size() - 1;
    size_t i = hash & mask;
    for (; slots_[i].length != 0; i = (i + 1) & mask) {
      const Slot& slot = slots_[i];
      if (slot.hash == hash && slot.length == s.size() &&
          data_.compare(slot.offset, slot.length, s) == 0) {
        return slot.offset;
      }
    }
    if (s.size() >= kMaxStringsSize - data_.size())
      return invalid(path, "the string table would exceed 4 GiB");
    const auto offset = static_cast<uint32_t>(data_.size());
    data_ += s;
    slots_[i] = {offset, static_cast<uint32_t>(s.size()), hash};
    if (++used_ * 2 > slots_.size()) grow();
    return offset;
  }
  const std::string& data() const noexcept { return data_; }

 private:
  struct Slot {
    uint32_t offset = 0;
    uint32_t length = 0;  // 0: empty (the empty string is never stored)
    uint32_t hash = 0;
  };

  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    const size_t mask = slots_.size() - 1;
    for (const Slot& slot : old) {
      if (slot.length == 0) continue;
      size_t i = slot.hash & mask;
      while (slots_[i].length != 0) i = (i + 1) & mask;
      slots_[i] = slot;
    }
  }

  std::string data_;
  std::vector<Slot> slots_;
  size_t used_ = 0;
};

}  // namespace

Result<std::vector<std::byte>> encode(std::vector<EntrySpec> entries, std::vector<BlobRecord> blobs) {
  if (entries.size() > kMaxEntries) {
    return Error(errc::invalid_argument, "image: " + std::to_string(entries.size()) +
                                             " entries, more than a manifest can hold (" +
                                             std::to_string(kMaxEntries) + ")");
  }
  const auto n = static_cast<uint32_t>(entries.size());
  for (EntrySpec& e : entries) PAGERFS_TRYV(check_spec(e));

  PathIndex by_path(entries);
  for (uint32_t i = 0; i < n; ++i) {
    if (by_path.insert(i) != PathIndex::kNone) return invalid(entries[i].path, "duplicate path");
  }
  const uint32_t root = by_path.find("");
  if (root == PathIndex::kNone) {
    return Error(errc::invalid_argument, "image: no root entry (the directory with path '')");
  }

  // Parents, and where each name starts in its path.
  constexpr uint32_t kNone = PathIndex::kNone;
  std::vector<uint32_t> parent(n, kNone);
  std::vector<uint32_t> name_start(n, 0);
  std::vector<uint32_t> child_count(n, 0);
  for (uint32_t i = 0; i < n; ++i) {
    const std::string_view path = entries[i].path;
    if (path.empty()) continue;
    const size_t slash = path.rfind('/');
    const std::string_view parent_path =
        slash == std::string_view::npos ? std::string_view{} : path.substr(0, slash);
    const uint32_t p = by_path.find(parent_path);
    if (p == PathIndex::kNone) return invalid(path, "parent " + quoted(parent_path) + " is missing");
    if (entries[p].type != EntryType::directory) {
      return invalid(path, "parent " + quoted(parent_path) + " is not a directory");
    }
    parent[i] = p;
    name_start[i] = slash == std::string_view::npos ? 0 : static_cast<uint32_t>(slash + 1);
    ++child_count[p];
  }

  // The children of each entry as one slice of `children`, sorted by name.
  std::vector<uint32_t> child_begin(n + 1, 0);
  for (uint32_t i = 0; i < n; ++i) child_begin[i + 1] = child_begin[i] + child_count[i];
  std::vector<uint32_t> children(n == 0 ? 0 : n - 1);
  {
    std::vector<uint32_t> fill(child_begin.begin(), child_begin.end() - 1);
    for (uint32_t i = 0; i < n; ++i) {
      if (parent[i] != kNone) children[fill[parent[i]]++] = i;
    }
  }
  auto name_of = [&](uint32_t i) {
    return std::string_view(entries[i].path).substr(name_start[i]);
  };
  for (uint32_t d = 0; d < n; ++d) {
    if (child_count[d] > 1) {
      std::sort(children.begin() + child_begin[d], children.begin() + child_begin[d + 1],
                [&](uint32_t a, uint32_t b) { return name_of(a) < name_of(b); });
    }
  }

  // Breadth first: the children of each directory, in the order the
  // directories themselves were placed.
  std::vector<uint32_t> order;
  order.reserve(n);
  std::vector<uint32_t> index_of(n, kNone);
  order.push_back(root);
  index_of[root] = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const uint32_t d = order[k];
    for (uint32_t c = child_begin[d]; c < child_begin[d + 1]; ++c) {
      index_of[children[c]] = static_cast<uint32_t>(order.size());
      order.push_back(children[c]);
    }
  }
  // Every path's parent chain ends at the root (it gets shorter each step).
  assert(order.size() == n);

  std::vector<uint32_t> link_target(n, kNone);
  for (uint32_t i = 0; i < n; ++i) {
    const EntrySpec& e = entries[i];
    if (e.type != EntryType::hardlink) continue;
    const uint32_t target = by_path.find(e.hardlink_target);
    if (target == PathIndex::kNone) {
      return invalid(e.path, "hardlink target " + quoted(e.hardlink_target) + " does not exist");
    }
    const EntryType target_type = entries[target].type;
    if (target_type == EntryType::directory || target_type == EntryType::hardlink) {
      return invalid(e.path, "hardlink target " + quoted(e.hardlink_target) + " is a " +
                                 type_name(target_type));
    }
    link_target[i] = target;
  }

  // The digest table, and each file's index in it. The digests are copied
  // next to their entry numbers as big-endian words: sorting then compares
  // integers in a compact array, not bytes in scattered EntrySpecs.
  struct Keyed {
    std::array<uint64_t, 4> words;
    uint32_t entry;
  };
  std::vector<Digest> blob_of;  // per content: the blob that holds it
  std::vector<Keyed> files;
  files.reserve(
      static_cast<size_t>(std::count_if(entries.begin(), entries.end(), [](const EntrySpec& e) {
        return e.type == EntryType::file;
      })));
  for (uint32_t i = 0; i < n; ++i) {
    if (entries[i].type != EntryType::file) continue;
    Keyed& f = files.emplace_back();
    f.entry = i;
    const auto& bytes = entries[i].digest.bytes();
    for (size_t w = 0; w < 4; ++w) {
      uint64_t word = 0;
      for (size_t b = 0; b < 8; ++b) word = word << 8 | bytes[w * 8 + b];
      f.words[w] = word;
    }
  }
  std::sort(files.begin(), files.end(),
            [](const Keyed& a, const Keyed& b) { return a.words < b.words; });
  // One content record per digest: every file naming it must agree on its
  // size and place.
  std::vector<StoredContent> contents;
  std::vector<uint32_t> digest_index(n, 0);
  std::vector<uint32_t> first_user;  // per content: the entry that named it first
  for (size_t k = 0; k < files.size(); ++k) {
    const EntrySpec& e = entries[files[k].entry];
    const Digest blob = e.packed ? e.packed->blob : e.digest;
    const uint64_t offset = e.packed ? e.packed->offset : 0;
    if (k == 0 || files[k].words != files[k - 1].words) {
      contents.push_back({.digest = e.digest, .blob = 0, .reserved = 0, .offset = offset, .length = e.size});
      first_user.push_back(files[k].entry);
      // The blob index is resolved below; the blob digest is kept here.
      blob_of.push_back(blob);
    } else {
      const EntrySpec& first = entries[first_user.back()];
      if (first.size != e.size) {
        return invalid(e.path, "content " + e.digest.str() + " has " + std::to_string(e.size) +
                                   " bytes here and " + std::to_string(first.size) + " at " +
                                   quoted(first.path));
      }
      if (blob_of.back() != blob || contents.back().offset != offset) {
        return invalid(e.path, "content " + e.digest.str() + " is stored at another place than at " +
                                   quoted(first.path));
      }
    }
    digest_index[files[k].entry] = static_cast<uint32_t>(contents.size() - 1);
  }
  // The blob table: the records named, sorted, unique.
  std::sort(blobs.begin(), blobs.end(),
            [](const BlobRecord& a, const BlobRecord& b) { return a.digest < b.digest; });
  for (size_t k = 1; k < blobs.size(); ++k) {
    if (blobs[k].digest == blobs[k - 1].digest && blobs[k] != blobs[k - 1]) {
      return Error(errc::invalid_argument,
                   "image: blob " + blobs[k].digest.str() + " has two different records");
    }
  }
  blobs.erase(std::unique(blobs.begin(), blobs.end()), blobs.end());
  std::vector<bool> blob_used(blobs.size(), false);
  for (size_t c = 0; c < contents.size(); ++c) {
    const EntrySpec& e = entries[first_user[c]];
    auto it = std::lower_bound(blobs.begin(), blobs.end(), blob_of[c],
                               [](const BlobRecord& r, const Digest& d) { return r.digest < d; });
    if (it == blobs.end() || it->digest != blob_of[c]) {
      return invalid(e.path, "blob " + blob_of[c].str() + " has no blob record");
    }
    const BlobRecord& record = *it;
    StoredContent& content = contents[c];
    if (content.offset > record.byte_size || content.length > record.byte_size - content.offset) {
      return invalid(e.path, "content [" + std::to_string(content.offset) + ", +" +
                                 std::to_string(content.length) + ") is past the end of blob " +
                                 record.digest.str() + " (" + std::to_string(record.byte_size) +
                                 " bytes)");
    }
    if (record.digest == content.digest &&
        (content.offset != 0 || content.length != record.byte_size)) {
      return invalid(e.path, "blob " + record.digest.str() + " of its own content has " +
                                 std::to_string(record.byte_size) + " bytes, the file " +
                                 std::to_string(content.length) + " at offset " +
                                 std::to_string(content.offset));
    }
    content.blob = static_cast<uint32_t>(it - blobs.begin());
    blob_used[content.blob] = true;
  }
  {
    size_t kept = 0;
    std::vector<uint32_t> renumber(blobs.size(), 0);
    for (size_t k = 0; k < blobs.size(); ++k) {
      if (!blob_used[k]) continue;
      renumber[k] = static_cast<uint32_t>(kept);
      blobs[kept++] = blobs[k];
    }
    blobs.resize(kept);
    for (StoredContent& c : contents) c.blob = renumber[c.blob];
  }
  files = {};

  // Link counts: a directory's is 2 + its subdirectories, a non-directory's
  // 1 + the hardlinks naming it (saturating: st_nlink is what it is).
  std::vector<uint32_t> nlink(n, 0);
  auto bump = [](uint32_t& v) {
    if (v != std::numeric_limits<uint32_t>::max()) ++v;
  };
  for (uint32_t i = 0; i < n; ++i) {
    const EntryType type = entries[i].type;
    if (type == EntryType::hardlink) continue;
    nlink[i] = type == EntryType::directory ? 2 : 1;
  }
  for (uint32_t i = 0; i < n; ++i) {
    if (entries[i].type == EntryType::directory && parent[i] != kNone) bump(nlink[parent[i]]);
    if (entries[i].type == EntryType::hardlink) bump(nlink[link_target[i]]);
  }

  // The entries as stored, in breadth-first order, with the strings they use.
  StringTable strings(n);
  std::string records;  // of one entry
  std::vector<StoredEntry> stored(n);
  for (uint32_t k = 0; k < n; ++k) {
    const uint32_t i = order[k];
    const EntrySpec& e = entries[i];
    PAGERFS_TRY(name_offset, strings.add(name_of(i), e.path));
    uint32_t xattrs_offset = 0;
    uint32_t xattrs_size = 0;
    if (!e.xattrs.empty()) {
      records.clear();
      for (const Xattr& x : e.xattrs) append_xattr_record(records, x);
      if (records.size() >= kMaxStringsSize) return invalid(e.path, "the xattrs exceed 4 GiB");
      PAGERFS_TRY(offset, strings.add(records, e.path));
      xattrs_offset = offset;
      xattrs_size = static_cast<uint32_t>(records.size());
    }
    uint64_t ref = 0;
    switch (e.type) {
      case EntryType::file: ref = digest_index[i]; break;
      case EntryType::symlink: {
        PAGERFS_TRY(offset, strings.add(e.symlink_target, e.path));
        ref = offset;
        break;
      }
      case EntryType::hardlink: ref = index_of[link_target[i]]; break;
      case EntryType::special: ref = e.rdev; break;
      case EntryType::directory:
        if (child_count[i] > 0) {
          // Children are placed together, in their sorted order.
          ref = uint64_t{child_count[i]} << 32 | index_of[children[child_begin[i]]];
        }
        break;
    }
    stored[k] = {.parent = parent[i] == kNone ? 0 : index_of[parent[i]],
                 .name_offset = name_offset,
                 .name_length = static_cast<uint16_t>(name_of(i).size()),
                 .type = static_cast<uint8_t>(e.type),
                 .mode = e.mode,
                 .uid = e.uid,
                 .gid = e.gid,
                 .mtime_sec = e.mtime_sec,
                 .mtime_nsec = e.mtime_nsec,
                 .xattrs_size = xattrs_size,
                 .size = e.size,
                 .ref = ref,
                 .xattrs_offset = xattrs_offset,
                 .nlink = nlink[i]};
  }

  const std::string& string_data = strings.data();
  const uint64_t body = body_size(n, contents.size(), blobs.size(), string_data.size());
  const uint64_t pages = pages_for(body);
  const uint64_t body_offset = kHeaderSize + pages * 8;
  std::vector<std::byte> out(body_offset + body);
  for (uint32_t k = 0; k < n; ++k) write_entry(stored[k], out, body_offset, k);
  stored = {};
  uint64_t at = body_offset + uint64_t{n} * kEntrySize;
  for (const StoredContent& c : contents) {
    write_content(c, std::span(out).subspan(at, kContentRecordSize));
    at += kContentRecordSize;
  }
  for (const BlobRecord& b : blobs) {
    write_blob_record(b, std::span(out).subspan(at, kBlobRecordSize));
    at += kBlobRecordSize;
  }
  std::memcpy(out.data() + at, string_data.data(), string_data.size());
  assert(at + string_data.size() == out.size());

  ByteWriter page_table{std::span(out).subspan(kHeaderSize, pages * 8)};
  for (uint64_t p = 0; p < pages; ++p) {
    const uint64_t start = body_offset + p * kPageSize;
    page_table.u64(XXH3_64bits(out.data() + start, std::min<uint64_t>(kPageSize, out.size() - start)));
  }
  assert(page_table.filled());

  StoredHeader header;
  header.entry_count = n;
  header.content_count = contents.size();
  header.blob_count = blobs.size();
  header.strings_size = string_data.size();
  header.page_count = pages;
  header.page_table_checksum = XXH3_64bits(out.data() + kHeaderSize, pages * 8);
  write_header(header, out);
  return out;
}

}  // namespace pagerfs::image
