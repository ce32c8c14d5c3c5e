// The Manifest: opening a version 2 manifest (its header and page table
// only; a version 1 file is converted first), its lookups, each of which
// checks what it reads (the pages under it, once; the entry's fields, every
// time: a few comparisons), and verify(), which checks everything. Encoding
// is in image_manifest_encode.cc, the byte layout in image_manifest_layout.cc,
// the rules for entries in image_manifest_rules.cc, version 1 in
// image_manifest_parse.cc.
#include "pagerfs/store/image_manifest.h"

#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <limits>

#include "store/image_manifest_layout.h"
#include "store/image_manifest_rules.h"
#include "util/byte_codec.h"

namespace pagerfs::image {

// Owns the bytes (a vector, or a mapping), and the state lookups share.
struct Manifest::Shared {
  std::vector<std::byte> owned;
  void* mapping = nullptr;
  size_t mapping_length = 0;
  // Per body page: 0 not checked yet, 1 good, 2 bad. A race checks a page
  // twice, with the same outcome.
  std::unique_ptr<std::atomic<uint8_t>[]> pages;
  std::atomic<uint64_t> entry_errors{0};
  std::atomic<bool> reported{false};

  Shared() = default;
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;
  ~Shared() {
    if (mapping != nullptr) ::munmap(mapping, mapping_length);
  }
};

namespace {

Error corrupt(const std::string& message) {
  return Error(errc::corrupt_blob, "image manifest: " + message);
}

constexpr uint8_t kPageUnchecked = 0, kPageGood = 1, kPageBad = 2;

// Opens version 2 bytes held by `shared` (`file` points into them).
Result<void> check_v2_header(std::span<const std::byte> file, StoredHeader& h) {
  if (file.size() < kHeaderSize) {
    return corrupt("truncated header: " + std::to_string(file.size()) +
                   " bytes, a version 2 header has " + std::to_string(kHeaderSize));
  }
  h = read_header(file);
  if (h.header_checksum != header_checksum(file)) return corrupt("header checksum mismatch");
  if (h.header_size != kHeaderSize) {
    return corrupt("header size " + std::to_string(h.header_size) + " is not " +
                   std::to_string(kHeaderSize));
  }
  if (h.flags != 0) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%x", h.flags);
    return Error(errc::unsupported_format, std::string("image manifest: unknown header flags ") + hex);
  }
  if (h.page_size != kPageSize) {
    return corrupt("page size " + std::to_string(h.page_size) + " is not " + std::to_string(kPageSize));
  }
  if (std::any_of(h.reserved.begin(), h.reserved.end(), [](uint8_t b) { return b != 0; })) {
    return corrupt("reserved header bytes are not zero");
  }
  if (h.entry_count == 0) return corrupt("entry count is 0 (there is always a root)");
  constexpr uint64_t kLimit = uint64_t{1} << 32;
  if (h.entry_count >= kLimit || h.content_count >= kLimit || h.blob_count >= kLimit ||
      h.strings_size >= kLimit) {
    return corrupt("a count or the string table size is not below 2^32");
  }
  if (h.content_count > h.entry_count || h.blob_count > h.content_count) {
    return corrupt("more contents than entries, or more blobs than contents");
  }
  const uint64_t body = body_size(h.entry_count, h.content_count, h.blob_count, h.strings_size);
  if (h.page_count != pages_for(body)) {
    return corrupt("page count " + std::to_string(h.page_count) + " is not that of a " +
                   std::to_string(body) + "-byte body");
  }
  const uint64_t expected = kHeaderSize + h.page_count * 8 + body;
  if (file.size() != expected) {
    return corrupt("the file is " + std::to_string(file.size()) + " bytes, its header says " +
                   std::to_string(expected) + " (truncated or trailing data)");
  }
  if (h.page_table_checksum != XXH3_64bits(file.data() + kHeaderSize, h.page_count * 8)) {
    return corrupt("page table checksum mismatch");
  }
  return ok();
}

}  // namespace

Result<Manifest> Manifest::parse(std::vector<std::byte> bytes) {
  const std::span<const std::byte> file = bytes;
  if (file.size() < 12) return corrupt("truncated header: " + std::to_string(file.size()) + " bytes");
  ByteReader r(file.first(12));
  if (r.array<8>() != kMagic) return corrupt("not a pagerfs image manifest (bad magic)");
  // Before any checksum: a newer version may checksum differently, and must
  // be reported as newer, not as damaged.
  const uint32_t version = r.u32();
  if (version > kVersion) {
    return Error(errc::unsupported_format, "image manifest: version " + std::to_string(version) +
                                               " is not supported (this reader knows versions 1 and " +
                                               std::to_string(kVersion) + ")");
  }
  if (version == 0) return corrupt("version 0 is invalid");
  if (version == 1) {
    PAGERFS_TRY(tree, parse_v1(file));
    bytes = {};
    auto converted = encode(std::move(tree.entries), std::move(tree.blobs));
    // parse_v1 checked what encode() checks but one thing: a content digest
    // with two sizes, which version 1 did not forbid and cannot be served.
    if (!converted) return corrupt("version 1: " + converted.error().message());
    bytes = std::move(converted).value();
  }
  auto shared = std::make_shared<Shared>();
  shared->owned = std::move(bytes);
  const std::span<const std::byte> held = shared->owned;
  return open_v2(std::move(shared), held);
}

Result<Manifest> Manifest::map(int fd, uint64_t size) {
  std::array<std::byte, 12> head{};
  if (size >= head.size()) {
    const ssize_t n = ::pread(fd, head.data(), head.size(), 0);
    if (n < 0) return Error::from_errno(errno, "image manifest: read");
  }
  const bool v2 = size >= kHeaderSize && load_le32(head.data() + 8) == kVersion;
  if (!v2) {
    // Version 1 (or not a manifest: parse() says what is wrong).
    std::vector<std::byte> bytes(static_cast<size_t>(size));
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::pread(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::from_errno(errno, "image manifest: read");
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    bytes.resize(done);
    return parse(std::move(bytes));
  }
  // Manifests are written to a temporary file and renamed into place, never
  // changed in place, so the mapping cannot shrink under the reader.
  void* mapping = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
  if (mapping == MAP_FAILED) return Error::from_errno(errno, "image manifest: mmap");
  auto shared = std::make_shared<Shared>();
  shared->mapping = mapping;
  shared->mapping_length = static_cast<size_t>(size);
  const std::span<const std::byte> file(static_cast<const std::byte*>(mapping), static_cast<size_t>(size));
  return open_v2(std::move(shared), file);
}

uint64_t Manifest::checksum() const noexcept {
  return file_.size() >= kHeaderSize ? load_le64(file_.data() + kHeaderChecksumOffset) : 0;
}

Result<Manifest> Manifest::open_v2(std::shared_ptr<Shared> shared, std::span<const std::byte> file) {
  StoredHeader h;
  PAGERFS_TRYV(check_v2_header(file, h));
  Manifest m;
  m.file_ = file;
  m.body_offset_ = kHeaderSize + h.page_count * 8;
  m.entry_count_ = static_cast<uint32_t>(h.entry_count);
  m.content_count_ = static_cast<uint32_t>(h.content_count);
  m.blob_count_ = static_cast<uint32_t>(h.blob_count);
  m.strings_size_ = static_cast<uint32_t>(h.strings_size);
  m.page_count_ = h.page_count;
  shared->pages = std::make_unique<std::atomic<uint8_t>[]>(h.page_count);
  m.shared_ = std::move(shared);
  // The root: what every lookup starts from.
  auto root = m.decode(0);
  if (!root) return root.error();
  return m;
}

uint64_t Manifest::entry_errors() const noexcept { return shared_->entry_errors.load(std::memory_order_relaxed); }

bool Manifest::first_error() const noexcept { return !shared_->reported.exchange(true); }

std::string_view Manifest::strings() const noexcept {
  return {reinterpret_cast<const char*>(file_.data()) + strings_offset(), strings_size_};
}

Digest Manifest::read_digest(uint64_t offset) const noexcept {
  ByteReader r(file_.subspan(offset, Digest::kSize));
  return Digest(r.array<Digest::kSize>());
}

Error Manifest::entry_error(uint32_t index, const std::string& what) const {
  shared_->entry_errors.fetch_add(1, std::memory_order_relaxed);
  return corrupt("entry " + std::to_string(index) + " (" + quoted(path(index)) + "): " + what);
}

Result<void> Manifest::check_pages(uint64_t offset, uint64_t length) const {
  if (length == 0) return ok();
  assert(offset >= body_offset_ && offset + length <= file_.size());
  const uint64_t first = (offset - body_offset_) / kPageSize;
  const uint64_t last = (offset + length - 1 - body_offset_) / kPageSize;
  for (uint64_t p = first; p <= last; ++p) {
    std::atomic<uint8_t>& state = shared_->pages[p];
    uint8_t s = state.load(std::memory_order_acquire);
    if (s == kPageUnchecked) {
      const uint64_t start = body_offset_ + p * kPageSize;
      const uint64_t bytes = std::min<uint64_t>(kPageSize, file_.size() - start);
      const uint64_t stored = load_le64(file_.data() + kHeaderSize + p * 8);
      s = XXH3_64bits(file_.data() + start, bytes) == stored ? kPageGood : kPageBad;
      state.store(s, std::memory_order_release);
    }
    if (s == kPageBad) {
      shared_->entry_errors.fetch_add(1, std::memory_order_relaxed);
      return corrupt("page " + std::to_string(p) + " checksum mismatch");
    }
  }
  return ok();
}

Result<Entry> Manifest::decode(uint32_t index) const {
  if (index >= entry_count_) {
    shared_->entry_errors.fetch_add(1, std::memory_order_relaxed);
    return corrupt("entry " + std::to_string(index) + " is not below the entry count " +
                   std::to_string(entry_count_));
  }
  PAGERFS_TRYV(check_pages(entries_offset() + uint64_t{index} * kEntrySize, kEntrySize));
  const StoredEntry e = read_entry(file_, entries_offset(), index);
  auto fail = [&](const std::string& what) { return entry_error(index, what); };
  if (e.reserved8 != 0) return fail("reserved field is not zero");
  if (!is_known_type(e.type)) return fail("unknown type " + std::to_string(e.type));
  const auto type = static_cast<EntryType>(e.type);
  if (const char* problem = mode_problem(type, e.mode)) return fail("mode " + octal(e.mode) + " " + problem);
  if (e.mtime_nsec >= kNsecPerSec) return fail("mtime nanoseconds are not below 10^9");
  if (e.size > kMaxSize) return fail("size " + std::to_string(e.size) + " is not below 2^63");
  const std::string_view strings = this->strings();
  // A range of the string table, its pages checked.
  auto string_range = [&](uint64_t offset, uint64_t length, const char* what) -> Result<std::string_view> {
    if (offset > strings_size_ || length > strings_size_ - offset) {
      return fail(std::string(what) + " [" + std::to_string(offset) + ", +" + std::to_string(length) +
                  ") is outside the string table (" + std::to_string(strings_size_) + " bytes)");
    }
    PAGERFS_TRYV(check_pages(strings_offset() + offset, length));
    return strings.substr(offset, length);
  };
  // The type of another entry, its page checked.
  auto type_of = [&](uint32_t other) -> Result<uint8_t> {
    PAGERFS_TRYV(check_pages(entries_offset() + uint64_t{other} * kEntrySize, kEntrySize));
    return read_entry(file_, entries_offset(), other).type;
  };
  PAGERFS_TRY(name, string_range(e.name_offset, e.name_length, "name"));
  if (index == 0) {
    if (!name.empty()) return fail("the root's name is not empty");
    if (e.parent != 0) return fail("the root's parent is not 0");
    if (type != EntryType::directory) return fail("the root is not a directory");
  } else {
    if (const char* problem = name_problem(name)) return fail("name " + quoted(name) + " " + problem);
    if (e.parent >= index) return fail("parent " + std::to_string(e.parent) + " is not an earlier entry");
    PAGERFS_TRY(parent_type, type_of(e.parent));
    if (parent_type != static_cast<uint8_t>(EntryType::directory)) {
      return fail("parent " + std::to_string(e.parent) + " is not a directory");
    }
  }
  std::string_view xattrs;
  if (e.xattrs_size == 0) {
    if (e.xattrs_offset != 0) return fail("xattrs_offset is not 0 without xattrs");
  } else {
    PAGERFS_TRY(records, string_range(e.xattrs_offset, e.xattrs_size, "xattrs"));
    const std::string problem = check_records(records);
    if (!problem.empty()) return fail(problem);
    xattrs = records;
  }
  Entry out{.index = index,
            .parent = e.parent,
            .name = name,
            .type = type,
            .mode = e.mode,
            .uid = e.uid,
            .gid = e.gid,
            .mtime_sec = e.mtime_sec,
            .mtime_nsec = e.mtime_nsec,
            .size = e.size,
            .ref = e.ref,
            .nlink = e.nlink,
            .first_child = 0,
            .child_count = 0,
            .xattrs = xattrs};
  switch (type) {
    case EntryType::directory: {
      const auto first = static_cast<uint32_t>(e.ref);
      const auto count = static_cast<uint32_t>(e.ref >> 32);
      if (count == 0 ? first != 0 : first <= index || uint64_t{first} + count > entry_count_) {
        return fail("children [" + std::to_string(first) + ", +" + std::to_string(count) +
                    ") are not later entries");
      }
      if (e.nlink < 2) return fail("a directory's link count is below 2");
      out.first_child = first;
      out.child_count = count;
      break;
    }
    case EntryType::file:
      if (e.ref >= content_count_) {
        return fail("content index " + std::to_string(e.ref) + " is not below the content count " +
                    std::to_string(content_count_));
      }
      if (e.nlink < 1) return fail("link count 0");
      break;
    case EntryType::symlink: {
      PAGERFS_TRY(target, string_range(e.ref, e.size, "symlink target"));
      if (const char* problem = symlink_problem(target)) return fail(std::string("symlink target ") + problem);
      if (e.nlink < 1) return fail("link count 0");
      break;
    }
    case EntryType::hardlink: {
      if (e.uid != 0 || e.gid != 0 || e.mtime_sec != 0 || e.mtime_nsec != 0 || e.size != 0 ||
          e.xattrs_size != 0 || e.nlink != 0) {
        return fail("a hardlink's uid, gid, mtime, size, xattrs and nlink must be 0");
      }
      if (e.ref >= entry_count_) return fail("hardlink target " + std::to_string(e.ref) + " is not an entry");
      PAGERFS_TRY(target_type, type_of(static_cast<uint32_t>(e.ref)));
      if (target_type == static_cast<uint8_t>(EntryType::directory) ||
          target_type == static_cast<uint8_t>(EntryType::hardlink)) {
        return fail("hardlink target " + std::to_string(e.ref) + " is a directory or a hardlink");
      }
      break;
    }
    case EntryType::special:
      if (e.size != 0) return fail("a special file's size must be 0");
      if (e.nlink < 1) return fail("link count 0");
      break;
  }
  return out;
}

Result<Entry> Manifest::entry(uint32_t index) const { return decode(index); }

Result<Manifest::Children> Manifest::children(uint32_t dir) const {
  PAGERFS_TRY(e, decode(dir));
  return Children{e.first_child, e.child_count};
}

Result<std::optional<uint32_t>> Manifest::find_child(uint32_t dir, std::string_view name) const {
  PAGERFS_TRY(c, children(dir));
  uint32_t lo = c.first;
  uint32_t hi = c.first + c.count;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    PAGERFS_TRY(e, decode(mid));
    if (e.parent != dir) {
      return entry_error(dir, "its child slice holds entry " + std::to_string(mid) + " of parent " +
                                  std::to_string(e.parent));
    }
    const int cmp = e.name.compare(name);
    if (cmp == 0) return std::optional<uint32_t>(mid);
    if (cmp < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return std::optional<uint32_t>();
}

Result<std::optional<uint32_t>> Manifest::find(std::string_view path) const {
  uint32_t at = 0;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    PAGERFS_TRY(child, find_child(at, path.substr(0, slash)));
    if (!child) return child;
    at = *child;
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
  }
  return std::optional<uint32_t>(at);
}

Result<uint32_t> Manifest::resolve(uint32_t index) const {
  PAGERFS_TRY(e, decode(index));
  return e.type == EntryType::hardlink ? static_cast<uint32_t>(e.ref) : index;
}

Result<BlobRecord> Manifest::blob_at(uint32_t k) const {
  if (k >= blob_count_) return corrupt("blob " + std::to_string(k) + " is not below the blob count");
  const uint64_t offset = blobs_offset() + uint64_t{k} * kBlobRecordSize;
  PAGERFS_TRYV(check_pages(offset, kBlobRecordSize));
  return read_blob_record(file_.subspan(offset, kBlobRecordSize));
}

Result<Content> Manifest::content_at(uint32_t k) const {
  auto fail = [&](const std::string& what) {
    shared_->entry_errors.fetch_add(1, std::memory_order_relaxed);
    return corrupt("content " + std::to_string(k) + ": " + what);
  };
  if (k >= content_count_) return fail("is not below the content count");
  const uint64_t offset = contents_offset() + uint64_t{k} * kContentRecordSize;
  PAGERFS_TRYV(check_pages(offset, kContentRecordSize));
  const StoredContent c = read_content(file_.subspan(offset, kContentRecordSize));
  if (c.reserved != 0) return fail("reserved field is not zero");
  if (c.blob >= blob_count_) return fail("blob index " + std::to_string(c.blob) + " is not below the blob count");
  if (c.length > kMaxSize) return fail("length is not below 2^63");
  PAGERFS_TRY(blob, blob_at(c.blob));
  if (c.offset > blob.byte_size || c.length > blob.byte_size - c.offset) {
    return fail("[" + std::to_string(c.offset) + ", +" + std::to_string(c.length) + ") is past the end of blob " +
                blob.digest.str() + " (" + std::to_string(blob.byte_size) + " bytes)");
  }
  if (blob.digest == c.digest && (c.offset != 0 || c.length != blob.byte_size)) {
    return fail("its own blob " + blob.digest.str() + " is not the whole content");
  }
  return Content{.digest = c.digest,
                 .blob = blob.digest,
                 .offset = c.offset,
                 .length = c.length,
                 .table_digest = blob.table_digest};
}

Result<Content> Manifest::content(const Entry& file) const {
  if (file.type != EntryType::file) return entry_error(file.index, "is not a file");
  PAGERFS_TRY(c, content_at(static_cast<uint32_t>(file.ref)));
  if (c.length != file.size) {
    return entry_error(file.index, "size " + std::to_string(file.size) + " is not its content's length " +
                                       std::to_string(c.length));
  }
  return c;
}

Result<std::optional<Content>> Manifest::find_content(const Digest& digest) const {
  uint32_t lo = 0;
  uint32_t hi = content_count_;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    const uint64_t offset = contents_offset() + uint64_t{mid} * kContentRecordSize;
    PAGERFS_TRYV(check_pages(offset, Digest::kSize));
    const Digest d = read_digest(offset);
    if (d == digest) {
      PAGERFS_TRY(c, content_at(mid));
      return std::optional<Content>(c);
    }
    if (d < digest) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return std::optional<Content>();
}

std::vector<Xattr> Manifest::xattrs(const Entry& entry) const {
  std::vector<Xattr> out;
  for (std::string_view rest = entry.xattrs; !rest.empty();) {
    const XattrRecord r = read_xattr_record(rest).record;
    if (r.length == 0 || r.length > rest.size()) break;  // checked by decode(): never
    out.push_back({std::string(r.name), std::string(r.value)});
    rest.remove_prefix(r.length);
  }
  return out;
}

std::optional<std::string_view> Manifest::xattr(const Entry& entry, std::string_view name) const {
  for (std::string_view rest = entry.xattrs; !rest.empty();) {
    const XattrRecord r = read_xattr_record(rest).record;
    if (r.length == 0 || r.length > rest.size()) break;  // checked by decode(): never
    if (r.name == name) return r.value;
    if (r.name > name) break;  // sorted
    rest.remove_prefix(r.length);
  }
  return std::nullopt;
}

std::string Manifest::path(uint32_t index) const {
  if (index >= entry_count_) return "?";
  // Only names and parents are read, each bounded: messages name entries
  // that failed their checks. Parents must be earlier entries, so the walk
  // ends at the root or at the first bad parent.
  const std::string_view strings = this->strings();
  std::vector<std::string_view> names;
  size_t length = 0;
  for (uint32_t i = index; i != 0;) {
    const StoredEntry e = read_entry(file_, entries_offset(), i);
    const bool name_ok = uint64_t{e.name_offset} + e.name_length <= strings_size_;
    const std::string_view name = name_ok ? strings.substr(e.name_offset, e.name_length) : "?";
    names.push_back(name);
    length += name.size() + 1;
    if (e.parent >= i) {
      names.push_back("?");
      break;
    }
    i = e.parent;
  }
  std::string out;
  out.reserve(length);
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    if (!out.empty()) out += '/';
    out += *it;
  }
  return out;
}

std::string_view Manifest::symlink_target(const Entry& symlink) const noexcept {
  if (symlink.type != EntryType::symlink || symlink.ref > strings_size_ ||
      symlink.size > strings_size_ - symlink.ref) {
    return {};
  }
  return strings().substr(symlink.ref, symlink.size);
}

Result<void> Manifest::verify() const {
  const uint32_t n = entry_count_;
  PAGERFS_TRYV(check_pages(body_offset_, file_.size() - body_offset_));
  std::vector<uint32_t> subdirs(n, 0);
  std::vector<uint32_t> links(n, 0);
  std::vector<uint32_t> first(n, 0);
  std::vector<uint32_t> count(n, 0);
  std::vector<bool> content_used(content_count_, false);
  std::string_view previous_name;
  uint32_t previous_parent = 0;
  auto bump = [](uint32_t& v) {
    if (v != std::numeric_limits<uint32_t>::max()) ++v;
  };
  for (uint32_t i = 0; i < n; ++i) {
    PAGERFS_TRY(e, decode(i));
    if (i > 0) {
      if (e.parent < previous_parent) {
        return entry_error(i, "parent " + std::to_string(e.parent) + " after parent " +
                                  std::to_string(previous_parent) + " (entries must be breadth first)");
      }
      if (e.parent == previous_parent && e.name <= previous_name) {
        return entry_error(i, "names not sorted, or a duplicate, in its directory");
      }
      if (count[e.parent]++ == 0) first[e.parent] = i;
      if (e.type == EntryType::directory) bump(subdirs[e.parent]);
    }
    previous_parent = e.parent;
    previous_name = e.name;
    if (e.type == EntryType::hardlink) bump(links[e.ref]);
    if (e.type == EntryType::file) {
      PAGERFS_TRY(c, content(e));
      (void)c;
      content_used[e.ref] = true;
    }
  }
  for (uint32_t i = 0; i < n; ++i) {
    PAGERFS_TRY(e, decode(i));
    if (e.type == EntryType::directory) {
      if (e.child_count != count[i] || (count[i] != 0 && e.first_child != first[i])) {
        return entry_error(i, "its child slice is not [" + std::to_string(first[i]) + ", +" +
                                  std::to_string(count[i]) + ")");
      }
      const uint32_t want = subdirs[i] > std::numeric_limits<uint32_t>::max() - 2 ? subdirs[i] : subdirs[i] + 2;
      if (e.nlink != want) return entry_error(i, "link count " + std::to_string(e.nlink) + " is not " + std::to_string(want));
    } else if (e.type != EntryType::hardlink) {
      const uint32_t want = links[i] == std::numeric_limits<uint32_t>::max() ? links[i] : links[i] + 1;
      if (e.nlink != want) return entry_error(i, "link count " + std::to_string(e.nlink) + " is not " + std::to_string(want));
    }
  }
  std::vector<bool> blob_used(blob_count_, false);
  for (uint32_t k = 0; k < content_count_; ++k) {
    PAGERFS_TRY(c, content_at(k));
    if (k > 0 && read_digest(contents_offset() + uint64_t{k - 1} * kContentRecordSize) >= c.digest) {
      return corrupt("content " + std::to_string(k) + " is not after content " + std::to_string(k - 1) +
                     " (the table must be sorted and unique)");
    }
    if (!content_used[k]) return corrupt("content " + std::to_string(k) + " (" + c.digest.str() + ") is not used by any file");
    blob_used[read_content(file_.subspan(contents_offset() + uint64_t{k} * kContentRecordSize, kContentRecordSize)).blob] = true;
  }
  for (uint32_t k = 0; k < blob_count_; ++k) {
    PAGERFS_TRY(b, blob_at(k));
    if (k > 0 && read_digest(blobs_offset() + uint64_t{k - 1} * kBlobRecordSize) >= b.digest) {
      return corrupt("blob " + std::to_string(k) + " is not after blob " + std::to_string(k - 1) +
                     " (the table must be sorted and unique)");
    }
    if (!blob_used[k]) return corrupt("blob " + std::to_string(k) + " (" + b.digest.str() + ") is not used by any content");
  }
  return ok();
}

Result<void> validate_image_name(std::string_view name) {
  auto bad = [&](const std::string& why) {
    return Error(errc::invalid_argument, "image name " + quoted(name) + " " + why);
  };
  if (name.empty()) return bad("is empty");
  if (name.size() > kMaxImageName) return bad("is longer than 255 bytes");
  if (name.front() == '.') return bad("starts with '.'");
  for (const char c : name) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!allowed) return bad("has a character other than A-Z, a-z, 0-9, '.', '_' and '-'");
  }
  return ok();
}

}  // namespace pagerfs::image
