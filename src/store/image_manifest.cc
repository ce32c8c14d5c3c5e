#include "pagerfs/store/image_manifest.h"

#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

#include "util/endian.h"

namespace pagerfs::image {
namespace {

// Byte offsets of the header fields (see man/pagerfs-store.5).
constexpr size_t kOffMagic = 0;
constexpr size_t kOffVersion = 8;
constexpr size_t kOffHeaderSize = 12;
constexpr size_t kOffEntryCount = 16;
constexpr size_t kOffDigestCount = 24;
constexpr size_t kOffStringsSize = 32;
constexpr size_t kOffBodyChecksum = 40;
constexpr size_t kOffFlags = 48;
constexpr size_t kOffReserved = 52;
constexpr size_t kOffHeaderChecksum = 56;
static_assert(kOffHeaderChecksum + 8 == kHeaderSize);

// Byte offsets inside one entry.
constexpr size_t kEntParent = 0;
constexpr size_t kEntNameOffset = 4;
constexpr size_t kEntNameLength = 8;
constexpr size_t kEntType = 10;
constexpr size_t kEntReserved8 = 11;
constexpr size_t kEntMode = 12;
constexpr size_t kEntUid = 16;
constexpr size_t kEntGid = 20;
constexpr size_t kEntMtimeSec = 24;
constexpr size_t kEntMtimeNsec = 32;
constexpr size_t kEntXattrsSize = 36;
constexpr size_t kEntSize = 40;
constexpr size_t kEntRef = 48;
constexpr size_t kEntXattrsOffset = 56;
constexpr size_t kEntReserved32 = 60;
static_assert(kEntReserved32 + 4 == kEntrySize);
static_assert(kDigestSize == Digest::kSize);

// The mode bits are part of the format, so they are spelled out rather than
// taken from the host; every Linux ABI agrees with them.
constexpr uint32_t kModeTypeMask = 0170000;
constexpr uint32_t kModeDir = 0040000;
constexpr uint32_t kModeReg = 0100000;
constexpr uint32_t kModeLnk = 0120000;
constexpr uint32_t kModeChr = 0020000;
constexpr uint32_t kModeBlk = 0060000;
constexpr uint32_t kModeFifo = 0010000;
constexpr uint32_t kModeSock = 0140000;
constexpr uint32_t kModePermMask = 07777;
static_assert(kModeTypeMask == S_IFMT && kModeDir == S_IFDIR && kModeReg == S_IFREG &&
              kModeLnk == S_IFLNK && kModeChr == S_IFCHR && kModeBlk == S_IFBLK &&
              kModeFifo == S_IFIFO && kModeSock == S_IFSOCK);

constexpr uint32_t kNsecPerSec = 1'000'000'000;
constexpr uint64_t kMaxStringsSize = uint64_t{1} << 32;  // exclusive: offsets are u32

uint64_t header_checksum(const std::byte* header) noexcept {
  return XXH3_64bits(header, kOffHeaderChecksum);
}

// Names and paths in messages: control bytes would break the one-line rule
// and a hostile name could be megabytes long.
std::string quote(std::string_view s) {
  constexpr size_t kMaxShown = 512;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f || c == '\\') {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMaxShown) out += "...";
  return out + "'";
}

std::string octal(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", v);
  return buf;
}

const char* type_name(EntryType type) {
  switch (type) {
    case EntryType::directory: return "directory";
    case EntryType::file: return "file";
    case EntryType::symlink: return "symlink";
    case EntryType::hardlink: return "hardlink";
    case EntryType::special: return "special";
  }
  return "unknown";
}

bool is_known_type(uint8_t type) noexcept {
  return type >= 1 && type <= 5;
}

// Why `mode` cannot be the st_mode of an entry of `type`, or nullptr.
const char* mode_problem(EntryType type, uint32_t mode) noexcept {
  if (type == EntryType::hardlink) {
    return mode == 0 ? nullptr : "a hardlink's mode must be 0 (it has its target's)";
  }
  if ((mode & ~(kModeTypeMask | kModePermMask)) != 0) return "has bits outside S_IFMT|07777";
  const uint32_t bits = mode & kModeTypeMask;
  switch (type) {
    case EntryType::directory: return bits == kModeDir ? nullptr : "type bits are not S_IFDIR";
    case EntryType::file: return bits == kModeReg ? nullptr : "type bits are not S_IFREG";
    case EntryType::symlink: return bits == kModeLnk ? nullptr : "type bits are not S_IFLNK";
    case EntryType::special:
      return bits == kModeChr || bits == kModeBlk || bits == kModeFifo || bits == kModeSock
                 ? nullptr
                 : "type bits are not S_IFCHR, S_IFBLK, S_IFIFO or S_IFSOCK";
    case EntryType::hardlink: break;
  }
  return "unknown type";
}

// Why `name` cannot be one path component, or nullptr.
const char* name_problem(std::string_view name) noexcept {
  if (name.empty()) return "is empty";
  if (name.size() > kMaxNameLength) return "is longer than 255 bytes";
  if (name == "." || name == "..") return "is '.' or '..'";
  if (name.find('/') != std::string_view::npos) return "contains '/'";
  if (name.find('\0') != std::string_view::npos) return "contains NUL";
  return nullptr;
}

const char* symlink_problem(std::string_view target) noexcept {
  if (target.empty()) return "is empty";
  if (target.size() > kMaxSymlinkLength) return "is longer than 4095 bytes";
  if (target.find('\0') != std::string_view::npos) return "contains NUL";
  return nullptr;
}

const char* xattr_problem(std::string_view name, size_t value_size) noexcept {
  if (name.empty()) return "has an empty name";
  if (name.size() > 255) return "has a name longer than 255 bytes";
  if (name.find('\0') != std::string_view::npos) return "has a name containing NUL";
  if (value_size > kMaxXattrValue) return "has a value longer than 65536 bytes";
  return nullptr;
}

// One xattr record at the start of `records`, which has been validated.
struct Record {
  std::string_view name;
  std::string_view value;
  size_t length = 0;  // of the whole record
};

Record read_record(std::string_view records) noexcept {
  Record r;
  const size_t name_length = static_cast<unsigned char>(records[0]);
  r.name = records.substr(1, name_length);
  const uint32_t value_length =
      load_le32(reinterpret_cast<const std::byte*>(records.data()) + 1 + name_length);
  r.value = records.substr(1 + name_length + 4, value_length);
  r.length = 1 + name_length + 4 + value_length;
  return r;
}

// Why the records are not a valid xattr list, or an empty string.
std::string check_records(std::string_view records) {
  std::string_view previous;
  for (size_t pos = 0, index = 0; pos < records.size(); ++index) {
    auto fail = [&](const std::string& what) {
      return "xattr record " + std::to_string(index) + " " + what;
    };
    const size_t left = records.size() - pos;
    const size_t name_length = static_cast<unsigned char>(records[pos]);
    if (name_length == 0) return fail("has an empty name");
    if (name_length > left - 1 || left - 1 - name_length < 4) return fail("runs past xattrs_size");
    const std::string_view name = records.substr(pos + 1, name_length);
    const uint32_t value_length =
        load_le32(reinterpret_cast<const std::byte*>(records.data()) + pos + 1 + name_length);
    if (value_length > left - 1 - name_length - 4) return fail("runs past xattrs_size");
    if (const char* problem = xattr_problem(name, value_length)) return fail(problem);
    if (index > 0 && name <= previous) {
      return fail(quote(name) + (name == previous ? " is a duplicate"
                                                  : " is not sorted after " + quote(previous)));
    }
    previous = name;
    pos += 1 + name_length + 4 + value_length;
  }
  return {};
}

void append_record(std::string& out, const Xattr& x) {
  out += static_cast<char>(static_cast<unsigned char>(x.name.size()));
  out += x.name;
  std::byte length[4];
  store_le32(length, static_cast<uint32_t>(x.value.size()));
  out.append(reinterpret_cast<const char*>(length), sizeof length);
  out += x.value;
}

uint32_t saturating_increment(uint32_t v) noexcept {
  return v == std::numeric_limits<uint32_t>::max() ? v : v + 1;
}

// ---- encode -----------------------------------------------------------------

Error invalid(std::string_view path, const std::string& message) {
  return Error(errc::invalid_argument, "image: " + quote(path) + ": " + message);
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
      return invalid(path, "bad path component " + quote(component) + " (" + problem + ")");
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
        return invalid(e.path, "symlink target " + quote(e.symlink_target) + " " + problem);
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
      return invalid(e.path, "xattr " + quote(x.name) + " " + problem);
    }
    if (i > 0 && x.name == e.xattrs[i - 1].name)
      return invalid(e.path, "duplicate xattr " + quote(x.name));
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

// ---- parse ------------------------------------------------------------------

Error corrupt(const std::string& message) {
  return Error(errc::corrupt_blob, "image manifest: " + message);
}

std::string_view view(const std::byte* p, size_t n) noexcept {
  return std::string_view(reinterpret_cast<const char*>(p), n);
}

// The string table is recomputed rather than stored: two multiplications.
const std::byte* strings_of(const std::vector<std::byte>& bytes, uint32_t entry_count,
                            size_t digest_count) noexcept {
  return bytes.data() + kHeaderSize + uint64_t{entry_count} * kEntrySize +
         digest_count * kDigestSize;
}

}  // namespace

Result<std::vector<std::byte>> encode(std::vector<EntrySpec> entries) {
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
    if (p == PathIndex::kNone) return invalid(path, "parent " + quote(parent_path) + " is missing");
    if (entries[p].type != EntryType::directory) {
      return invalid(path, "parent " + quote(parent_path) + " is not a directory");
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
      return invalid(e.path, "hardlink target " + quote(e.hardlink_target) + " does not exist");
    }
    const EntryType target_type = entries[target].type;
    if (target_type == EntryType::directory || target_type == EntryType::hardlink) {
      return invalid(e.path, "hardlink target " + quote(e.hardlink_target) + " is a " +
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
  std::vector<Digest> digests;
  std::vector<uint32_t> digest_index(n, 0);
  for (size_t k = 0; k < files.size(); ++k) {
    if (k == 0 || files[k].words != files[k - 1].words) {
      std::array<uint8_t, Digest::kSize> raw;
      for (size_t b = 0; b < raw.size(); ++b)
        raw[b] = static_cast<uint8_t>(files[k].words[b / 8] >> (56 - 8 * (b % 8)));
      digests.emplace_back(raw);
    }
    digest_index[files[k].entry] = static_cast<uint32_t>(digests.size() - 1);
  }
  files = {};

  StringTable strings(n);
  std::string records;  // of one entry
  // Room for the strings as well, so that appending them does not move the
  // entries; what deduplication saves is never touched.
  uint64_t strings_bound = 0;
  for (const EntrySpec& e : entries) {
    strings_bound += e.path.size() + e.symlink_target.size();
    for (const Xattr& x : e.xattrs) strings_bound += 1 + x.name.size() + 4 + x.value.size();
  }
  std::vector<std::byte> out;
  const uint64_t tables_size =
      kHeaderSize + uint64_t{n} * kEntrySize + digests.size() * kDigestSize;
  out.reserve(tables_size + std::min(strings_bound, kMaxStringsSize));
  out.resize(tables_size);
  for (uint32_t k = 0; k < n; ++k) {
    const uint32_t i = order[k];
    const EntrySpec& e = entries[i];
    std::byte* p = out.data() + kHeaderSize + uint64_t{k} * kEntrySize;
    PAGERFS_TRY(name_offset, strings.add(name_of(i), e.path));
    uint32_t xattrs_offset = 0;
    uint32_t xattrs_size = 0;
    if (!e.xattrs.empty()) {
      records.clear();
      for (const Xattr& x : e.xattrs) append_record(records, x);
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
      case EntryType::directory: break;
    }
    store_le32(p + kEntParent, parent[i] == kNone ? 0 : index_of[parent[i]]);
    store_le32(p + kEntNameOffset, name_offset);
    store_le16(p + kEntNameLength, static_cast<uint16_t>(name_of(i).size()));
    p[kEntType] = static_cast<std::byte>(e.type);
    store_le32(p + kEntMode, e.mode);
    store_le32(p + kEntUid, e.uid);
    store_le32(p + kEntGid, e.gid);
    store_le64(p + kEntMtimeSec, static_cast<uint64_t>(e.mtime_sec));
    store_le32(p + kEntMtimeNsec, e.mtime_nsec);
    store_le32(p + kEntXattrsSize, xattrs_size);
    store_le64(p + kEntSize, e.size);
    store_le64(p + kEntRef, ref);
    store_le32(p + kEntXattrsOffset, xattrs_offset);
  }

  std::byte* table = out.data() + kHeaderSize + uint64_t{n} * kEntrySize;
  for (const Digest& d : digests) {
    std::memcpy(table, d.bytes().data(), kDigestSize);
    table += kDigestSize;
  }
  const std::string& string_data = strings.data();
  const auto* string_bytes = reinterpret_cast<const std::byte*>(string_data.data());
  out.insert(out.end(), string_bytes, string_bytes + string_data.size());

  std::byte* h = out.data();
  std::memcpy(h + kOffMagic, kMagic.data(), kMagic.size());
  store_le32(h + kOffVersion, kVersion);
  store_le32(h + kOffHeaderSize, kHeaderSize);
  store_le64(h + kOffEntryCount, n);
  store_le64(h + kOffDigestCount, digests.size());
  store_le64(h + kOffStringsSize, string_data.size());
  store_le64(h + kOffBodyChecksum, XXH3_64bits(h + kHeaderSize, out.size() - kHeaderSize));
  store_le32(h + kOffFlags, 0);
  store_le32(h + kOffReserved, 0);
  store_le64(h + kOffHeaderChecksum, header_checksum(h));
  return out;
}

Result<Manifest> Manifest::parse(std::vector<std::byte> bytes) {
  if (bytes.size() < kHeaderSize) {
    return corrupt("truncated header: " + std::to_string(bytes.size()) +
                   " bytes, a manifest header has " + std::to_string(kHeaderSize));
  }
  const std::byte* h = bytes.data();
  if (std::memcmp(h + kOffMagic, kMagic.data(), kMagic.size()) != 0) {
    return corrupt("not a pagerfs image manifest (bad magic)");
  }
  // Before the checksum: a newer version may checksum differently, and must
  // be reported as newer, not as damaged.
  const uint32_t version = load_le32(h + kOffVersion);
  if (version > kVersion) {
    return Error(errc::unsupported_format, "image manifest: version " + std::to_string(version) +
                                               " is not supported (this reader knows version " +
                                               std::to_string(kVersion) + ")");
  }
  if (version == 0) return corrupt("version 0 is invalid");
  if (load_le64(h + kOffHeaderChecksum) != header_checksum(h))
    return corrupt("header checksum mismatch");
  const uint32_t header_size = load_le32(h + kOffHeaderSize);
  if (header_size != kHeaderSize) {
    return corrupt("header size " + std::to_string(header_size) + " is not " +
                   std::to_string(kHeaderSize));
  }
  const uint32_t flags = load_le32(h + kOffFlags);
  if (flags != 0) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%x", flags);
    return Error(errc::unsupported_format,
                 std::string("image manifest: unknown header flags ") + hex);
  }
  if (load_le32(h + kOffReserved) != 0) return corrupt("reserved header field is not zero");
  const uint64_t entry_count = load_le64(h + kOffEntryCount);
  const uint64_t digest_count = load_le64(h + kOffDigestCount);
  const uint64_t strings_size = load_le64(h + kOffStringsSize);
  if (entry_count == 0) return corrupt("entry count is 0 (there is always a root)");
  if (entry_count > kMaxEntries)
    return corrupt("entry count " + std::to_string(entry_count) + " is too large");
  if (strings_size >= kMaxStringsSize) {
    return corrupt("string table size " + std::to_string(strings_size) + " is not below 2^32");
  }
  // Bounded by 2^38 + 2^32 + 64: no overflow. The digest table takes the
  // rest, which is compared by division so that a huge count cannot wrap.
  const uint64_t fixed = kHeaderSize + entry_count * kEntrySize + strings_size;
  const uint64_t file_size = bytes.size();
  if (file_size < fixed || (file_size - fixed) / kDigestSize != digest_count ||
      (file_size - fixed) % kDigestSize != 0) {
    return corrupt("the file is " + std::to_string(file_size) + " bytes; " +
                   std::to_string(entry_count) + " entries, " + std::to_string(digest_count) +
                   " digests and " + std::to_string(strings_size) +
                   " bytes of strings do not fill exactly that" + " (truncated or trailing data)");
  }
  if (load_le64(h + kOffBodyChecksum) != XXH3_64bits(h + kHeaderSize, file_size - kHeaderSize)) {
    return corrupt("body checksum mismatch");
  }

  // Moved in now so that messages can use path(); moving keeps the buffer.
  Manifest m;
  m.bytes_ = std::move(bytes);
  h = m.bytes_.data();
  m.entry_count_ = static_cast<uint32_t>(entry_count);
  const uint32_t n = m.entry_count_;
  const std::byte* digest_table = h + kHeaderSize + entry_count * kEntrySize;
  m.digests_.resize(digest_count);
  for (uint64_t d = 0; d < digest_count; ++d) {
    const std::byte* p = digest_table + d * kDigestSize;
    if (d > 0 && std::memcmp(p - kDigestSize, p, kDigestSize) >= 0) {
      return corrupt("digest table: digest " + std::to_string(d) + " is not greater than digest " +
                     std::to_string(d - 1) + " (the table must be sorted and unique)");
    }
    std::array<uint8_t, Digest::kSize> raw;
    std::memcpy(raw.data(), p, raw.size());
    m.digests_[d] = Digest(raw);
  }
  std::vector<bool> digest_used(digest_count, false);

  const std::byte* entries = h + kHeaderSize;
  const std::byte* strings = digest_table + digest_count * kDigestSize;
  m.child_begin_.assign(n, 0);
  m.child_count_.assign(n, 0);
  m.nlink_.assign(n, 0);
  std::vector<uint32_t> hardlinks;

  std::string_view previous_name;
  uint32_t previous_parent = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const std::byte* e = entries + uint64_t{i} * kEntrySize;
    const uint32_t parent = load_le32(e + kEntParent);
    const uint32_t name_offset = load_le32(e + kEntNameOffset);
    const uint16_t name_length = load_le16(e + kEntNameLength);
    const auto raw_type = static_cast<uint8_t>(e[kEntType]);
    const uint32_t mode = load_le32(e + kEntMode);
    const uint32_t mtime_nsec = load_le32(e + kEntMtimeNsec);
    const uint32_t xattrs_size = load_le32(e + kEntXattrsSize);
    const uint32_t xattrs_offset = load_le32(e + kEntXattrsOffset);
    const uint64_t size = load_le64(e + kEntSize);
    const uint64_t ref = load_le64(e + kEntRef);

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

    if (e[kEntReserved8] != std::byte{0} || load_le32(e + kEntReserved32) != 0) {
      return fail("reserved fields are not zero");
    }
    if (!is_known_type(raw_type)) return fail("unknown type " + std::to_string(raw_type));
    const auto type = static_cast<EntryType>(raw_type);
    if (uint64_t{name_offset} + name_length > strings_size) {
      return fail("name [" + std::to_string(name_offset) + ", +" + std::to_string(name_length) +
                  ") is outside the string table (" + std::to_string(strings_size) + " bytes)");
    }
    name = view(strings + name_offset, name_length);
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
      if (parent >= i || static_cast<uint8_t>(entries[uint64_t{parent} * kEntrySize + kEntType]) !=
                             static_cast<uint8_t>(EntryType::directory)) {
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
      const std::string problem = check_records(view(strings + xattrs_offset, xattrs_size));
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
        const std::string_view target = view(strings + ref, size);
        if (const char* problem = symlink_problem(target))
          return fail(std::string("symlink target ") + problem);
        break;
      }
      case EntryType::hardlink:
        if (load_le32(e + kEntUid) != 0 || load_le32(e + kEntGid) != 0 ||
            load_le64(e + kEntMtimeSec) != 0 || mtime_nsec != 0 || size != 0 || xattrs_size != 0) {
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
    const auto target =
        static_cast<uint32_t>(load_le64(entries + uint64_t{link} * kEntrySize + kEntRef));
    const auto target_type =
        static_cast<EntryType>(entries[uint64_t{target} * kEntrySize + kEntType]);
    if (target_type == EntryType::directory || target_type == EntryType::hardlink) {
      return corrupt("entry " + std::to_string(link) + " (" + quote(m.path(link)) +
                     "): hardlink target " + std::to_string(target) + " (" + quote(m.path(target)) +
                     ") is a " + type_name(target_type));
    }
    m.nlink_[target] = saturating_increment(m.nlink_[target]);
  }
  return m;
}

Entry Manifest::entry(uint32_t index) const noexcept {
  assert(index < entry_count_);
  const std::byte* e = bytes_.data() + kHeaderSize + uint64_t{index} * kEntrySize;
  const std::byte* strings = strings_of(bytes_, entry_count_, digests_.size());
  Entry out;
  out.index = index;
  out.parent = load_le32(e + kEntParent);
  out.name = view(strings + load_le32(e + kEntNameOffset), load_le16(e + kEntNameLength));
  out.type = static_cast<EntryType>(e[kEntType]);
  out.mode = load_le32(e + kEntMode);
  out.uid = load_le32(e + kEntUid);
  out.gid = load_le32(e + kEntGid);
  out.mtime_sec = static_cast<int64_t>(load_le64(e + kEntMtimeSec));
  out.mtime_nsec = load_le32(e + kEntMtimeNsec);
  out.size = load_le64(e + kEntSize);
  out.ref = load_le64(e + kEntRef);
  out.xattrs = view(strings + load_le32(e + kEntXattrsOffset), load_le32(e + kEntXattrsSize));
  return out;
}

Manifest::Children Manifest::children(uint32_t dir) const noexcept {
  if (dir >= entry_count_) return {};
  return {child_begin_[dir], child_count_[dir]};
}

std::optional<uint32_t> Manifest::find_child(uint32_t dir, std::string_view name) const noexcept {
  const Children c = children(dir);
  const std::byte* entries = bytes_.data() + kHeaderSize;
  const std::byte* strings = strings_of(bytes_, entry_count_, digests_.size());
  uint32_t lo = c.first;
  uint32_t hi = c.first + c.count;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    const std::byte* e = entries + uint64_t{mid} * kEntrySize;
    const int cmp =
        view(strings + load_le32(e + kEntNameOffset), load_le16(e + kEntNameLength)).compare(name);
    if (cmp == 0) return mid;
    if (cmp < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return std::nullopt;
}

std::optional<uint32_t> Manifest::find(std::string_view path) const noexcept {
  uint32_t at = 0;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    const std::optional<uint32_t> child = find_child(at, path.substr(0, slash));
    if (!child) return std::nullopt;
    at = *child;
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
  }
  return at;
}

uint32_t Manifest::resolve(uint32_t index) const noexcept {
  if (index >= entry_count_) return index;
  const std::byte* e = bytes_.data() + kHeaderSize + uint64_t{index} * kEntrySize;
  if (static_cast<EntryType>(e[kEntType]) != EntryType::hardlink) return index;
  return static_cast<uint32_t>(load_le64(e + kEntRef));
}

uint32_t Manifest::nlink(uint32_t index) const noexcept {
  const uint32_t target = resolve(index);
  return target < entry_count_ ? nlink_[target] : 0;
}

std::vector<Xattr> Manifest::xattrs(const Entry& entry) const {
  std::vector<Xattr> out;
  for (std::string_view rest = entry.xattrs; !rest.empty();) {
    const Record r = read_record(rest);
    out.push_back({std::string(r.name), std::string(r.value)});
    rest.remove_prefix(r.length);
  }
  return out;
}

std::optional<std::string_view> Manifest::xattr(const Entry& entry, std::string_view name) const {
  for (std::string_view rest = entry.xattrs; !rest.empty();) {
    const Record r = read_record(rest);
    if (r.name == name) return r.value;
    if (r.name > name) break;  // sorted
    rest.remove_prefix(r.length);
  }
  return std::nullopt;
}

std::string Manifest::path(uint32_t index) const {
  if (index >= entry_count_) return {};
  // Parents are earlier entries, so this walk ends at the root.
  std::vector<std::string_view> names;
  size_t length = 0;
  for (uint32_t i = index; i != 0;) {
    const Entry e = entry(i);
    names.push_back(e.name);
    length += e.name.size() + 1;
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
  if (symlink.type != EntryType::symlink) return {};
  return view(strings_of(bytes_, entry_count_, digests_.size()) + symlink.ref, symlink.size);
}

Result<void> validate_image_name(std::string_view name) {
  auto bad = [&](const std::string& why) {
    return Error(errc::invalid_argument, "image name " + quote(name) + " " + why);
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

Result<void> require_blobs(std::string_view name, const Manifest& manifest,
                           const std::function<bool(const Digest&)>& present) {
  for (const Digest& digest : manifest.digests()) {
    if (present(digest)) continue;
    std::string path;  // the first file that names it: every digest has one
    for (uint32_t i = 0; i < manifest.size() && path.empty(); ++i) {
      const Entry e = manifest.entry(i);
      if (e.type == EntryType::file && manifest.digest_of(e) == digest) path = manifest.path(i);
    }
    return Error(std::make_error_code(std::errc::no_such_file_or_directory),
                 "image '" + std::string(name) + "': '" + path + "': blob " + digest.str() +
                     " is missing from the store");
  }
  return ok();
}

}  // namespace pagerfs::image
