// Image manifest v1 (read and converted to v2): every check the version 1
// reader makes, each reached by damaging one field of a valid version 1
// manifest on purpose and re-sealing the checksums; truncations and bit
// flips. Version 2 is image_manifest_v2_test.cc.
#include "pagerfs/store/image_manifest.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>
#include <functional>

#include "support/manifest_specs.h"
#include "util/byte_codec.h"

namespace pagerfs::image {
namespace {

using namespace specs;  // dir(), file(), encode_v1_ok(), ...: the tests' vocabulary

constexpr size_t kV1HeaderSize = 64;
// Field offsets (man/pagerfs-store.5), for damaging manifests on purpose.
constexpr size_t kVersionOff = 8, kV1HeaderSizeOff = 12, kEntryCountOff = 16, kDigestCountOff = 24,
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
  put64(b, kBodyChecksumOff, XXH3_64bits(b.data() + kV1HeaderSize, b.size() - kV1HeaderSize));
  put64(b, kHeaderChecksumOff, XXH3_64bits(b.data(), kHeaderChecksumOff));
}

size_t entry_at(uint32_t index) {
  return kV1HeaderSize + size_t{index} * kEntrySize;
}
size_t digests_at(const Bytes& b) {
  return kV1HeaderSize + get64(b, kEntryCountOff) * kEntrySize;
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
  return encode_v1_ok({dir(""), dir("a"), dir("b"), file("a/x", 1, 10), y, symlink("b/l", "../a/x"),
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
  EXPECT_EQ(m.content_count(), 2u);
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
    {"version", [](Bytes& b) { put32(b, kVersionOff, 3); }, errc::unsupported_format,
     "version 3 is not supported", true},
    {"version huge", [](Bytes& b) { put32(b, kVersionOff, 0xffffffff); }, errc::unsupported_format,
     "version 4294967295 is not supported", true},
    {"version 0", [](Bytes& b) { put32(b, kVersionOff, 0); }, errc::corrupt_blob,
     "version 0 is invalid"},
    {"header checksum", [](Bytes& b) { b[kEntryCountOff] ^= std::byte{1}; }, errc::corrupt_blob,
     "header checksum mismatch", true},
    {"body checksum", [](Bytes& b) { b.back() ^= std::byte{1}; }, errc::corrupt_blob,
     "body checksum mismatch", true},
    {"header size", [](Bytes& b) { put32(b, kV1HeaderSizeOff, 128); }, errc::corrupt_blob,
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
                         param_name<ParseCase>);

TEST(ImageManifestParse, XattrValueLimit) {
  // A record of 65537 bytes of value, built by hand: encode() refuses it.
  EntrySpec f = file("f", 1);
  f.xattrs = {{"user.v", std::string(65536, 'v')}};
  Bytes b = encode_v1_ok({dir(""), f});
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
  Bytes b = encode_v1_ok({dir(""), file("f", 1), symlink("l", std::string(256, 't'))});
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
  Bytes b = encode_v1_ok({dir(""), symlink("l", std::string(4095, 't'))});
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
  Bytes b = encode_v1_ok({dir(""), file("a\nb", 1), file("c", 2)});
  put32(b, entry_at(2) + kMode, 0);
  reseal(b);
  auto m = Manifest::parse(b);
  ASSERT_FALSE(m);
  Bytes c = encode_v1_ok({dir(""), dir("a\nb"), file("a\nb/c", 2)});
  put32(c, entry_at(2) + kMode, 0);
  reseal(c);
  m = Manifest::parse(c);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("entry 2 ('a\\x0ab/c')"), std::string::npos)
      << m.error().message();
  EXPECT_EQ(m.error().message().find('\n'), std::string::npos);
}

}  // namespace
}  // namespace pagerfs::image
