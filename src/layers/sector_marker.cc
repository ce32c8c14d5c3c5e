#include "pagerfs/layers/sector_marker.h"

#include <cassert>

namespace pagerfs {

void SectorMarker::mark(uint64_t sector, uint64_t n) noexcept {
  assert(sector >= first_ && n <= bits_.size() && sector - first_ <= bits_.size() - n);
  for (uint64_t i = sector - first_; i < sector - first_ + n; ++i) {
    if (!bits_[i]) {
      bits_[i] = true;
      ++marked_;
    }
  }
}

void SectorMarker::unmark(uint64_t sector, uint64_t n) noexcept {
  assert(sector >= first_ && n <= bits_.size() && sector - first_ <= bits_.size() - n);
  for (uint64_t i = sector - first_; i < sector - first_ + n; ++i) {
    if (bits_[i]) {
      bits_[i] = false;
      --marked_;
    }
  }
}

std::vector<SectorMarker::Run> SectorMarker::runs(bool marked) const {
  std::vector<Run> out;
  for (uint64_t i = 0; i < bits_.size();) {
    if (bits_[i] != marked) {
      ++i;
      continue;
    }
    const uint64_t start = i;
    while (i < bits_.size() && bits_[i] == marked) ++i;
    out.push_back({first_ + start, i - start});
  }
  return out;
}

}  // namespace pagerfs
