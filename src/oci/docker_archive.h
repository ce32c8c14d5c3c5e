// A `docker save` archive as an image source (see pagerfs/oci/image_source.h
// for what is read and checked).
//
// Thread safety: see image_source.h.
#pragma once

#include <optional>
#include <string>

#include "pagerfs/oci/image_source.h"

namespace pagerfs::oci {

Result<ImageSource> open_docker_archive(const std::string& file, const std::optional<std::string>& ref);

}  // namespace pagerfs::oci
