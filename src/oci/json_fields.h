// Reading the JSON files of a container image (index.json, manifests,
// configs, docker's manifest.json) with every field checked for its type:
// they come from the internet. nlohmann::json's exceptions stop here; what
// callers see is a one-line error naming the file and the field.
//
// Also the OCI content descriptor ({mediaType, digest, size, ...}), which
// every one of those files uses.
//
// Thread safety: pure functions over values.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace pagerfs::oci {

using Json = nlohmann::json;

// Parses `bytes` (the file `file`); errc::corrupt_blob "FILE: malformed JSON ...".
Result<Json> parse_json(std::span<const std::byte> bytes, const std::string& file);

// The member `key` of the object `object`, which must have the JSON type
// `type`. A missing member is an error, or nullptr when it is optional.
// `what` names the object in messages ("manifests[2]").
Result<const Json*> member(const Json& object, std::string_view key, Json::value_t type, const std::string& file,
                           const std::string& what, bool optional = false);
Result<std::string> string_member(const Json& object, std::string_view key, const std::string& file,
                                  const std::string& what);
// "sha256:<64 lowercase hex>": the only digest algorithm images use here.
Result<Digest> parse_oci_digest(const std::string& text, const std::string& file, const std::string& what);

struct Descriptor {
  std::string media_type;
  Digest digest;
  uint64_t size = 0;
  std::map<std::string, std::string> annotations;
  std::string os, architecture, variant;  // platform, when given
};
Result<Descriptor> parse_descriptor(const Json& value, const std::string& file, const std::string& what);

// The rootfs.diff_ids of an image config (the digests of the uncompressed
// layers), checked: one per layer.
Result<std::vector<Digest>> config_diff_ids(std::span<const std::byte> config, const std::string& file,
                                            size_t layers);

}  // namespace pagerfs::oci
