// Image manifest v2: what is checked at open (header, page table), what is
// checked as it is used (pages, entries, contents), verify(), packed
// contents, and damage at every byte: every truncation and every byte
// flipped, with the page checksums left stale and with them recomputed
// (forged), never crashes or hangs, never yields a bad name, a loop or an
// index out of range, and verify() rejects it.
#include "pagerfs/store/image_manifest.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <cstdio>
#include <set>

#include "support/manifest_specs.h"
#include "util/byte_codec.h"

namespace pagerfs::image {
namespace {

using namespace specs;  // dir(), file(), encode_ok(), ...: the tests' vocabulary

constexpr size_t kEntryCountOff = 24, kContentCountOff = 32, kBlobCountOff = 40, kPageCountOff = 56,
                 kPageTableChecksumOff = 64, kHeaderChecksumOff = 120;

uint64_t body_offset(const Bytes& b) { return kHeaderSize + load_le64(b.data() + kPageCountOff) * 8; }

// Recomputes the page table and both checksums: a forged manifest whose
// damage only the field checks can find.
void reseal(Bytes& b) {
  const uint64_t pages = load_le64(b.data() + kPageCountOff);
  const uint64_t body = body_offset(b);
  for (uint64_t p = 0; p < pages && body + p * kPageSize < b.size(); ++p) {
    const uint64_t start = body + p * kPageSize;
    store_le64(b.data() + kHeaderSize + p * 8,
               XXH3_64bits(b.data() + start, std::min<uint64_t>(kPageSize, b.size() - start)));
  }
  if (kHeaderSize + pages * 8 <= b.size()) {
    store_le64(b.data() + kPageTableChecksumOff, XXH3_64bits(b.data() + kHeaderSize, pages * 8));
  }
  store_le64(b.data() + kHeaderChecksumOff, XXH3_64bits(b.data(), kHeaderChecksumOff));
}

// A sample with every entry type and a packed content.
std::vector<EntrySpec> sample_specs() {
  std::vector<EntrySpec> specs = every_type();
  EntrySpec a = file("usr/share/packed-a", 7, 100);
  a.packed = PackedRef{digest_of(200), 0};
  EntrySpec b = file("usr/share/packed-b", 8, 50);
  b.packed = PackedRef{digest_of(200), 100};
  specs.push_back(a);
  specs.push_back(b);
  return specs;
}

// Walks everything a mount can reach from the root, through the checked
// lookups only, and checks what it meets: every name a single component,
// every index in range, every walk finite. Errors are allowed (they are
// the point); anything else that goes wrong fails the test.
void walk_everything(const Manifest& m) {
  std::vector<uint32_t> queue{0};
  std::set<uint32_t> seen;
  size_t steps = 0;
  while (!queue.empty()) {
    ASSERT_LT(++steps, 10'000u) << "the walk does not end";
    const uint32_t dir = queue.back();
    queue.pop_back();
    if (!seen.insert(dir).second) {
      ADD_FAILURE() << "directory " << dir << " reached twice (a loop)";
      return;
    }
    auto children = m.children(dir);
    if (!children) continue;
    for (uint32_t i = 0; i < children.value().count; ++i) {
      const uint32_t child = children.value().first + i;
      ASSERT_LT(child, m.size());
      auto e = m.entry(child);
      if (!e) continue;
      const std::string_view name = e.value().name;
      ASSERT_FALSE(name.empty());
      ASSERT_NE(name, ".");
      ASSERT_NE(name, "..");
      ASSERT_EQ(name.find('/'), std::string_view::npos);
      ASSERT_EQ(name.find('\0'), std::string_view::npos);
      auto found = m.find_child(dir, name);
      if (found && found.value()) {
        ASSERT_LT(*found.value(), m.size());
      }
      auto target = m.resolve(child);
      if (target) {
        ASSERT_LT(target.value(), m.size());
      }
      (void)m.xattrs(e.value());
      (void)m.symlink_target(e.value());
      (void)m.path(child);
      if (e.value().type == EntryType::file) {
        auto c = m.content(e.value());
        if (c) {
          auto again = m.find_content(c.value().digest);
          (void)again;
        }
      }
      if (e.value().type == EntryType::directory && e.value().parent == dir) queue.push_back(child);
    }
  }
  for (uint32_t k = 0; k < m.content_count(); ++k) (void)m.content_at(k);
  for (uint32_t k = 0; k < m.blob_count(); ++k) (void)m.blob_at(k);
}

TEST(ImageManifestV2, PackedContentsRoundTrip) {
  const Manifest m = parse_ok(encode_ok(sample_specs()));
  ASSERT_TRUE(m.verify()) << m.verify().error().message();
  const Entry a = entry_ok(m, at(m, "usr/share/packed-a"));
  const Entry b = entry_ok(m, at(m, "usr/share/packed-b"));
  const Content ca = content_ok(m, a), cb = content_ok(m, b);
  EXPECT_TRUE(ca.packed());
  EXPECT_EQ(ca.digest, digest_of(7));
  EXPECT_EQ(ca.blob, digest_of(200));
  EXPECT_EQ(ca.offset, 0u);
  EXPECT_EQ(ca.length, 100u);
  EXPECT_EQ(cb.blob, digest_of(200));
  EXPECT_EQ(cb.offset, 100u);
  EXPECT_EQ(cb.length, 50u);
  EXPECT_NE(ca.table_digest, Digest{});
  // A whole file: its own blob.
  const Content whole = content_ok(m, entry_ok(m, at(m, "usr/lib/libc.so.6")));
  EXPECT_FALSE(whole.packed());
  EXPECT_EQ(whole.blob, digest_of(1));
  EXPECT_EQ(whole.length, 2'000'000u);
  // The content table: by digest.
  auto found = m.find_content(digest_of(8));
  ASSERT_TRUE(found && found.value());
  EXPECT_EQ(found.value()->offset, 100u);
  EXPECT_FALSE(m.find_content(digest_of(99)).value());
  // Blobs: libc, empty, the pack.
  EXPECT_EQ(m.blob_count(), 3u);
  EXPECT_EQ(m.content_count(), 4u);
}

TEST(ImageManifestV2, EncodeRefusesWhatAContentTableCannotHold) {
  auto no_record = image::encode({dir(""), file("a", 1, 10)}, {});
  ASSERT_FALSE(no_record);
  EXPECT_NE(no_record.error().message().find("has no blob record"), std::string::npos);
  EntrySpec past = file("a", 1, 10);
  past.packed = PackedRef{digest_of(9), 95};
  auto too_far = image::encode({dir(""), past}, {{digest_of(9), {}, 100}});
  ASSERT_FALSE(too_far);
  EXPECT_NE(too_far.error().message().find("past the end of blob"), std::string::npos);
  auto wrong_size = image::encode({dir(""), file("a", 1, 10)}, {{digest_of(1), {}, 11}});
  ASSERT_FALSE(wrong_size);
  auto two_sizes = encode({dir(""), file("a", 1, 10), file("b", 1, 11)});
  ASSERT_FALSE(two_sizes);
  EntrySpec elsewhere = file("b", 1, 10);
  elsewhere.packed = PackedRef{digest_of(9), 0};
  auto two_places = image::encode({dir(""), file("a", 1, 10), elsewhere},
                                  {{digest_of(1), {}, 10}, {digest_of(9), {}, 10}});
  ASSERT_FALSE(two_places);
  EXPECT_NE(two_places.error().message().find("another place"), std::string::npos);
  EntrySpec packed_dir = dir("d");
  packed_dir.packed = PackedRef{digest_of(9), 0};
  EXPECT_FALSE(image::encode({dir(""), packed_dir}, {}));
}

TEST(ImageManifestV2, V1ManifestsConvertToTheSameTree) {
  const std::vector<EntrySpec> specs = every_type();
  const Manifest v2 = parse_ok(encode_ok(specs));
  const Bytes v1 = encode_v1_ok(specs);
  const Manifest converted = parse_ok(v1);
  ASSERT_TRUE(converted.verify()) << converted.verify().error().message();
  ASSERT_EQ(converted.size(), v2.size());
  for (uint32_t i = 0; i < v2.size(); ++i) {
    const Entry a = entry_ok(v2, i), b = entry_ok(converted, i);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.mode, b.mode);
    EXPECT_EQ(a.nlink, b.nlink);
    EXPECT_EQ(a.first_child, b.first_child);
    EXPECT_EQ(a.child_count, b.child_count);
    EXPECT_EQ(v2.path(i), converted.path(i));
    if (a.type == EntryType::file) {
      const Content ca = content_ok(v2, a), cb = content_ok(converted, b);
      EXPECT_EQ(ca.digest, cb.digest);
      EXPECT_EQ(cb.blob, cb.digest);
      EXPECT_EQ(cb.length, a.size);
      EXPECT_EQ(cb.table_digest, Digest{});  // version 1 recorded none
    }
  }
}

TEST(ImageManifestV2, OpenChecksTheHeaderAndPageTableOnly) {
  Bytes b = encode_ok(sample_specs());
  // A damaged entry page (not the root's) with its checksum stale: open
  // succeeds, the entry's lookup fails, other pages still serve.
  Bytes big;
  {
    std::vector<EntrySpec> specs{dir("")};
    for (int i = 0; i < 3000; ++i) specs.push_back(file("f" + std::to_string(100000 + i), 1, 10));
    big = encode_ok(specs);
  }
  ASSERT_GT(load_le64(big.data() + kPageCountOff), 2u);
  const uint64_t body = body_offset(big);
  const uint32_t victim = 2000;  // on page 1 (1024 entries a page)
  big[body + uint64_t{victim} * kEntrySize + 13] ^= std::byte{0x40};  // its mode: a socket's type bits
  auto m = Manifest::parse(big);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_FALSE(m.value().entry(victim));
  EXPECT_FALSE(m.value().entry(victim + 1));  // same page
  EXPECT_TRUE(m.value().entry(5));            // page 0
  EXPECT_GE(m.value().entry_errors(), 2u);
  EXPECT_TRUE(m.value().first_error());
  EXPECT_FALSE(m.value().first_error());  // once per manifest
  EXPECT_FALSE(m.value().verify());
  // Forged (checksums recomputed): the field check finds it, only there.
  reseal(big);
  auto forged = Manifest::parse(big);
  ASSERT_TRUE(forged) << forged.error().message();
  EXPECT_FALSE(forged.value().entry(victim));
  EXPECT_TRUE(forged.value().entry(victim + 1));
  EXPECT_FALSE(forged.value().verify());
  (void)b;
}

TEST(ImageManifestV2, CountsThatDisagreeWithTheFileAreRefusedAtOpen) {
  Bytes b = encode_ok(sample_specs());
  for (const size_t off : {kEntryCountOff, kContentCountOff, kBlobCountOff, kPageCountOff}) {
    Bytes d = b;
    store_le64(d.data() + off, load_le64(d.data() + off) + 1);
    reseal(d);
    auto m = Manifest::parse(d);
    ASSERT_FALSE(m) << off;
    EXPECT_EQ(m.error().code(), errc::corrupt_blob);
  }
}

TEST(ImageManifestV2, EveryTruncationFails) {
  const Bytes b = encode_ok(sample_specs());
  for (size_t n = 0; n < b.size(); ++n) {
    auto m = Manifest::parse(Bytes(b.begin(), b.begin() + static_cast<ptrdiff_t>(n)));
    ASSERT_FALSE(m) << n;
    EXPECT_EQ(m.error().code(), errc::corrupt_blob) << n;
  }
}

// Every byte flipped (two patterns), stale and forged: open may succeed
// (damage outside the header and page table is found on use), but nothing
// a lookup can return is out of range, and verify() rejects every one.
TEST(ImageManifestV2, EveryByteFlippedNeverEscapesAndVerifyRejects) {
  const Bytes b = encode_ok(sample_specs());
  size_t opened_stale = 0, opened_forged = 0, still_valid = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    for (const uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}}) {
      for (const bool forge : {false, true}) {
        SCOPED_TRACE("byte " + std::to_string(i) + " mask " + std::to_string(mask) + (forge ? " forged" : " stale"));
        Bytes d = b;
        d[i] ^= std::byte{mask};
        if (forge) reseal(d);
        if (d == b) continue;  // the flip was in a checksum that reseal restored
        auto m = Manifest::parse(std::move(d));
        if (!m) {
          EXPECT_TRUE(m.error().code() == errc::corrupt_blob || m.error().code() == errc::unsupported_format)
              << m.error().message();
          EXPECT_EQ(m.error().message().find('\n'), std::string::npos);
          continue;
        }
        (forge ? opened_forged : opened_stale) += 1;
        walk_everything(m.value());
        if (HasFatalFailure()) return;
        auto verified = m.value().verify();
        if (verified) {
          // Possible only where the flip leaves a valid, different tree
          // (a uid, gid, mtime, a directory's size, rdev, an xattr value, a
          // digest, a permission bit, a name still in order): it walked
          // cleanly above.
          ++still_valid;
          continue;
        }
        EXPECT_EQ(verified.error().code(), errc::corrupt_blob);
      }
    }
  }
  // The sample is one page, the root's, which open checks: a stale flip
  // anywhere fails at open.
  EXPECT_EQ(opened_stale, 0u);
  EXPECT_GT(opened_forged, 0u);
  EXPECT_LT(still_valid, opened_forged);  // verify() rejects the structural damage
  std::printf("%zu forged flips opened, %zu of them still a valid tree\n", opened_forged, still_valid);
}

}  // namespace
}  // namespace pagerfs::image
