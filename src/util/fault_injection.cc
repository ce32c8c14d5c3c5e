#include "util/fault_injection.h"

#include <array>
#include <charconv>
#include <cstdlib>
#include <new>
#include <vector>

namespace pagerfs::fault {
namespace detail {
std::atomic<uint64_t> g_every[kPointCount] = {};
}  // namespace detail

namespace {

constexpr std::array<std::string_view, kPointCount> kPointNames = {"decode", "supply"};
std::atomic<uint64_t> g_visits[kPointCount] = {};
std::atomic<uint64_t> g_injected[kPointCount] = {};

}  // namespace

void detail::hit(Point point) {
  const size_t i = static_cast<size_t>(point);
  const uint64_t every = g_every[i].load(std::memory_order_relaxed);
  if (every == 0) return;
  if ((g_visits[i].fetch_add(1, std::memory_order_relaxed) + 1) % every != 0) return;
  g_injected[i].fetch_add(1, std::memory_order_relaxed);
  throw std::bad_alloc();
}

void arm(Point point, uint64_t every) noexcept {
  const size_t i = static_cast<size_t>(point);
  g_visits[i].store(0, std::memory_order_relaxed);
  detail::g_every[i].store(every, std::memory_order_relaxed);
}

void disarm_all() noexcept {
  for (size_t i = 0; i < kPointCount; ++i) arm(static_cast<Point>(i), 0);
}

uint64_t injected(Point point) noexcept {
  return g_injected[static_cast<size_t>(point)].load(std::memory_order_relaxed);
}

Result<void> arm_from_spec(std::string_view spec) {
  std::vector<std::pair<Point, uint64_t>> items;
  while (!spec.empty()) {
    const size_t comma = spec.find(',');
    const std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    const size_t colon = item.find(':');
    const std::string_view name = item.substr(0, colon);
    const std::string_view count = colon == std::string_view::npos ? std::string_view() : item.substr(colon + 1);
    size_t point = 0;
    while (point < kPointCount && kPointNames[point] != name) ++point;
    uint64_t every = 0;
    const auto parsed = std::from_chars(count.data(), count.data() + count.size(), every);
    if (point == kPointCount || count.empty() || parsed.ec != std::errc() ||
        parsed.ptr != count.data() + count.size() || every == 0) {
      return Error(errc::invalid_argument, "PAGERFS_INJECT_FAULTS: bad item '" + std::string(item) +
                                               "' (expected decode:N or supply:N, N >= 1)");
    }
    items.emplace_back(static_cast<Point>(point), every);
  }
  for (const auto& [point, every] : items) arm(point, every);
  return ok();
}

Result<std::string> arm_from_environment() {
  const char* spec = std::getenv("PAGERFS_INJECT_FAULTS");
  if (spec == nullptr || *spec == '\0') return std::string();
  PAGERFS_TRYV(arm_from_spec(spec));
  return std::string(spec);
}

}  // namespace pagerfs::fault
