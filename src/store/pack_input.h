// The content of a new pack blob as one input stream: its member files read
// one after another, each exactly as it was hashed.
//
// A member is opened only when the stream reaches it (one fd open at a time),
// through open_scanned_file(), so it is the file the scan saw. Its bytes are
// hashed as they pass; a member that is shorter or longer than its planned
// size or whose bytes hash to another digest (it changed after it was hashed)
// fails the read with "'<source>' changed during pack: ...": a pack whose
// offsets no longer match its files is never written (write_blob stops at
// the first error).
//
// Thread safety: one stream, one thread (as every InputStream).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "pagerfs/util/file.h"
#include "store/tree_scan.h"

namespace pagerfs {

struct PackMember {
  const TreeScan::File* file = nullptr;  // in the scan the stream reads from
  Digest digest;                         // what it hashed to
  uint64_t size = 0;                     // how many bytes it had then
};

// Reads `members` of `scan` in order; `name` names the stream in messages.
std::unique_ptr<InputStream> pack_input_stream(const TreeScan& scan,
                                               std::vector<PackMember> members, std::string name);

}  // namespace pagerfs
