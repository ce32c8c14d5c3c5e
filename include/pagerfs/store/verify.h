// Full verification of a blob file.
//
// Thread safety: verify_blob() may run concurrently on any blobs.
#pragma once

#include <optional>
#include <string>

#include "pagerfs/format/blob_format.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace pagerfs {

// Checks everything a reader relies on: header and seek table (as open()
// does), every chunk's frame and checksum, the SHA-256 of the whole content
// against the header's digest and, when given, against `expected_name` (the
// digest the blob's file name claims). Chunks are decoded on `threads`
// threads (0 = one per core). Returns the header of a good blob.
Result<format::BlobHeader> verify_blob(const std::string& path,
                                       const std::optional<Digest>& expected_name,
                                       unsigned threads = 0);

// True for errors that mean damaged or foreign data (rather than an I/O
// error or a bad request): the blob itself is bad.
bool is_corruption(const std::error_code& code) noexcept;

}  // namespace pagerfs
