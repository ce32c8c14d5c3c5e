// Which sectors of one read request have been served, and by whom.
//
// A layer stack read walks its layers top to bottom; each layer fills the
// sectors it holds and marks them, and only the unmarked runs fall through
// to the next layer (OpenVMM's SectorMarker). Sectors are absolute indices
// in the blob file (sector = offset / sector_size).
//
// Thread safety: a marker belongs to one request and one thread at a time.
#pragma once

#include <cstdint>
#include <vector>

namespace pagerfs {

class SectorMarker {
 public:
  struct Run {
    uint64_t first = 0;  // absolute sector
    uint64_t count = 0;
    bool operator==(const Run&) const = default;
  };

  // Covers sectors [first, first + count), none marked.
  SectorMarker(uint64_t first, uint64_t count) : first_(first), bits_(count, false) {}

  uint64_t first() const noexcept { return first_; }
  uint64_t count() const noexcept { return bits_.size(); }
  uint64_t marked_count() const noexcept { return marked_; }
  bool all() const noexcept { return marked_ == bits_.size(); }
  bool none() const noexcept { return marked_ == 0; }

  // Marks sectors [sector, sector + n); they must lie inside the marker.
  void mark(uint64_t sector, uint64_t n = 1) noexcept;
  void unmark(uint64_t sector, uint64_t n = 1) noexcept;
  bool is_marked(uint64_t sector) const noexcept { return bits_[sector - first_]; }

  // Maximal runs of marked (or unmarked) sectors, in order.
  std::vector<Run> runs(bool marked) const;

 private:
  uint64_t first_;
  std::vector<bool> bits_;
  uint64_t marked_ = 0;
};

}  // namespace pagerfs
