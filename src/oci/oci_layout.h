// An OCI image layout directory as an image source (see
// pagerfs/oci/image_source.h for what is read and checked).
//
// Thread safety: see image_source.h.
#pragma once

#include <optional>
#include <string>

#include "pagerfs/oci/image_source.h"

namespace pagerfs::oci {

Result<ImageSource> open_oci_layout(const std::string& dir, const std::optional<std::string>& tag);

}  // namespace pagerfs::oci
