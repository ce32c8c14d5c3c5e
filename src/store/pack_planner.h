// Which file of an image goes where: its own blob, a new pack blob at some
// offset, or a pack the store already holds. A pure function of the files'
// digests and sizes and of what the store holds, so that every rule is
// tested by a table (tests/unit/pack_planner_test.cc); the packer only
// gathers the inputs and writes what the plan says (image_packer.cc).
//
// The rules, for each file in the order given (the manifest's: breadth first,
// by directory, so that files read together sit together in a pack):
//   1. an empty file, or one of at least `threshold` bytes, is a whole blob;
//   2. so is a file whose content the store holds as a whole blob;
//   3. a file whose content sits in a pack another image names reuses it;
//   4. a file whose content an earlier file of this plan put in a new pack
//      shares that place (equal content is stored once);
//   5. any other file is appended to the current new pack, which is closed
//      first if the file would take it past `pack_max` bytes;
//   6. a new pack of one content is that content's own blob (same bytes, so
//      same digest): its file is whole instead.
// A threshold of 0 packs nothing.
//
// Thread safety: pure functions over values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "pagerfs/store/image_manifest.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace pagerfs {

struct PackPlanOptions {
  uint64_t threshold = 0;  // files below this size are packed; 0: none
  uint64_t pack_max = 0;   // bytes of content per pack at most; >= threshold
};

// Checks that pack_max is at least 1 and at least the threshold (so a file
// that is packed always fits in a pack); errc::invalid_argument naming the
// options as pagerfsctl spells them.
Result<void> validate(const PackPlanOptions& options);

// One regular file to place (hard links are not files: they name one).
struct PlanFile {
  Digest digest;
  uint64_t size = 0;
  bool stored_whole = false;                      // the store has blob `digest`
  std::optional<image::PackedRef> stored_packed;  // a pack another image names holds it
};

struct PackPlan {
  enum class Kind : uint8_t {
    whole,   // the file's own blob, `digest` (stored already, or to write)
    packed,  // new pack `pack` of this plan, at `offset`
    reused,  // a stored pack: `reused`
  };
  struct Place {
    Kind kind = Kind::whole;
    size_t pack = 0;          // packed: index into `packs`
    uint64_t offset = 0;      // packed: in that pack's content
    image::PackedRef reused;  // reused: the stored pack and offset
  };
  // The content of a new pack: the files `members` (indices into the input)
  // concatenated in this order; `size` is the sum of their sizes.
  struct Pack {
    std::vector<size_t> members;
    uint64_t size = 0;
  };
  std::vector<Place> files;  // one per input file, in the same order
  std::vector<Pack> packs;
};

// Places `files` (in manifest order) by the rules above. `options` must be valid.
PackPlan plan_packs(std::span<const PlanFile> files, const PackPlanOptions& options);

// Whether entry path `a` comes before `b` in a manifest: breadth first (fewer
// components first), then component by component (so the children of one
// directory are together, by name, in the order of their directories).
bool manifest_order_less(std::string_view a, std::string_view b) noexcept;

}  // namespace pagerfs
