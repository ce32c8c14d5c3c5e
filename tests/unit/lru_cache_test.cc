#include "util/lru_cache.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace pagerfs {
namespace {

using Evicted = std::vector<std::tuple<std::string, int, uint64_t>>;

// Inserts and records what was evicted.
struct Recorder {
  Evicted evicted;
  auto callback() {
    return [this](std::string&& key, int&& value, uint64_t cost) { evicted.emplace_back(key, value, cost); };
  }
};

TEST(LruCache, EvictsLeastRecentlyUsedFirst) {
  LruCache<std::string, int> lru(3);
  Recorder r;
  lru.insert("a", 1, 1, r.callback());
  lru.insert("b", 2, 1, r.callback());
  lru.insert("c", 3, 1, r.callback());
  EXPECT_TRUE(r.evicted.empty());
  lru.insert("d", 4, 1, r.callback());
  EXPECT_EQ(r.evicted, (Evicted{{"a", 1, 1}}));
  EXPECT_FALSE(lru.contains("a"));
  EXPECT_EQ(lru.size(), 3u);
  EXPECT_EQ(lru.oldest_key(), "b");
}

TEST(LruCache, GetAndTouchMakeAnEntryTheMostRecent) {
  LruCache<std::string, int> lru(3);
  Recorder r;
  lru.insert("a", 1);
  lru.insert("b", 2);
  lru.insert("c", 3);
  ASSERT_NE(lru.get("a"), nullptr);
  EXPECT_EQ(*lru.get("a"), 1);
  EXPECT_TRUE(lru.touch("b"));
  EXPECT_FALSE(lru.touch("zz"));
  EXPECT_EQ(lru.get("zz"), nullptr);
  // Order now (most recent first): b, a, c.
  lru.insert("d", 4, 1, r.callback());
  lru.insert("e", 5, 1, r.callback());
  EXPECT_EQ(r.evicted, (Evicted{{"c", 3, 1}, {"a", 1, 1}}));
}

TEST(LruCache, PeekDoesNotChangeTheOrder) {
  LruCache<std::string, int> lru(2);
  Recorder r;
  lru.insert("a", 1);
  lru.insert("b", 2);
  ASSERT_NE(lru.peek("a"), nullptr);
  EXPECT_EQ(*lru.peek("a"), 1);
  EXPECT_EQ(lru.peek("zz"), nullptr);
  lru.insert("c", 3, 1, r.callback());
  EXPECT_EQ(r.evicted, (Evicted{{"a", 1, 1}}));
}

TEST(LruCache, CountsCostsAgainstTheCapacity) {
  LruCache<std::string, int> lru(100);
  Recorder r;
  lru.insert("a", 1, 40, r.callback());
  lru.insert("b", 2, 30, r.callback());
  lru.insert("c", 3, 30, r.callback());
  EXPECT_EQ(lru.cost(), 100u);
  EXPECT_TRUE(r.evicted.empty());
  // 61 more: a (40) is not enough, b (30) goes too.
  lru.insert("d", 4, 61, r.callback());
  EXPECT_EQ(r.evicted, (Evicted{{"a", 1, 40}, {"b", 2, 30}}));
  EXPECT_EQ(lru.cost(), 91u);
  EXPECT_EQ(lru.size(), 2u);
  EXPECT_EQ(lru.capacity(), 100u);
}

TEST(LruCache, RefusesAnEntryLargerThanTheCapacity) {
  LruCache<std::string, int> lru(10);
  Recorder r;
  lru.insert("a", 1, 5, r.callback());
  EXPECT_FALSE(lru.insert("big", 2, 11, r.callback()));
  EXPECT_FALSE(lru.insert("a", 3, 11, r.callback()));  // nor as a replacement
  EXPECT_TRUE(r.evicted.empty());
  EXPECT_FALSE(lru.contains("big"));
  EXPECT_EQ(*lru.peek("a"), 1);
  EXPECT_EQ(lru.cost(), 5u);
  EXPECT_TRUE(lru.insert("exact", 4, 10, r.callback()));  // the whole capacity fits
  EXPECT_EQ(r.evicted, (Evicted{{"a", 1, 5}}));
}

TEST(LruCache, ReplacingAKeyUpdatesValueCostAndRecency) {
  LruCache<std::string, int> lru(10);
  Recorder r;
  lru.insert("a", 1, 4, r.callback());
  lru.insert("b", 2, 4, r.callback());
  EXPECT_TRUE(lru.insert("a", 10, 2, r.callback()));
  EXPECT_EQ(lru.size(), 2u);
  EXPECT_EQ(lru.cost(), 6u);
  EXPECT_EQ(*lru.peek("a"), 10);
  EXPECT_EQ(lru.oldest_key(), "b");
  // Growing the replaced entry evicts others, never itself.
  lru.insert("a", 11, 9, r.callback());
  EXPECT_EQ(r.evicted, (Evicted{{"b", 2, 4}}));
  EXPECT_EQ(lru.cost(), 9u);
  EXPECT_EQ(*lru.peek("a"), 11);
}

TEST(LruCache, EraseReleasesTheCost) {
  LruCache<std::string, int> lru(10);
  lru.insert("a", 1, 3);
  lru.insert("b", 2, 4);
  EXPECT_TRUE(lru.erase("a"));
  EXPECT_FALSE(lru.erase("a"));
  EXPECT_FALSE(lru.contains("a"));
  EXPECT_EQ(lru.cost(), 4u);
  EXPECT_EQ(lru.size(), 1u);
  EXPECT_EQ(lru.oldest_key(), "b");
}

TEST(LruCache, EvictOldestAndClear) {
  LruCache<std::string, int> lru;  // unbounded: the user evicts
  Recorder r;
  EXPECT_EQ(lru.capacity(), (LruCache<std::string, int>::kUnbounded));
  lru.insert("a", 1, 7);
  lru.insert("b", 2, 8);
  EXPECT_TRUE(lru.evict_oldest(r.callback()));
  EXPECT_EQ(r.evicted, (Evicted{{"a", 1, 7}}));
  EXPECT_EQ(lru.cost(), 8u);
  lru.clear();
  EXPECT_TRUE(lru.empty());
  EXPECT_EQ(lru.size(), 0u);
  EXPECT_EQ(lru.cost(), 0u);
  EXPECT_FALSE(lru.evict_oldest(r.callback()));
  EXPECT_FALSE(lru.contains("b"));
}

TEST(LruCache, HandsEvictedValuesToTheCaller) {
  // A user that frees evicted values outside its lock moves them out.
  LruCache<int, std::shared_ptr<int>> lru(1);
  auto first = std::make_shared<int>(1);
  lru.insert(1, first);
  std::vector<std::shared_ptr<int>> out;
  lru.insert(2, std::make_shared<int>(2), 1, [&](int&&, std::shared_ptr<int>&& v, uint64_t) {
    out.push_back(std::move(v));
  });
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], first);
  EXPECT_EQ(first.use_count(), 2);  // ours and the one handed out: the cache holds none
}

}  // namespace
}  // namespace pagerfs
