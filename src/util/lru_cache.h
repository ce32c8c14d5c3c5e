// The one least-recently-used container of pagerfs: every cache (open fds,
// decoded chunks, the memory layer's sectors, the cache disk's extents)
// keeps its recency order and its budget here.
//
// Each entry has a cost in a unit its user chooses (1 per entry for a count,
// or bytes); insert() evicts least recently used entries until the total
// cost is within the capacity again. Evicted entries are handed to the
// caller (a callback gets key, value and cost), so it can count them, or
// move them out and close fds or free memory after dropping its own lock.
//
// Exception safety: insert() is strong up to eviction (a failed allocation
// leaves the cache as it was, nothing evicted); if an eviction callback
// throws, the entry it was given is gone, the cache stays consistent and the
// exception propagates. Other operations do not throw (for keys whose hash
// and comparison do not).
//
// Thread safety: none. An LruCache is plain data; its users guard it with
// their own mutex (declare it GUARDED_BY that mutex).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <list>
#include <unordered_map>
#include <utility>

namespace pagerfs {

template <typename K, typename V, typename Hash = std::hash<K>, typename KeyEqual = std::equal_to<K>>
class LruCache {
 public:
  static constexpr uint64_t kUnbounded = std::numeric_limits<uint64_t>::max();

  // `capacity` in the unit of the costs given to insert(); kUnbounded for a
  // recency order whose user evicts by its own rule (oldest_key()).
  explicit LruCache(uint64_t capacity = kUnbounded) : capacity_(capacity) {}
  LruCache(const LruCache&) = delete;
  LruCache& operator=(const LruCache&) = delete;

  // The value of `key`, now the most recently used; nullptr if absent. The
  // pointer stays valid until the entry is erased, replaced or evicted.
  V* get(const K& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->value;
  }
  // The value of `key` without changing its recency; nullptr if absent.
  V* peek(const K& key) {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &it->second->value;
  }
  const V* peek(const K& key) const {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &it->second->value;
  }
  bool contains(const K& key) const { return index_.contains(key); }
  // Makes `key` the most recently used; false if absent.
  bool touch(const K& key) { return get(key) != nullptr; }

  // Stores `value` under `key` (replacing the value and cost of an entry
  // already there) as the most recently used entry, then evicts the least
  // recently used others until cost() <= capacity(), calling
  // on_evict(K&&, V&&, uint64_t cost) for each. An entry whose cost alone
  // exceeds the capacity is not stored (an entry under `key` is then left
  // as it was): returns false, and nothing is evicted.
  template <typename OnEvict>
  bool insert(K key, V value, uint64_t cost, OnEvict&& on_evict) {
    if (cost > capacity_) return false;
    if (auto it = index_.find(key); it != index_.end()) {
      Node& node = *it->second;
      node.value = std::move(value);
      cost_ = cost_ - node.cost + cost;
      node.cost = cost;
      order_.splice(order_.begin(), order_, it->second);
    } else {
      order_.push_front(Node{key, std::move(value), cost});
      try {
        index_.emplace(std::move(key), order_.begin());
      } catch (...) {
        order_.pop_front();
        throw;
      }
      cost_ += cost;
    }
    // The new entry is first and fits alone: the loop stops before it.
    while (cost_ > capacity_) evict_oldest(on_evict);
    return true;
  }
  bool insert(K key, V value, uint64_t cost = 1) {
    return insert(std::move(key), std::move(value), cost, [](K&&, V&&, uint64_t) {});
  }

  // Removes `key`; false if absent.
  bool erase(const K& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    cost_ -= it->second->cost;
    order_.erase(it->second);
    index_.erase(it);
    return true;
  }

  // The least recently used key (the next to be evicted). Requires !empty().
  const K& oldest_key() const { return order_.back().key; }
  // Removes the least recently used entry, calling on_evict as insert()
  // does; false if the cache is empty.
  template <typename OnEvict>
  bool evict_oldest(OnEvict&& on_evict) {
    if (order_.empty()) return false;
    Node oldest = std::move(order_.back());
    index_.erase(oldest.key);
    order_.pop_back();
    cost_ -= oldest.cost;
    on_evict(std::move(oldest.key), std::move(oldest.value), oldest.cost);
    return true;
  }

  void clear() noexcept {
    index_.clear();
    order_.clear();
    cost_ = 0;
  }

  bool empty() const noexcept { return order_.empty(); }
  size_t size() const noexcept { return order_.size(); }
  uint64_t cost() const noexcept { return cost_; }  // of all entries
  uint64_t capacity() const noexcept { return capacity_; }

 private:
  struct Node {
    K key;
    V value;
    uint64_t cost;
  };
  using Order = std::list<Node>;  // most recently used first

  const uint64_t capacity_;
  Order order_;
  std::unordered_map<K, typename Order::iterator, Hash, KeyEqual> index_;
  uint64_t cost_ = 0;
};

}  // namespace pagerfs
