// Whole-buffer pread/pwrite: the loops over short transfers and EINTR that
// every file and layer needs, with errno turned into an Error naming `what`.
//
// Thread safety: stateless; safe on one fd from several threads (pread/pwrite
// do not move the file offset).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "pagerfs/util/error.h"

namespace pagerfs {

// Reads until `out` is full or the file ends; returns the bytes read.
Result<size_t> pread_some(int fd, std::span<std::byte> out, uint64_t offset, const std::string& what);
// Writes all of `data` at `offset`.
Result<void> pwrite_all(int fd, std::span<const std::byte> data, uint64_t offset, const std::string& what);

}  // namespace pagerfs
