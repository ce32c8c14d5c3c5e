#include "oci/json_fields.h"

namespace pagerfs::oci {
namespace {

const char* type_name(Json::value_t type) noexcept {
  switch (type) {
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::number_unsigned: return "a non-negative integer";
    case Json::value_t::number_integer: return "an integer";
    case Json::value_t::boolean: return "a boolean";
    default: return "of another type";
  }
}

Error malformed(const std::string& file, const std::string& what) {
  return Error(errc::corrupt_blob, file + ": " + what);
}

}  // namespace

Result<Json> parse_json(std::span<const std::byte> bytes, const std::string& file) {
  try {
    const auto* text = reinterpret_cast<const char*>(bytes.data());
    return Json::parse(text, text + bytes.size());
  } catch (const Json::exception& e) {
    return malformed(file, std::string("malformed JSON: ") + e.what());
  } catch (...) {
    return current_exception_error().with_context(file);
  }
}

Result<const Json*> member(const Json& object, std::string_view key, Json::value_t type, const std::string& file,
                           const std::string& what, bool optional) {
  if (!object.is_object()) return malformed(file, what + " is not an object");
  const auto it = object.find(key);
  if (it == object.end() || (optional && it->is_null())) {
    if (optional) return static_cast<const Json*>(nullptr);
    return malformed(file, what + " has no \"" + std::string(key) + "\"");
  }
  // A non-negative integer may be parsed as either integer type.
  const bool integer_ok = type == Json::value_t::number_unsigned && it->is_number_integer() && *it >= 0;
  if (it->type() != type && !integer_ok) {
    return malformed(file, what + "." + std::string(key) + " is not " + type_name(type));
  }
  return &*it;
}

Result<std::string> string_member(const Json& object, std::string_view key, const std::string& file,
                                  const std::string& what) {
  PAGERFS_TRY(value, member(object, key, Json::value_t::string, file, what));
  return value->get<std::string>();
}

Result<Digest> parse_oci_digest(const std::string& text, const std::string& file, const std::string& what) {
  constexpr std::string_view kPrefix = "sha256:";
  if (!text.starts_with(kPrefix)) {
    return malformed(file, what + ": digest '" + text.substr(0, 80) + "' is not sha256 (the only one supported)");
  }
  const std::string_view hex = std::string_view(text).substr(kPrefix.size());
  if (!Digest::is_canonical_hex(hex)) return malformed(file, what + ": malformed digest '" + text.substr(0, 80) + "'");
  return Digest::parse(hex).value();
}

Result<Descriptor> parse_descriptor(const Json& value, const std::string& file, const std::string& what) {
  Descriptor d;
  PAGERFS_TRY(media_type, string_member(value, "mediaType", file, what));
  d.media_type = std::move(media_type);
  PAGERFS_TRY(digest_text, string_member(value, "digest", file, what));
  PAGERFS_TRY(digest, parse_oci_digest(digest_text, file, what));
  d.digest = digest;
  PAGERFS_TRY(size, member(value, "size", Json::value_t::number_unsigned, file, what));
  d.size = size->get<uint64_t>();
  PAGERFS_TRY(annotations, member(value, "annotations", Json::value_t::object, file, what, /*optional=*/true));
  if (annotations != nullptr) {
    for (const auto& [key, v] : annotations->items()) {
      if (!v.is_string()) return malformed(file, what + ".annotations." + key + " is not a string");
      d.annotations.emplace(key, v.get<std::string>());
    }
  }
  PAGERFS_TRY(platform, member(value, "platform", Json::value_t::object, file, what, /*optional=*/true));
  if (platform != nullptr) {
    PAGERFS_TRY(os, string_member(*platform, "os", file, what + ".platform"));
    PAGERFS_TRY(arch, string_member(*platform, "architecture", file, what + ".platform"));
    d.os = std::move(os);
    d.architecture = std::move(arch);
    PAGERFS_TRY(variant, member(*platform, "variant", Json::value_t::string, file, what + ".platform", true));
    if (variant != nullptr) d.variant = variant->get<std::string>();
  }
  return d;
}

Result<std::vector<Digest>> config_diff_ids(std::span<const std::byte> config, const std::string& file,
                                            size_t layers) {
  PAGERFS_TRY(json, parse_json(config, file));
  PAGERFS_TRY(rootfs, member(json, "rootfs", Json::value_t::object, file, "the config"));
  PAGERFS_TRY(type, string_member(*rootfs, "type", file, "rootfs"));
  if (type != "layers") return malformed(file, "rootfs.type is '" + type.substr(0, 80) + "', not 'layers'");
  PAGERFS_TRY(ids, member(*rootfs, "diff_ids", Json::value_t::array, file, "rootfs"));
  if (ids->size() != layers) {
    return malformed(file, "rootfs.diff_ids has " + std::to_string(ids->size()) + " digests for " +
                               std::to_string(layers) + " layers");
  }
  std::vector<Digest> out;
  for (size_t i = 0; i < ids->size(); ++i) {
    const std::string what = "rootfs.diff_ids[" + std::to_string(i) + "]";
    if (!(*ids)[i].is_string()) return malformed(file, what + " is not a string");
    PAGERFS_TRY(digest, parse_oci_digest((*ids)[i].get<std::string>(), file, what));
    out.push_back(digest);
  }
  return out;
}

}  // namespace pagerfs::oci
