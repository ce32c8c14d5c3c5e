// Sizes as people write them: "4096", "64K", "128KiB", "1M", "2G" (powers of 1024).
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "pagerfs/util/error.h"

namespace pagerfs {

// Parses a byte count with an optional K, M, G or T suffix (case-insensitive,
// optionally followed by "iB" or "B"). Overflow and junk are
// errc::invalid_argument with a message naming the text.
Result<uint64_t> parse_size(std::string_view text);

// "0 B", "4.0 KiB", "1.5 MiB", ... for people.
std::string format_size(uint64_t bytes);

}  // namespace pagerfs
