#include "store/pack_planner.h"

#include <algorithm>
#include <optional>
#include <system_error>
#include <unordered_map>

#include "pagerfs/util/units.h"

namespace pagerfs {

Result<void> validate(const PackPlanOptions& options) {
  auto invalid = [](std::string message) {
    return Error(std::make_error_code(std::errc::invalid_argument), std::move(message));
  };
  if (options.pack_max == 0) return invalid("--pack-max must be at least 1 byte");
  if (options.threshold > options.pack_max) {
    return invalid("--pack-threshold (" + format_size(options.threshold) +
                   ") must not exceed --pack-max (" + format_size(options.pack_max) + ")");
  }
  return ok();
}

PackPlan plan_packs(std::span<const PlanFile> files, const PackPlanOptions& options) {
  PackPlan plan;
  plan.files.resize(files.size());
  // Contents placed in a new pack by this plan: the file that placed it.
  std::unordered_map<Digest, size_t, DigestHash> placed;
  for (size_t i = 0; i < files.size(); ++i) {
    const PlanFile& f = files[i];
    PackPlan::Place& place = plan.files[i];
    if (f.size == 0 || f.size >= options.threshold || f.stored_whole) {
      place.kind = PackPlan::Kind::whole;
      continue;
    }
    if (f.stored_packed) {
      place.kind = PackPlan::Kind::reused;
      place.reused = *f.stored_packed;
      continue;
    }
    if (auto it = placed.find(f.digest); it != placed.end()) {
      place = plan.files[it->second];
      continue;
    }
    // A pack is closed when this file would take it past pack_max (it fits
    // in an empty one: size < threshold <= pack_max). Written so as not to
    // overflow whatever pack_max is.
    if (plan.packs.empty() || f.size > options.pack_max - plan.packs.back().size)
      plan.packs.emplace_back();
    PackPlan::Pack& pack = plan.packs.back();
    place.kind = PackPlan::Kind::packed;
    place.pack = plan.packs.size() - 1;
    place.offset = pack.size;
    pack.members.push_back(i);
    pack.size += f.size;
    placed.emplace(f.digest, i);
  }

  // A pack of one content is that content's own blob (same bytes, same
  // digest): make it whole, so that the next plan, which finds it in the store
  // as a whole blob, places it the same way.
  std::vector<std::optional<size_t>> renumber(plan.packs.size());  // nullopt: made whole
  std::vector<PackPlan::Pack> packs;
  for (size_t p = 0; p < plan.packs.size(); ++p) {
    if (plan.packs[p].members.size() < 2) continue;
    renumber[p] = packs.size();
    packs.push_back(std::move(plan.packs[p]));
  }
  for (PackPlan::Place& place : plan.files) {
    if (place.kind != PackPlan::Kind::packed) continue;
    if (renumber[place.pack]) {
      place.pack = *renumber[place.pack];
    } else {
      place = PackPlan::Place{};  // whole
    }
  }
  plan.packs = std::move(packs);
  return plan;
}

namespace {

size_t components(std::string_view path) noexcept {
  return path.empty() ? 0 : static_cast<size_t>(std::count(path.begin(), path.end(), '/')) + 1;
}

}  // namespace

bool manifest_order_less(std::string_view a, std::string_view b) noexcept {
  const size_t depth_a = components(a);
  const size_t depth_b = components(b);
  if (depth_a != depth_b) return depth_a < depth_b;
  // Same depth: compare component by component ('/' must not sort against
  // the characters of a name, as it would in a plain string comparison).
  while (!a.empty() || !b.empty()) {
    const size_t end_a = std::min(a.find('/'), a.size());
    const size_t end_b = std::min(b.find('/'), b.size());
    const std::string_view name_a = a.substr(0, end_a);
    const std::string_view name_b = b.substr(0, end_b);
    if (name_a != name_b) return name_a < name_b;
    a.remove_prefix(std::min(end_a + 1, a.size()));
    b.remove_prefix(std::min(end_b + 1, b.size()));
  }
  return false;
}

}  // namespace pagerfs
