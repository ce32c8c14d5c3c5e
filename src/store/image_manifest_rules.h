// The rules an image manifest's entries obey, shared by the encoder (which
// refuses to write what breaks them) and the parser (which refuses to load
// it): what a name, a mode, a symlink target and an xattr may be; and how
// both quote the names they report.
//
// Each *_problem() returns why its argument breaks the rule, as a phrase
// that completes a message ("name 'x' " + problem), or nullptr.
//
// Thread safety: pure functions and constants.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/quoted.h"  // names in messages: quoted()

#include "pagerfs/store/image_manifest.h"

namespace pagerfs::image {

// The mode bits are part of the format, so they are spelled out rather than
// taken from the host; every Linux ABI agrees with them (checked where they
// are used against <sys/stat.h>).
inline constexpr uint32_t kModeTypeMask = 0170000;
inline constexpr uint32_t kModeDir = 0040000;
inline constexpr uint32_t kModeReg = 0100000;
inline constexpr uint32_t kModeLnk = 0120000;
inline constexpr uint32_t kModeChr = 0020000;
inline constexpr uint32_t kModeBlk = 0060000;
inline constexpr uint32_t kModeFifo = 0010000;
inline constexpr uint32_t kModeSock = 0140000;
inline constexpr uint32_t kModePermMask = 07777;

inline constexpr uint32_t kNsecPerSec = 1'000'000'000;
// Exclusive: string table offsets are u32.
inline constexpr uint64_t kMaxStringsSize = uint64_t{1} << 32;

bool is_known_type(uint8_t type) noexcept;
// "directory", "file", ...: for messages.
const char* type_name(EntryType type) noexcept;

// Why `mode` cannot be the st_mode of an entry of `type`.
const char* mode_problem(EntryType type, uint32_t mode) noexcept;
// Why `name` cannot be one path component.
const char* name_problem(std::string_view name) noexcept;
const char* symlink_problem(std::string_view target) noexcept;
const char* xattr_problem(std::string_view name, size_t value_size) noexcept;

// "0755"
std::string octal(uint32_t v);

}  // namespace pagerfs::image
