// Small helpers the image sources share: reading a bounded file whole,
// streaming a file it owns, and naming a layer for messages.
//
// Thread safety: stateless functions; an owned-file stream is used by one
// thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "pagerfs/util/file.h"

namespace pagerfs::oci {

// Reads the regular file `path` whole (a symlink is refused); more than
// `max_bytes` is an error.
Result<std::vector<std::byte>> read_bounded_file(const std::string& path, uint64_t max_bytes);
// Reads `input` to its end; more than `max_bytes` is an error naming `what`.
Result<std::vector<std::byte>> read_bounded_stream(InputStream& input, uint64_t max_bytes, const std::string& what);

// A stream over the regular file `path` (a symlink is refused).
Result<std::unique_ptr<InputStream>> open_file_stream(const std::string& path);

// "layer 2 (sha256:abcd12345678...)": `index` counts from 0, the name from 1.
std::string layer_name(size_t index, const std::optional<Digest>& digest);

}  // namespace pagerfs::oci
