// Image manifest v2: encode/parse round trips, the breadth-first layout and
// its lookups, a large tree, and image names. Encode errors are in
// image_manifest_encode_test.cc, parse checks in image_manifest_parse_test.cc.
#include "pagerfs/store/image_manifest.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <random>
#include <set>

#include "support/manifest_specs.h"

namespace pagerfs::image {
namespace {

using namespace specs;  // dir(), file(), encode_ok(), ...: the tests' vocabulary

TEST(ImageManifest, RoundTripsEveryEntryType) {
  std::vector<EntrySpec> specs = every_type();
  std::mt19937 rng(7);
  std::shuffle(specs.begin(), specs.end(), rng);
  const Manifest m = parse_ok(encode_ok(specs));
  ASSERT_EQ(m.size(), specs.size());

  for (const EntrySpec& s : specs) {
    SCOPED_TRACE(s.path);
    const auto index = find_ok(m, s.path);
    ASSERT_TRUE(index);
    const Entry e = entry_ok(m, *index);
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
        EXPECT_EQ(content_ok(m, e).digest, s.digest);
        break;
      case EntryType::symlink:
        EXPECT_EQ(m.symlink_target(e), s.symlink_target);
        EXPECT_EQ(e.size, s.symlink_target.size());
        break;
      case EntryType::hardlink: EXPECT_EQ(m.resolve(*index).value(), at(m, s.hardlink_target)); break;
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
  ASSERT_EQ(m.content_count(), 2u);
  EXPECT_LT(m.content_at(0).value().digest, m.content_at(1).value().digest);
}

TEST(ImageManifest, EncodingIsIndependentOfInputOrder) {
  std::vector<EntrySpec> specs = every_type();
  const Bytes first = encode_ok(specs);
  std::reverse(specs.begin(), specs.end());
  EXPECT_EQ(encode_ok(specs), first);
}

TEST(ImageManifest, EntriesAreBreadthFirstAndSortedByParentAndName) {
  const Manifest m = parse_ok(encode_ok(every_type()));
  const Entry root = entry_ok(m, 0);
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
    const Entry e = entry_ok(m, i);
    EXPECT_LT(e.parent, i);
    const auto c = m.children(e.parent).value();
    EXPECT_GE(i, c.first);
    EXPECT_LT(i, c.first + c.count);
  }
  const auto top = m.children(0).value();
  EXPECT_EQ(top.first, 1u);
  EXPECT_EQ(top.count, 7u);
  const auto lib = m.children(at(m, "usr/lib")).value();
  EXPECT_EQ(lib.first, at(m, "usr/lib/empty"));
  EXPECT_EQ(lib.count, 3u);
  EXPECT_EQ(m.children(at(m, "empty-dir")).value().count, 0u);
  EXPECT_EQ(m.children(at(m, "fifo")).value().count, 0u);
  EXPECT_FALSE(m.children(m.size()));
}

TEST(ImageManifest, HardLinksShareTheirTargetsLinkCount) {
  const Manifest m = parse_ok(encode_ok(every_type()));
  const uint32_t target = at(m, "usr/lib/libc.so.6");
  const uint32_t link1 = at(m, "usr/libc-link");
  const uint32_t link2 = at(m, "libc-link2");
  EXPECT_EQ(nlink_of(m, target), 3u);
  EXPECT_EQ(nlink_of(m, link1), 3u);
  EXPECT_EQ(nlink_of(m, link2), 3u);
  EXPECT_EQ(m.resolve(link1).value(), target);
  EXPECT_EQ(m.resolve(link2).value(), target);
  EXPECT_EQ(m.resolve(target).value(), target);
  const Entry link = entry_ok(m, link1);
  EXPECT_EQ(link.type, EntryType::hardlink);
  EXPECT_EQ(link.mode, 0u);
  EXPECT_EQ(link.ref, target);
  // The copy has the same content but is a different file.
  EXPECT_EQ(nlink_of(m, at(m, "usr/share/copy-of-libc")), 1u);
  EXPECT_EQ(nlink_of(m, at(m, "fifo")), 1u);
  EXPECT_EQ(nlink_of(m, at(m, "usr/lib/libc.so")), 1u);
}

TEST(ImageManifest, DirectoryLinkCountIsTwoPlusSubdirectories) {
  const Manifest m = parse_ok(encode_ok(every_type()));
  EXPECT_EQ(nlink_of(m, 0), 4u);             // usr, empty-dir
  EXPECT_EQ(nlink_of(m, at(m, "usr")), 4u);  // lib, share
  EXPECT_EQ(nlink_of(m, at(m, "usr/lib")), 2u);
  EXPECT_EQ(nlink_of(m, at(m, "empty-dir")), 2u);
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
  const auto top = m.children(0).value();
  ASSERT_EQ(top.count, sorted.size());
  for (uint32_t k = 0; k < top.count; ++k) {
    EXPECT_EQ(entry_ok(m, top.first + k).name, sorted[k]);
    EXPECT_EQ(m.find_child(0, sorted[k]).value(), top.first + k) << sorted[k];
  }
  for (const char* miss :
       {"", "a.", "a.a", "a.c", "a/", "a1", "aa", "ac", "A", "0", "c", "zzzz", "zz", "sub/a"}) {
    EXPECT_EQ(m.find_child(0, miss).value(), std::nullopt) << miss;
  }
  EXPECT_EQ(m.find_child(0, std::string_view("a\0", 2)).value(), std::nullopt);
  EXPECT_EQ(m.find_child(at(m, "sub"), "a").value(), at(m, "sub/a"));
  EXPECT_EQ(m.find_child(at(m, "sub"), "b").value(), std::nullopt);
  EXPECT_EQ(m.find_child(at(m, "a"), "a").value(), std::nullopt);  // not a directory
  EXPECT_FALSE(m.find_child(m.size() + 5, "a"));
}

TEST(ImageManifest, RootOnly) {
  const Manifest m = parse_ok(encode_ok({dir("")}));
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(m.children(0).value().count, 0u);
  EXPECT_EQ(nlink_of(m, 0), 2u);
  EXPECT_EQ(m.find_child(0, "x").value(), std::nullopt);
  EXPECT_EQ(m.content_count(), 0u);
}

TEST(ImageManifest, LongestNamesAndTargets) {
  const std::string name(255, 'n');
  const std::string target(4095, 't');
  const std::string value(65536, 'v');
  EntrySpec link = symlink(name, target);
  link.xattrs = {{std::string(255, 'x'), value}};
  const Manifest m = parse_ok(encode_ok({dir(""), link}));
  const Entry e = entry_ok(m, 1);
  EXPECT_EQ(e.name, name);
  EXPECT_EQ(m.symlink_target(e), target);
  EXPECT_EQ(m.xattr(e, std::string(255, 'x')), std::optional<std::string_view>(value));
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
          // One content has one size (a digest names its bytes).
          const auto content = static_cast<uint8_t>(rng());
          specs.push_back(file(sub + "/" + name, content, content * 391u));
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
  EXPECT_EQ(nlink_of(m, 0), 2u + 40u);

  std::set<Digest> digests;
  for (size_t k = 0; k < specs.size(); k += 97) {
    const EntrySpec& s = specs[k];
    SCOPED_TRACE(s.path);
    const auto index = find_ok(m, s.path);
    ASSERT_TRUE(index);
    EXPECT_EQ(m.path(*index), s.path);
    const Entry e = entry_ok(m, *index);
    EXPECT_EQ(e.type, s.type);
    if (s.type == EntryType::file) {
      EXPECT_EQ(content_ok(m, e).digest, s.digest);
    }
    if (s.type == EntryType::directory && !s.path.empty()) {
      EXPECT_EQ(nlink_of(m, *index), s.path.find('/') == std::string::npos ? 62u : 2u);
    }
    if (s.type == EntryType::hardlink) {
      EXPECT_EQ(m.path(m.resolve(*index).value()), s.hardlink_target);
    }
    EXPECT_FALSE(find_ok(m, s.path + "x"));
  }
  for (const EntrySpec& s : specs) {
    if (s.type == EntryType::file) digests.insert(s.digest);
  }
  EXPECT_EQ(m.content_count(), digests.size());
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
