// Image manifest v1: encode/parse round trips, the breadth-first layout and
// its lookups, every encode error, and every parse check, reached by
// re-sealing the checksums after damaging one field on purpose.
#include "pagerfs/store/image_manifest.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <functional>
#include <random>
#include <set>
#include <stdexcept>

#include "util/endian.h"

namespace pagerfs::image {
namespace {

using Bytes = std::vector<std::byte>;

Digest digest_of(uint8_t seed) {
  std::array<uint8_t, Digest::kSize> raw{};
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(seed * 31 + i * 7);
  return Digest(raw);
}

EntrySpec dir(std::string path, uint32_t perm = 0755) {
  EntrySpec e;
  e.path = std::move(path);
  e.type = EntryType::directory;
  e.mode = S_IFDIR | perm;
  return e;
}

EntrySpec file(std::string path, uint8_t content, uint64_t size = 100) {
  EntrySpec e;
  e.path = std::move(path);
  e.type = EntryType::file;
  e.mode = S_IFREG | 0644;
  e.size = size;
  e.digest = digest_of(content);
  return e;
}

EntrySpec symlink(std::string path, std::string target) {
  EntrySpec e;
  e.path = std::move(path);
  e.type = EntryType::symlink;
  e.mode = S_IFLNK | 0777;
  e.symlink_target = std::move(target);
  return e;
}

EntrySpec hardlink(std::string path, std::string target) {
  EntrySpec e;
  e.path = std::move(path);
  e.type = EntryType::hardlink;
  e.hardlink_target = std::move(target);
  return e;
}

EntrySpec special(std::string path, uint32_t mode, uint64_t rdev = 0) {
  EntrySpec e;
  e.path = std::move(path);
  e.type = EntryType::special;
  e.mode = mode;
  e.rdev = rdev;
  return e;
}

Bytes encode_ok(std::vector<EntrySpec> specs) {
  auto bytes = encode(std::move(specs));
  EXPECT_TRUE(bytes) << bytes.error().message();
  return bytes ? std::move(bytes).value() : Bytes{};
}

Manifest parse_ok(Bytes bytes) {
  auto m = Manifest::parse(std::move(bytes));
  if (!m) ADD_FAILURE() << m.error().message();
  return std::move(m).value();
}


uint32_t at(const Manifest& m, std::string_view path) {
  const auto index = m.find(path);
  EXPECT_TRUE(index) << path;
  return index.value_or(0);
}

// Every entry type, xattrs, two hard links to one file, a shared digest.
std::vector<EntrySpec> every_type() {
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

TEST(ImageManifest, RoundTripsEveryEntryType) {
  std::vector<EntrySpec> specs = every_type();
  std::mt19937 rng(7);
  std::shuffle(specs.begin(), specs.end(), rng);
  const Manifest m = parse_ok(encode_ok(specs));
  ASSERT_EQ(m.size(), specs.size());

  for (const EntrySpec& s : specs) {
    SCOPED_TRACE(s.path);
    const auto index = m.find(s.path);
    ASSERT_TRUE(index);
    const Entry e = m.entry(*index);
    EXPECT_EQ(e.index, *index);
    EXPECT_EQ(e.type, s.type);
    EXPECT_EQ(e.mode, s.mode);
    EXPECT_EQ(e.uid, s.uid);
    EXPECT_EQ(e.gid, s.gid);
    EXPECT_EQ(e.mtime_sec, s.mtime_sec);
    EXPECT_EQ(e.mtime_nsec, s.mtime_nsec);
    EXPECT_EQ(m.path(*index), s.path);
    const size_t slash = s.path.rfind('/');
    EXPECT_EQ(e.name, slash == std::string::npos ? s.path : s.path.substr(slash + 1));
    std::vector<Xattr> sorted = s.xattrs;
    std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.name < b.name; });
    EXPECT_EQ(m.xattrs(e), sorted);
    for (const Xattr& x : s.xattrs)
      EXPECT_EQ(m.xattr(e, x.name), std::optional<std::string_view>(x.value));
    EXPECT_EQ(m.xattr(e, "user.missing"), std::nullopt);
    switch (s.type) {
      case EntryType::file:
        EXPECT_EQ(e.size, s.size);
        EXPECT_EQ(m.digest_of(e), s.digest);
        break;
      case EntryType::symlink:
        EXPECT_EQ(m.symlink_target(e), s.symlink_target);
        EXPECT_EQ(e.size, s.symlink_target.size());
        break;
      case EntryType::hardlink: EXPECT_EQ(m.resolve(*index), at(m, s.hardlink_target)); break;
      case EntryType::special:
        EXPECT_EQ(e.ref, s.rdev);
        EXPECT_EQ(e.size, 0u);
        break;
      case EntryType::directory: EXPECT_EQ(e.size, 0u); break;
    }
    if (s.type != EntryType::symlink) {
      EXPECT_EQ(m.symlink_target(e), "");
    }
  }
  // Two files share content: one digest, sorted table.
  ASSERT_EQ(m.digests().size(), 2u);
  EXPECT_LT(m.digests()[0], m.digests()[1]);
}

TEST(ImageManifest, EncodingIsIndependentOfInputOrder) {
  std::vector<EntrySpec> specs = every_type();
  const Bytes first = encode_ok(specs);
  std::reverse(specs.begin(), specs.end());
  EXPECT_EQ(encode_ok(specs), first);
}

TEST(ImageManifest, EntriesAreBreadthFirstAndSortedByParentAndName) {
  const Manifest m = parse_ok(encode_ok(every_type()));
  const Entry root = m.entry(0);
  EXPECT_EQ(root.name, "");
  EXPECT_EQ(root.parent, 0u);
  EXPECT_EQ(root.type, EntryType::directory);
  EXPECT_EQ(m.path(0), "");

  std::vector<std::string> order;
  for (uint32_t i = 0; i < m.size(); ++i) order.push_back(m.path(i));
  const std::vector<std::string> expected = {
      "",
      "dev-null",
      "disk",
      "empty-dir",
      "fifo",
      "libc-link2",
      "sock",
      "usr",
      "usr/lib",
      "usr/libc-link",
      "usr/share",
      "usr/lib/empty",
      "usr/lib/libc.so",
      "usr/lib/libc.so.6",
      "usr/share/copy-of-libc",
  };
  EXPECT_EQ(order, expected);

  for (uint32_t i = 1; i < m.size(); ++i) {
    const Entry e = m.entry(i);
    EXPECT_LT(e.parent, i);
    const auto c = m.children(e.parent);
    EXPECT_GE(i, c.first);
    EXPECT_LT(i, c.first + c.count);
  }
  const auto top = m.children(0);
  EXPECT_EQ(top.first, 1u);
  EXPECT_EQ(top.count, 7u);
  const auto lib = m.children(at(m, "usr/lib"));
  EXPECT_EQ(lib.first, at(m, "usr/lib/empty"));
  EXPECT_EQ(lib.count, 3u);
  EXPECT_EQ(m.children(at(m, "empty-dir")).count, 0u);
  EXPECT_EQ(m.children(at(m, "fifo")).count, 0u);
  EXPECT_EQ(m.children(m.size()).count, 0u);
}

TEST(ImageManifest, HardLinksShareTheirTargetsLinkCount) {
  const Manifest m = parse_ok(encode_ok(every_type()));
  const uint32_t target = at(m, "usr/lib/libc.so.6");
  const uint32_t link1 = at(m, "usr/libc-link");
  const uint32_t link2 = at(m, "libc-link2");
  EXPECT_EQ(m.nlink(target), 3u);
  EXPECT_EQ(m.nlink(link1), 3u);
  EXPECT_EQ(m.nlink(link2), 3u);
  EXPECT_EQ(m.resolve(link1), target);
  EXPECT_EQ(m.resolve(link2), target);
  EXPECT_EQ(m.resolve(target), target);
  const Entry link = m.entry(link1);
  EXPECT_EQ(link.type, EntryType::hardlink);
  EXPECT_EQ(link.mode, 0u);
  EXPECT_EQ(link.ref, target);
  // The copy has the same content but is a different file.
  EXPECT_EQ(m.nlink(at(m, "usr/share/copy-of-libc")), 1u);
  EXPECT_EQ(m.nlink(at(m, "fifo")), 1u);
  EXPECT_EQ(m.nlink(at(m, "usr/lib/libc.so")), 1u);
}

TEST(ImageManifest, DirectoryLinkCountIsTwoPlusSubdirectories) {
  const Manifest m = parse_ok(encode_ok(every_type()));
  EXPECT_EQ(m.nlink(0), 4u);             // usr, empty-dir
  EXPECT_EQ(m.nlink(at(m, "usr")), 4u);  // lib, share
  EXPECT_EQ(m.nlink(at(m, "usr/lib")), 2u);
  EXPECT_EQ(m.nlink(at(m, "empty-dir")), 2u);
}

TEST(ImageManifest, FindChildIsBytewise) {
  // '.' < '0' < 'b' < 0xc3 (UTF-8 lead bytes sort after ASCII).
  const std::vector<std::string> names = {"a", "a.b",      "a0",    "ab", "b",
                                          "B", "\xc3\xa9", "a\x7f", "zzz"};
  std::vector<EntrySpec> specs = {dir("")};
  for (const std::string& n : names) specs.push_back(file(n, 1));
  specs.push_back(dir("sub"));
  specs.push_back(file("sub/a", 1));
  const Manifest m = parse_ok(encode_ok(specs));

  std::vector<std::string> sorted = names;
  sorted.push_back("sub");
  std::sort(sorted.begin(), sorted.end());
  const auto top = m.children(0);
  ASSERT_EQ(top.count, sorted.size());
  for (uint32_t k = 0; k < top.count; ++k) {
    EXPECT_EQ(m.entry(top.first + k).name, sorted[k]);
    EXPECT_EQ(m.find_child(0, sorted[k]), top.first + k) << sorted[k];
  }
  for (const char* miss :
       {"", "a.", "a.a", "a.c", "a/", "a1", "aa", "ac", "A", "0", "c", "zzzz", "zz", "sub/a"}) {
    EXPECT_EQ(m.find_child(0, miss), std::nullopt) << miss;
  }
  EXPECT_EQ(m.find_child(0, std::string_view("a\0", 2)), std::nullopt);
  EXPECT_EQ(m.find_child(at(m, "sub"), "a"), at(m, "sub/a"));
  EXPECT_EQ(m.find_child(at(m, "sub"), "b"), std::nullopt);
  EXPECT_EQ(m.find_child(at(m, "a"), "a"), std::nullopt);  // not a directory
  EXPECT_EQ(m.find_child(m.size() + 5, "a"), std::nullopt);
}

TEST(ImageManifest, RootOnly) {
  const Manifest m = parse_ok(encode_ok({dir("")}));
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(m.children(0).count, 0u);
  EXPECT_EQ(m.nlink(0), 2u);
  EXPECT_EQ(m.find_child(0, "x"), std::nullopt);
  EXPECT_TRUE(m.digests().empty());
}

TEST(ImageManifest, LongestNamesAndTargets) {
  const std::string name(255, 'n');
  const std::string target(4095, 't');
  const std::string value(65536, 'v');
  EntrySpec link = symlink(name, target);
  link.xattrs = {{std::string(255, 'x'), value}};
  const Manifest m = parse_ok(encode_ok({dir(""), link}));
  const Entry e = m.entry(1);
  EXPECT_EQ(e.name, name);
  EXPECT_EQ(m.symlink_target(e), target);
  EXPECT_EQ(m.xattr(e, std::string(255, 'x')), std::optional<std::string_view>(value));
}

// ---- encode errors ----------------------------------------------------------

struct EncodeCase {
  const char* name;
  std::function<void(std::vector<EntrySpec>&)> mutate;
  const char* message;  // a substring of the expected message
};

std::vector<EntrySpec> small_specs() {
  return {dir(""),
          dir("a"),
          file("a/f", 1),
          symlink("a/l", "f"),
          hardlink("h", "a/f"),
          special("p", S_IFIFO | 0644)};
}

EntrySpec& spec(std::vector<EntrySpec>& specs, std::string_view path) {
  for (EntrySpec& e : specs) {
    if (e.path == path) return e;
  }
  throw std::logic_error("no spec");
}

class EncodeErrorTest : public ::testing::TestWithParam<EncodeCase> {};

TEST_P(EncodeErrorTest, IsRejected) {
  std::vector<EntrySpec> specs = small_specs();
  ASSERT_TRUE(encode(specs)) << "the sample must be valid";
  GetParam().mutate(specs);
  auto bytes = encode(specs);
  ASSERT_FALSE(bytes) << GetParam().name;
  EXPECT_EQ(bytes.error().code(), errc::invalid_argument);
  EXPECT_NE(bytes.error().message().find(GetParam().message), std::string::npos)
      << bytes.error().message();
  EXPECT_EQ(bytes.error().message().find('\n'), std::string::npos) << "one line";
}

const EncodeCase kEncodeCases[] = {
    {"dotdot", [](auto& s) { s.push_back(file("a/../b", 1)); },
     "image: 'a/../b': bad path component '..'"},
    {"dot", [](auto& s) { s.push_back(file("a/./b", 1)); },
     "image: 'a/./b': bad path component '.'"},
    {"empty component", [](auto& s) { s.push_back(file("a//b", 1)); },
     "'a//b': empty path component"},
    {"leading slash", [](auto& s) { s.push_back(file("/b", 1)); }, "'/b': path starts with '/'"},
    {"trailing slash", [](auto& s) { s.push_back(dir("b/")); }, "'b/': path ends with '/'"},
    {"nul", [](auto& s) { s.push_back(file(std::string("a/b\0c", 5), 1)); }, "(contains NUL)"},
    {"long name", [](auto& s) { s.push_back(file("a/" + std::string(256, 'x'), 1)); },
     "longer than 255 bytes"},
    {"duplicate", [](auto& s) { s.push_back(file("a/f", 2)); }, "image: 'a/f': duplicate path"},
    {"duplicate root", [](auto& s) { s.push_back(dir("")); }, "image: '': duplicate path"},
    {"missing parent", [](auto& s) { s.push_back(file("b/c/d", 1)); },
     "'b/c/d': parent 'b/c' is missing"},
    {"parent not dir", [](auto& s) { s.push_back(file("a/f/g", 1)); },
     "'a/f/g': parent 'a/f' is not a directory"},
    {"missing root", [](auto& s) { s.erase(s.begin()); }, "no root entry"},
    {"root not dir", [](auto& s) { s[0] = file("", 1); }, "the root is not a directory"},
    {"no entries", [](auto& s) { s.clear(); }, "no root entry"},
    {"hardlink missing", [](auto& s) { spec(s, "h").hardlink_target = "a/nope"; },
     "'h': hardlink target 'a/nope' does not exist"},
    {"hardlink to dir", [](auto& s) { spec(s, "h").hardlink_target = "a"; },
     "'h': hardlink target 'a' is a directory"},
    {"hardlink to hardlink", [](auto& s) { s.push_back(hardlink("h2", "h")); },
     "'h2': hardlink target 'h' is a hardlink"},
    {"hardlink to itself", [](auto& s) { spec(s, "h").hardlink_target = "h"; },
     "hardlink target 'h' is a hardlink"},
    {"hardlink without target", [](auto& s) { spec(s, "h").hardlink_target = ""; },
     "a hardlink without a target"},
    {"hardlink mode", [](auto& s) { spec(s, "h").mode = S_IFREG | 0644; },
     "a hardlink's mode must be 0"},
    {"hardlink uid", [](auto& s) { spec(s, "h").uid = 1; }, "'h': an owner is set on a hardlink"},
    {"hardlink mtime", [](auto& s) { spec(s, "h").mtime_sec = 1; },
     "an mtime is set on a hardlink"},
    {"hardlink xattr",
     [](auto& s) {
       spec(s, "h").xattrs = {{"user.a", "b"}};
     },
     "an xattr is set on a hardlink"},
    {"mode extra bits", [](auto& s) { spec(s, "a/f").mode |= 0200000; },
     "'a/f': mode 0300644: has bits outside"},
    {"mode type dir", [](auto& s) { spec(s, "a").mode = S_IFREG | 0755; },
     "'a': mode 0100755: type bits are not S_IFDIR"},
    {"mode type file", [](auto& s) { spec(s, "a/f").mode = 0644; }, "type bits are not S_IFREG"},
    {"mode type symlink", [](auto& s) { spec(s, "a/l").mode = S_IFREG | 0777; },
     "type bits are not S_IFLNK"},
    {"mode type special", [](auto& s) { spec(s, "p").mode = S_IFDIR | 0755; },
     "not S_IFCHR, S_IFBLK, S_IFIFO or S_IFSOCK"},
    {"nsec", [](auto& s) { spec(s, "a/f").mtime_nsec = 1'000'000'000; },
     "'a/f': mtime nanoseconds 1000000000"},
    {"symlink empty", [](auto& s) { spec(s, "a/l").symlink_target = ""; },
     "'a/l': symlink target '' is empty"},
    {"symlink long", [](auto& s) { spec(s, "a/l").symlink_target = std::string(4096, 'x'); },
     "longer than 4095"},
    {"symlink nul", [](auto& s) { spec(s, "a/l").symlink_target = std::string("x\0y", 3); },
     "contains NUL"},
    {"symlink size", [](auto& s) { spec(s, "a/l").size = 7; },
     "size 7 is not the symlink target's length 1"},
    {"xattr empty name",
     [](auto& s) {
       spec(s, "a/f").xattrs = {{"", "v"}};
     },
     "xattr '' has an empty name"},
    {"xattr nul",
     [](auto& s) {
       spec(s, "a/f").xattrs = {{std::string("u\0x", 3), "v"}};
     },
     "containing NUL"},
    {"xattr long name",
     [](auto& s) {
       spec(s, "a/f").xattrs = {{std::string(256, 'n'), "v"}};
     },
     "name longer than 255"},
    {"xattr value",
     [](auto& s) {
       spec(s, "a/f").xattrs = {{"user.big", std::string(65537, 'v')}};
     },
     "value longer than 65536"},
    {"xattr duplicate",
     [](auto& s) {
       spec(s, "a/f").xattrs = {{"user.b", "1"}, {"user.a", ""}, {"user.b", "2"}};
     },
     "'a/f': duplicate xattr 'user.b'"},
    {"dir size", [](auto& s) { spec(s, "a").size = uint64_t{1} << 63; }, "'a': size 9223372036854775808 is not below 2^63"},
    {"special size", [](auto& s) { spec(s, "p").size = 1; }, "a size is set on a special"},
    {"rdev on file", [](auto& s) { spec(s, "a/f").rdev = 1; }, "rdev is set on a file"},
    {"digest on dir", [](auto& s) { spec(s, "a").digest = digest_of(3); },
     "a digest is set on a directory"},
    {"target on file", [](auto& s) { spec(s, "a/f").symlink_target = "x"; },
     "a symlink target is set on a file"},
    {"unknown type", [](auto& s) { spec(s, "a/f").type = static_cast<EntryType>(9); },
     "unknown entry type 9"},
};

INSTANTIATE_TEST_SUITE_P(All, EncodeErrorTest, ::testing::ValuesIn(kEncodeCases),
                         [](const auto& info) {
                           std::string name = info.param.name;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

// ---- parse errors -----------------------------------------------------------

// Field offsets (man/pagerfs-store.5), for damaging manifests on purpose.
constexpr size_t kVersionOff = 8, kHeaderSizeOff = 12, kEntryCountOff = 16, kDigestCountOff = 24,
                 kStringsSizeOff = 32, kBodyChecksumOff = 40, kFlagsOff = 48, kReservedOff = 52,
                 kHeaderChecksumOff = 56;
constexpr size_t kParent = 0, kNameOffset = 4, kNameLength = 8, kType = 10, kReserved8 = 11,
                 kMode = 12, kUid = 16, kMtimeNsec = 32, kXattrsSize = 36, kSize = 40, kRef = 48,
                 kXattrsOffset = 56, kReserved32 = 60;

uint32_t get32(const Bytes& b, size_t off) {
  return load_le32(b.data() + off);
}
uint64_t get64(const Bytes& b, size_t off) {
  return load_le64(b.data() + off);
}
void put16(Bytes& b, size_t off, uint16_t v) {
  store_le16(b.data() + off, v);
}
void put32(Bytes& b, size_t off, uint32_t v) {
  store_le32(b.data() + off, v);
}
void put64(Bytes& b, size_t off, uint64_t v) {
  store_le64(b.data() + off, v);
}

// Recomputes both checksums, so that a damaged field reaches its own check.
void reseal(Bytes& b) {
  put64(b, kBodyChecksumOff, XXH3_64bits(b.data() + kHeaderSize, b.size() - kHeaderSize));
  put64(b, kHeaderChecksumOff, XXH3_64bits(b.data(), kHeaderChecksumOff));
}

size_t entry_at(uint32_t index) {
  return kHeaderSize + size_t{index} * kEntrySize;
}
size_t digests_at(const Bytes& b) {
  return kHeaderSize + get64(b, kEntryCountOff) * kEntrySize;
}
size_t strings_at(const Bytes& b) {
  return digests_at(b) + get64(b, kDigestCountOff) * kDigestSize;
}
size_t name_at(const Bytes& b, uint32_t index) {
  return strings_at(b) + get32(b, entry_at(index) + kNameOffset);
}

void swap_entries(Bytes& b, uint32_t i, uint32_t j) {
  std::swap_ranges(b.begin() + static_cast<ptrdiff_t>(entry_at(i)),
                   b.begin() + static_cast<ptrdiff_t>(entry_at(i) + kEntrySize),
                   b.begin() + static_cast<ptrdiff_t>(entry_at(j)));
}

// Entry indexes of the sample below, breadth first.
enum : uint32_t { kRoot, kA, kB, kAX, kAY, kBDev, kBH, kBH2, kBL, kBZz, kSampleSize };

Bytes sample_manifest() {
  EntrySpec y = file("a/y", 2, 20);
  y.xattrs = {{"user.b", "2"}, {"user.a", "1"}};
  return encode_ok({dir(""), dir("a"), dir("b"), file("a/x", 1, 10), y, symlink("b/l", "../a/x"),
                    hardlink("b/h", "a/x"), hardlink("b/h2", "a/y"),
                    special("b/dev", S_IFCHR | 0600, 0x0103), file("b/zz", 1, 10)});
}

TEST(ImageManifestParse, SampleLayoutIsAsTheTestsAssume) {
  const Manifest m = parse_ok(sample_manifest());
  ASSERT_EQ(m.size(), kSampleSize);
  const std::pair<uint32_t, const char*> expected[] = {
      {kA, "a"},    {kB, "b"},      {kAX, "a/x"}, {kAY, "a/y"},  {kBDev, "b/dev"},
      {kBH, "b/h"}, {kBH2, "b/h2"}, {kBL, "b/l"}, {kBZz, "b/zz"}};
  for (const auto& [index, path] : expected) EXPECT_EQ(m.path(index), path);
  EXPECT_EQ(m.digests().size(), 2u);
}

TEST(ImageManifestParse, EveryTruncationFails) {
  const Bytes full = sample_manifest();
  for (size_t length = 0; length < full.size(); ++length) {
    auto m = Manifest::parse(Bytes(full.begin(), full.begin() + static_cast<ptrdiff_t>(length)));
    ASSERT_FALSE(m) << "length " << length;
    EXPECT_EQ(m.error().code(), errc::corrupt_blob) << m.error().message();
  }
  Bytes longer = full;
  longer.push_back(std::byte{0});
  EXPECT_FALSE(Manifest::parse(longer));
  longer.resize(full.size() + kDigestSize);
  EXPECT_FALSE(Manifest::parse(longer));
}

TEST(ImageManifestParse, EverySingleBitFlipFails) {
  const Bytes full = sample_manifest();
  for (size_t i = 0; i < full.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes damaged = full;
      damaged[i] ^= static_cast<std::byte>(1 << bit);
      auto m = Manifest::parse(std::move(damaged));
      ASSERT_FALSE(m) << "byte " << i << " bit " << bit;
      EXPECT_EQ(m.error().message().find('\n'), std::string::npos);
    }
  }
}

TEST(ImageManifestParse, ResealedSampleIsValid) {
  Bytes b = sample_manifest();
  reseal(b);
  EXPECT_TRUE(Manifest::parse(b));
}

struct ParseCase {
  const char* name;
  std::function<void(Bytes&)> mutate;  // then resealed, unless `stale`
  errc code;
  const char* message;
  bool stale = false;  // keep the old checksums
};

class ParseErrorTest : public ::testing::TestWithParam<ParseCase> {};

TEST_P(ParseErrorTest, IsRejected) {
  Bytes b = sample_manifest();
  GetParam().mutate(b);
  if (!GetParam().stale) reseal(b);
  auto m = Manifest::parse(std::move(b));
  ASSERT_FALSE(m) << GetParam().name;
  EXPECT_EQ(m.error().code(), GetParam().code) << m.error().message();
  EXPECT_NE(m.error().message().find(GetParam().message), std::string::npos) << m.error().message();
  EXPECT_EQ(m.error().message().find("image manifest: "), 0u) << m.error().message();
  EXPECT_EQ(m.error().message().find('\n'), std::string::npos) << "one line";
}

const ParseCase kParseCases[] = {
    // Header.
    {"magic", [](Bytes& b) { b[0] = std::byte{'X'}; }, errc::corrupt_blob, "bad magic"},
    {"version", [](Bytes& b) { put32(b, kVersionOff, 2); }, errc::unsupported_format,
     "version 2 is not supported", true},
    {"version huge", [](Bytes& b) { put32(b, kVersionOff, 0xffffffff); }, errc::unsupported_format,
     "version 4294967295 is not supported", true},
    {"version 0", [](Bytes& b) { put32(b, kVersionOff, 0); }, errc::corrupt_blob,
     "version 0 is invalid"},
    {"header checksum", [](Bytes& b) { b[kEntryCountOff] ^= std::byte{1}; }, errc::corrupt_blob,
     "header checksum mismatch", true},
    {"body checksum", [](Bytes& b) { b.back() ^= std::byte{1}; }, errc::corrupt_blob,
     "body checksum mismatch", true},
    {"header size", [](Bytes& b) { put32(b, kHeaderSizeOff, 128); }, errc::corrupt_blob,
     "header size 128 is not 64"},
    {"flags", [](Bytes& b) { put32(b, kFlagsOff, 4); }, errc::unsupported_format,
     "unknown header flags 0x4"},
    {"header reserved", [](Bytes& b) { put32(b, kReservedOff, 1); }, errc::corrupt_blob,
     "reserved header field is not zero"},
    {"no entries", [](Bytes& b) { put64(b, kEntryCountOff, 0); }, errc::corrupt_blob,
     "entry count is 0"},
    {"too many entries", [](Bytes& b) { put64(b, kEntryCountOff, uint64_t{1} << 32); },
     errc::corrupt_blob, "entry count 4294967296 is too large"},
    {"strings size", [](Bytes& b) { put64(b, kStringsSizeOff, uint64_t{1} << 32); },
     errc::corrupt_blob, "string table size 4294967296 is not below 2^32"},
    {"strings size off", [](Bytes& b) { put64(b, kStringsSizeOff, get64(b, kStringsSizeOff) + 1); },
     errc::corrupt_blob, "truncated or trailing data"},
    {"entry count off", [](Bytes& b) { put64(b, kEntryCountOff, get64(b, kEntryCountOff) - 1); },
     errc::corrupt_blob, "truncated or trailing data"},
    {"digest count huge", [](Bytes& b) { put64(b, kDigestCountOff, ~uint64_t{0} / 32 + 1); },
     errc::corrupt_blob, "truncated or trailing data"},
    {"digest count max", [](Bytes& b) { put64(b, kDigestCountOff, ~uint64_t{0}); },
     errc::corrupt_blob, "truncated or trailing data"},
    // Digest table.
    {"unsorted digests",
     [](Bytes& b) {
       const size_t d = digests_at(b);
       std::swap_ranges(b.begin() + static_cast<ptrdiff_t>(d),
                        b.begin() + static_cast<ptrdiff_t>(d + 32),
                        b.begin() + static_cast<ptrdiff_t>(d + 32));
     },
     errc::corrupt_blob, "digest table: digest 1 is not greater than digest 0"},
    {"duplicate digests",
     [](Bytes& b) {
       const size_t d = digests_at(b);
       std::copy_n(b.begin() + static_cast<ptrdiff_t>(d), 32,
                   b.begin() + static_cast<ptrdiff_t>(d + 32));
     },
     errc::corrupt_blob, "digest 1 is not greater than digest 0"},
    {"unused digest",
     [](Bytes& b) { put64(b, entry_at(kAY) + kRef, get64(b, entry_at(kAX) + kRef)); },
     errc::corrupt_blob, "is not used by any file"},
    {"digest index", [](Bytes& b) { put64(b, entry_at(kAX) + kRef, 2); }, errc::corrupt_blob,
     "entry 3 ('a/x'): digest index 2 is not below the digest count 2"},
    // Order and names.
    {"parent order", [](Bytes& b) { swap_entries(b, kAY, kBDev); }, errc::corrupt_blob,
     "entry 5 ('a/y'): parent 1 after parent 2"},
    {"parent later", [](Bytes& b) { put32(b, entry_at(kB) + kParent, 5); }, errc::corrupt_blob,
     "entry 2 (name 'b'): parent 5 is not an earlier directory"},
    {"parent self", [](Bytes& b) { put32(b, entry_at(kB) + kParent, kB); }, errc::corrupt_blob,
     "parent 2 is not an earlier directory"},
    {"parent not dir", [](Bytes& b) { put32(b, entry_at(kBZz) + kParent, kAX); },
     errc::corrupt_blob, "entry 9 (name 'zz'): parent 3 is not an earlier directory"},
    {"duplicate name",
     [](Bytes& b) {
       put32(b, entry_at(kBH2) + kNameOffset, get32(b, entry_at(kBH) + kNameOffset));
       put16(b, entry_at(kBH2) + kNameLength, 1);
     },
     errc::corrupt_blob, "entry 7 ('b/h'): duplicate name in its directory"},
    {"unsorted names", [](Bytes& b) { swap_entries(b, kBH, kBH2); }, errc::corrupt_blob,
     "entry 7 ('b/h'): names not sorted: 'h' after 'h2'"},
    {"name with slash", [](Bytes& b) { b[name_at(b, kBZz) + 1] = std::byte{'/'}; },
     errc::corrupt_blob, "entry 9: name 'z/' contains '/'"},
    {"name with nul", [](Bytes& b) { b[name_at(b, kBZz) + 1] = std::byte{0}; }, errc::corrupt_blob,
     "entry 9: name 'z\\x00' contains NUL"},
    {"name dotdot",
     [](Bytes& b) {
       b[name_at(b, kBH2)] = std::byte{'.'};
       b[name_at(b, kBH2) + 1] = std::byte{'.'};
     },
     errc::corrupt_blob, "entry 7: name '..' is '.' or '..'"},
    {"name dot",
     [](Bytes& b) {
       put32(b, entry_at(kBZz) + kNameOffset,
             static_cast<uint32_t>(get32(b, entry_at(kBL) + kRef)));
       put16(b, entry_at(kBZz) + kNameLength, 1);  // the '.' of "../a/x"
     },
     errc::corrupt_blob, "entry 9: name '.' is '.' or '..'"},
    {"name empty", [](Bytes& b) { put16(b, entry_at(kBZz) + kNameLength, 0); }, errc::corrupt_blob,
     "entry 9: name '' is empty"},
    {"name outside", [](Bytes& b) { put32(b, entry_at(kBZz) + kNameOffset, 0xfffffff0); },
     errc::corrupt_blob, "entry 9: name [4294967280, +2) is outside the string table"},
    {"root name", [](Bytes& b) { put16(b, entry_at(kRoot) + kNameLength, 1); }, errc::corrupt_blob,
     "entry 0: the root's name is not empty"},
    {"root parent", [](Bytes& b) { put32(b, entry_at(kRoot) + kParent, 1); }, errc::corrupt_blob,
     "the root's parent is 1, not 0"},
    {"root type",
     [](Bytes& b) {
       b[entry_at(kRoot) + kType] = static_cast<std::byte>(EntryType::special);
       put32(b, entry_at(kRoot) + kMode, S_IFIFO | 0755);
     },
     errc::corrupt_blob, "the root is a special"},
    // Fields.
    {"entry reserved8", [](Bytes& b) { b[entry_at(kAX) + kReserved8] = std::byte{1}; },
     errc::corrupt_blob, "entry 3: reserved fields are not zero"},
    {"entry reserved32", [](Bytes& b) { put32(b, entry_at(kBZz) + kReserved32, 1); },
     errc::corrupt_blob, "entry 9: reserved fields are not zero"},
    {"unknown type", [](Bytes& b) { b[entry_at(kAX) + kType] = std::byte{6}; }, errc::corrupt_blob,
     "entry 3: unknown type 6"},
    {"type zero", [](Bytes& b) { b[entry_at(kAX) + kType] = std::byte{0}; }, errc::corrupt_blob,
     "unknown type 0"},
    {"mode bits", [](Bytes& b) { put32(b, entry_at(kAX) + kMode, S_IFREG | 0644 | 0200000); },
     errc::corrupt_blob, "entry 3 ('a/x'): mode 0300644 has bits outside S_IFMT|07777"},
    {"mode mismatch dir", [](Bytes& b) { put32(b, entry_at(kA) + kMode, S_IFREG | 0755); },
     errc::corrupt_blob, "entry 1 ('a'): mode 0100755 type bits are not S_IFDIR"},
    {"mode mismatch file", [](Bytes& b) { put32(b, entry_at(kAX) + kMode, S_IFLNK | 0644); },
     errc::corrupt_blob, "type bits are not S_IFREG"},
    {"mode mismatch special", [](Bytes& b) { put32(b, entry_at(kBDev) + kMode, S_IFREG | 0600); },
     errc::corrupt_blob, "type bits are not S_IFCHR, S_IFBLK, S_IFIFO or S_IFSOCK"},
    {"hardlink mode", [](Bytes& b) { put32(b, entry_at(kBH) + kMode, S_IFREG | 0644); },
     errc::corrupt_blob, "a hardlink's mode must be 0"},
    {"hardlink uid", [](Bytes& b) { put32(b, entry_at(kBH) + kUid, 1); }, errc::corrupt_blob,
     "entry 6 ('b/h'): a hardlink's uid, gid, mtime, size and xattrs must be 0"},
    {"hardlink to directory", [](Bytes& b) { put64(b, entry_at(kBH) + kRef, kA); },
     errc::corrupt_blob, "entry 6 ('b/h'): hardlink target 1 ('a') is a directory"},
    {"hardlink to hardlink", [](Bytes& b) { put64(b, entry_at(kBH) + kRef, kBH2); },
     errc::corrupt_blob, "entry 6 ('b/h'): hardlink target 7 ('b/h2') is a hardlink"},
    {"hardlink to itself", [](Bytes& b) { put64(b, entry_at(kBH) + kRef, kBH); },
     errc::corrupt_blob, "entry 6 ('b/h'): hardlink target 6 ('b/h') is a hardlink"},
    {"hardlink out of range", [](Bytes& b) { put64(b, entry_at(kBH) + kRef, kSampleSize); },
     errc::corrupt_blob, "hardlink target 10 is not an entry"},
    {"hardlink ref huge", [](Bytes& b) { put64(b, entry_at(kBH) + kRef, uint64_t{1} << 32); },
     errc::corrupt_blob, "hardlink target 4294967296 is not an entry"},
    {"nsec", [](Bytes& b) { put32(b, entry_at(kAX) + kMtimeNsec, 1'000'000'000); },
     errc::corrupt_blob, "entry 3 ('a/x'): mtime nanoseconds 1000000000 are not below 10^9"},
    {"dir size", [](Bytes& b) { put64(b, entry_at(kA) + kSize, uint64_t{1} << 63); },
     errc::corrupt_blob, "entry 1 ('a'): size 9223372036854775808 is not below 2^63"},
    {"file size", [](Bytes& b) { put64(b, entry_at(kAX) + kSize, ~uint64_t{0}); },
     errc::corrupt_blob, "entry 3 ('a/x'): size 18446744073709551615 is not below 2^63"},
    {"dir ref", [](Bytes& b) { put64(b, entry_at(kA) + kRef, 1); }, errc::corrupt_blob,
     "a directory's ref must be 0"},
    {"special size", [](Bytes& b) { put64(b, entry_at(kBDev) + kSize, 1); }, errc::corrupt_blob,
     "a special file's size must be 0"},
    // Symlinks.
    {"symlink outside", [](Bytes& b) { put64(b, entry_at(kBL) + kRef, get64(b, kStringsSizeOff)); },
     errc::corrupt_blob, "entry 8 ('b/l'): symlink target ["},
    {"symlink ref huge", [](Bytes& b) { put64(b, entry_at(kBL) + kRef, ~uint64_t{0}); },
     errc::corrupt_blob, "is outside the string table"},
    {"symlink size huge", [](Bytes& b) { put64(b, entry_at(kBL) + kSize, ~uint64_t{0}); },
     errc::corrupt_blob, "is outside the string table"},
    {"symlink empty", [](Bytes& b) { put64(b, entry_at(kBL) + kSize, 0); }, errc::corrupt_blob,
     "symlink target is empty"},
    {"symlink nul",
     [](Bytes& b) { b[strings_at(b) + get64(b, entry_at(kBL) + kRef) + 2] = std::byte{0}; },
     errc::corrupt_blob, "symlink target contains NUL"},
    // Xattrs (a/y: user.a=1, user.b=2: records [1]"user.a"[4]"1" [1]"user.b"[4]"2").
    {"xattrs outside", [](Bytes& b) { put32(b, entry_at(kAY) + kXattrsOffset, 0xffffffff); },
     errc::corrupt_blob, "entry 4 ('a/y'): xattrs [4294967295, +24) are outside the string table"},
    {"xattrs offset without size", [](Bytes& b) { put32(b, entry_at(kAX) + kXattrsOffset, 1); },
     errc::corrupt_blob, "xattrs_offset is not 0 without xattrs"},
    {"xattrs short", [](Bytes& b) { put32(b, entry_at(kAY) + kXattrsSize, 23); },
     errc::corrupt_blob, "xattr record 1 runs past xattrs_size"},
    {"xattrs split", [](Bytes& b) { put32(b, entry_at(kAY) + kXattrsSize, 13); },
     errc::corrupt_blob, "xattr record 1 runs past xattrs_size"},
    {"xattr empty name",
     [](Bytes& b) { b[strings_at(b) + get32(b, entry_at(kAY) + kXattrsOffset)] = std::byte{0}; },
     errc::corrupt_blob, "xattr record 0 has an empty name"},
    {"xattr value length",
     [](Bytes& b) { put32(b, strings_at(b) + get32(b, entry_at(kAY) + kXattrsOffset) + 7, 1000); },
     errc::corrupt_blob, "xattr record 0 runs past xattrs_size"},
    {"xattr unsorted",
     [](Bytes& b) {
       b[strings_at(b) + get32(b, entry_at(kAY) + kXattrsOffset) + 12 + 6] = std::byte{'0'};
     },
     errc::corrupt_blob, "xattr record 1 'user.0' is not sorted after 'user.a'"},
    {"xattr duplicate",
     [](Bytes& b) {
       b[strings_at(b) + get32(b, entry_at(kAY) + kXattrsOffset) + 12 + 6] = std::byte{'a'};
     },
     errc::corrupt_blob, "xattr record 1 'user.a' is a duplicate"},
    {"xattr nul name",
     [](Bytes& b) {
       b[strings_at(b) + get32(b, entry_at(kAY) + kXattrsOffset) + 2] = std::byte{0};
     },
     errc::corrupt_blob, "xattr record 0 has a name containing NUL"},
};

INSTANTIATE_TEST_SUITE_P(All, ParseErrorTest, ::testing::ValuesIn(kParseCases),
                         [](const auto& info) {
                           std::string name = info.param.name;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(ImageManifestParse, XattrValueLimit) {
  // A record of 65537 bytes of value, built by hand: encode() refuses it.
  EntrySpec f = file("f", 1);
  f.xattrs = {{"user.v", std::string(65536, 'v')}};
  Bytes b = encode_ok({dir(""), f});
  ASSERT_TRUE(Manifest::parse(b));
  const size_t records = strings_at(b) + get32(b, entry_at(1) + kXattrsOffset);
  put32(b, records + 7, 65537);
  b.push_back(std::byte{'v'});
  put32(b, entry_at(1) + kXattrsSize, get32(b, entry_at(1) + kXattrsSize) + 1);
  put64(b, kStringsSizeOff, get64(b, kStringsSizeOff) + 1);
  reseal(b);
  auto m = Manifest::parse(b);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("has a value longer than 65536 bytes"), std::string::npos)
      << m.error().message();
}

TEST(ImageManifestParse, NameLimit) {
  // A name pointed at a 256-byte symlink target: inside the table, too long.
  Bytes b = encode_ok({dir(""), file("f", 1), symlink("l", std::string(256, 't'))});
  put32(b, entry_at(1) + kNameOffset, static_cast<uint32_t>(get64(b, entry_at(2) + kRef)));
  put16(b, entry_at(1) + kNameLength, 256);
  reseal(b);
  auto m = Manifest::parse(b);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("entry 1: name 'tttt"), std::string::npos)
      << m.error().message();
  EXPECT_NE(m.error().message().find("' is longer than 255 bytes"), std::string::npos)
      << m.error().message();
}

TEST(ImageManifestParse, SymlinkTargetLimit) {
  Bytes b = encode_ok({dir(""), symlink("l", std::string(4095, 't'))});
  b.push_back(std::byte{'t'});
  put64(b, entry_at(1) + kSize, 4096);
  put64(b, kStringsSizeOff, get64(b, kStringsSizeOff) + 1);
  reseal(b);
  auto m = Manifest::parse(b);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("symlink target is longer than 4095 bytes"), std::string::npos)
      << m.error().message();
}

TEST(ImageManifestParse, MessagesEscapeControlBytes) {
  Bytes b = encode_ok({dir(""), file("a\nb", 1), file("c", 2)});
  put32(b, entry_at(2) + kMode, 0);
  reseal(b);
  auto m = Manifest::parse(b);
  ASSERT_FALSE(m);
  Bytes c = encode_ok({dir(""), dir("a\nb"), file("a\nb/c", 2)});
  put32(c, entry_at(2) + kMode, 0);
  reseal(c);
  m = Manifest::parse(c);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("entry 2 ('a\\x0ab/c')"), std::string::npos)
      << m.error().message();
  EXPECT_EQ(m.error().message().find('\n'), std::string::npos);
}

// ---- a large tree -------------------------------------------------------------

TEST(ImageManifest, LargeTreeRoundTrips) {
  // 40 top directories x 60 subdirectories x 83 files, plus links: ~200k entries.
  std::vector<EntrySpec> specs;
  specs.push_back(dir(""));
  std::mt19937_64 rng(42);
  const char* kExtensions[] = {".so", ".h", ".py", ".txt", "", ".conf", ".1.gz"};
  for (int t = 0; t < 40; ++t) {
    const std::string top = "top" + std::to_string(t);
    specs.push_back(dir(top));
    for (int s = 0; s < 60; ++s) {
      const std::string sub = top + "/sub-" + std::to_string(s * 7919 % 1000);
      specs.push_back(dir(sub));
      for (int f = 0; f < 83; ++f) {
        const std::string name = "file_" + std::to_string(rng() % 100000) + "_" +
                                 std::to_string(f) + kExtensions[f % std::size(kExtensions)];
        if (f == 82) {
          specs.push_back(
              hardlink(sub + "/" + name, sub + "/" + specs.back().path.substr(sub.size() + 1)));
        } else if (f % 20 == 19) {
          specs.push_back(symlink(sub + "/" + name, "../" + name));
        } else {
          specs.push_back(file(sub + "/" + name, static_cast<uint8_t>(rng()), rng() % 100000));
        }
      }
    }
  }
  const size_t count = specs.size();
  ASSERT_GT(count, 200'000u);
  std::shuffle(specs.begin(), specs.end(), rng);
  const Bytes bytes = encode_ok(specs);
  const Manifest m = parse_ok(bytes);
  ASSERT_EQ(m.size(), count);
  EXPECT_EQ(m.nlink(0), 2u + 40u);

  std::set<Digest> digests;
  for (size_t k = 0; k < specs.size(); k += 97) {
    const EntrySpec& s = specs[k];
    SCOPED_TRACE(s.path);
    const auto index = m.find(s.path);
    ASSERT_TRUE(index);
    EXPECT_EQ(m.path(*index), s.path);
    const Entry e = m.entry(*index);
    EXPECT_EQ(e.type, s.type);
    if (s.type == EntryType::file) {
      EXPECT_EQ(m.digest_of(e), s.digest);
    }
    if (s.type == EntryType::directory && !s.path.empty()) {
      EXPECT_EQ(m.nlink(*index), s.path.find('/') == std::string::npos ? 62u : 2u);
    }
    if (s.type == EntryType::hardlink) {
      EXPECT_EQ(m.path(m.resolve(*index)), s.hardlink_target);
    }
    EXPECT_FALSE(m.find(s.path + "x"));
  }
  for (const EntrySpec& s : specs) {
    if (s.type == EntryType::file) digests.insert(s.digest);
  }
  EXPECT_EQ(m.digests().size(), digests.size());
}

// ---- image names ---------------------------------------------------------------

TEST(ImageName, Rules) {
  for (const char* good : {"a", "debian-12", "Ubuntu_24.04", "x.y.z", "0"}) {
    EXPECT_TRUE(validate_image_name(good)) << good;
  }
  EXPECT_TRUE(validate_image_name(std::string(255, 'n')));
  for (const char* bad : {"", ".hidden", ".", "..", "a/b", "a b", "caf\xc3\xa9", "a\nb", "tmp~"}) {
    auto r = validate_image_name(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), errc::invalid_argument);
    EXPECT_EQ(r.error().message().find('\n'), std::string::npos);
  }
  EXPECT_FALSE(validate_image_name(std::string(256, 'n')));
}

}  // namespace
}  // namespace pagerfs::image
