// plan_packs(): which file goes whole, into which new pack at which offset,
// or reuses a stored pack; as tables. And the manifest order packs follow.
#include "store/pack_planner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pagerfs {
namespace {

using Kind = PackPlan::Kind;

Digest content(uint8_t seed) {
  std::array<uint8_t, Digest::kSize> raw{};
  raw[0] = seed;
  raw[1] = 0xc0;
  return Digest(raw);
}
Digest pack_blob(uint8_t seed) {
  std::array<uint8_t, Digest::kSize> raw{};
  raw[0] = seed;
  raw[1] = 0xba;
  return Digest(raw);
}

struct In {
  uint8_t content;  // equal seeds: equal contents (then equal sizes)
  uint64_t size;
  bool stored_whole = false;
  int stored_pack = -1;  // >= 0: in stored pack_blob(stored_pack) at offset 1000 * content
};

struct Out {
  Kind kind;
  size_t pack = 0;      // packed: new pack index; reused: the stored pack's seed
  uint64_t offset = 0;  // packed and reused
};

struct Case {
  std::string name;
  uint64_t threshold;
  uint64_t pack_max;
  std::vector<In> files;
  std::vector<Out> want;
  std::vector<std::vector<size_t>> packs;  // members of each new pack
};

Out whole() { return {Kind::whole}; }
Out packed(size_t pack, uint64_t offset) { return {Kind::packed, pack, offset}; }
Out reused(size_t stored_pack, uint64_t offset) { return {Kind::reused, stored_pack, offset}; }

std::vector<Case> cases() {
  return {
      {"threshold 0 packs nothing", 0, 1000, {{1, 10}, {2, 20}, {3, 0}}, {whole(), whole(), whole()}, {}},
      {"small big empty and equal files",
       100,
       250,
       {{1, 50}, {2, 200}, {3, 0}, {4, 60}, {1, 50}, {5, 90}, {6, 100}, {7, 99}, {8, 30}},
       {packed(0, 0), whole(), whole(), packed(0, 50), packed(0, 0), packed(0, 110), whole(), packed(1, 0),
        packed(1, 99)},
       {{0, 3, 5}, {7, 8}}},
      {"a file that fills a pack exactly stays in it",
       100,
       100,
       {{1, 60}, {2, 40}, {3, 1}, {4, 2}},
       {packed(0, 0), packed(0, 60), packed(1, 0), packed(1, 1)},
       {{0, 1}, {2, 3}}},
      {"a pack of one file is that file's own blob",
       64,
       64,
       {{1, 63}, {2, 63}, {3, 1}, {1, 63}, {4, 10}},
       {whole(), packed(0, 0), packed(0, 63), whole(), whole()},
       {{1, 2}}},
      {"a content the store holds whole is not packed",
       100,
       1000,
       {{1, 10, true}, {2, 10}, {1, 10, true}, {3, 10}},
       {whole(), packed(0, 0), whole(), packed(0, 10)},
       {{1, 3}}},
      {"a content in a stored pack reuses it",
       100,
       1000,
       {{1, 10, false, 7}, {2, 10}, {1, 10, false, 7}, {3, 10}},
       {reused(7, 1000), packed(0, 0), reused(7, 1000), packed(0, 10)},
       {{1, 3}}},
      // A second image of a tree of eight small files, two changed: the six
      // unchanged sit in the first image's pack; the two new ones make one pack.
      {"a second image with two changed files writes one pack",
       100,
       1000,
       {{1, 10, false, 3}, {2, 10, false, 3}, {11, 10}, {4, 10, false, 3}, {5, 10, false, 3},
        {12, 12}, {7, 10, false, 3}, {8, 10, false, 3}},
       {reused(3, 1000), reused(3, 2000), packed(0, 0), reused(3, 4000), reused(3, 5000), packed(0, 10),
        reused(3, 7000), reused(3, 8000)},
       {{2, 5}}},
      {"no files", 100, 1000, {}, {}, {}},
      {"a pack_max of 2^64 - 1 (no limit) takes every small file",
       100,
       UINT64_MAX,
       {{1, 99}, {2, 99}},
       {packed(0, 0), packed(0, 99)},
       {{0, 1}}},
  };
}

TEST(PackPlannerTest, Table) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    std::vector<PlanFile> files;
    for (const In& in : c.files) {
      PlanFile f{content(in.content), in.size, in.stored_whole, std::nullopt};
      if (in.stored_pack >= 0) {
        f.stored_packed = image::PackedRef{pack_blob(static_cast<uint8_t>(in.stored_pack)), 1000u * in.content};
      }
      files.push_back(f);
    }
    const PackPlanOptions options{c.threshold, c.pack_max};
    ASSERT_TRUE(validate(options));
    const PackPlan plan = plan_packs(files, options);
    ASSERT_EQ(plan.files.size(), c.want.size());
    for (size_t i = 0; i < c.want.size(); ++i) {
      SCOPED_TRACE("file " + std::to_string(i));
      const PackPlan::Place& got = plan.files[i];
      const Out& want = c.want[i];
      EXPECT_EQ(got.kind, want.kind);
      if (want.kind == Kind::packed) {
        EXPECT_EQ(got.pack, want.pack);
        EXPECT_EQ(got.offset, want.offset);
      }
      if (want.kind == Kind::reused) {
        EXPECT_EQ(got.reused.blob, pack_blob(static_cast<uint8_t>(want.pack)));
        EXPECT_EQ(got.reused.offset, want.offset);
      }
    }
    ASSERT_EQ(plan.packs.size(), c.packs.size());
    for (size_t p = 0; p < c.packs.size(); ++p) {
      EXPECT_EQ(plan.packs[p].members, c.packs[p]) << "pack " << p;
      uint64_t size = 0;
      for (size_t m : plan.packs[p].members) {
        // Members are placed back to back, in order.
        EXPECT_EQ(plan.files[m].offset, size) << "pack " << p << " member " << m;
        size += files[m].size;
      }
      EXPECT_EQ(plan.packs[p].size, size) << "pack " << p;
      EXPECT_LE(plan.packs[p].size, c.pack_max) << "pack " << p;
    }
  }
}

TEST(PackPlannerTest, OptionsAreChecked) {
  EXPECT_TRUE(validate(PackPlanOptions{0, 1}));
  EXPECT_TRUE(validate(PackPlanOptions{128 << 10, 128 << 10}));
  const auto no_max = validate(PackPlanOptions{0, 0});
  ASSERT_FALSE(no_max);
  EXPECT_NE(no_max.error().message().find("--pack-max"), std::string::npos) << no_max.error().message();
  const auto too_big = validate(PackPlanOptions{2 << 20, 1 << 20});
  ASSERT_FALSE(too_big);
  EXPECT_NE(too_big.error().message().find("--pack-threshold"), std::string::npos) << too_big.error().message();
}

TEST(PackPlannerTest, ManifestOrderIsBreadthFirstByDirectory) {
  // As image::encode places entries: the root, then its children by name,
  // then the children of each of those, in their order.
  const std::vector<std::string> want = {
      "", "a", "a-b", "b", "a/y", "a/z", "a-b/x", "b/a", "a/y/q", "a-b/x/p",
  };
  std::vector<std::string> paths = want;
  std::reverse(paths.begin(), paths.end());
  std::sort(paths.begin(), paths.end(), [](const std::string& x, const std::string& y) {
    return manifest_order_less(x, y);
  });
  EXPECT_EQ(paths, want);
  EXPECT_FALSE(manifest_order_less("a/b", "a/b"));
  // A plain string comparison would put "a-b/x" before "a/y" ('-' < '/').
  EXPECT_TRUE(manifest_order_less("a/y", "a-b/x"));
  EXPECT_FALSE(manifest_order_less("a-b/x", "a/y"));
}

}  // namespace
}  // namespace pagerfs
