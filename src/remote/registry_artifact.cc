#include "remote/registry_artifact.h"

#include <fcntl.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <map>
#include <set>

#include "util/posix_io.h"
#include "util/safe_open.h"

namespace pagerfs::remote {
namespace {

using Json = nlohmann::json;

Error malformed(const std::string& what) {
  return Error(errc::corrupt_blob, "registry manifest: " + what);
}

// The SHA-256 and size of a regular file's bytes, read in 1 MiB pieces.
Result<RegistryBlob> hash_file(const std::string& path, uint64_t max_size) {
  PAGERFS_TRY(fd, open_regular_file(path, O_RDONLY));
  Sha256 hasher;
  std::vector<std::byte> buffer(1 << 20);
  uint64_t offset = 0;
  for (;;) {
    PAGERFS_TRY(n, pread_some(fd.get(), buffer, offset, path));
    if (n == 0) break;
    hasher.update(std::span(buffer).first(n));
    offset += n;
    if (offset > max_size) return Error(errc::invalid_argument, "'" + path + "' is larger than a blob may be");
  }
  return RegistryBlob{hasher.finish(), offset};
}

// The member `key` of `object` with JSON type `type`; nullptr if optional and missing.
Result<const Json*> member(const Json& object, const char* key, Json::value_t type, const std::string& where,
                           bool optional = false) {
  const auto it = object.find(key);
  if (it == object.end()) {
    if (optional) return nullptr;
    return malformed(where + " has no \"" + key + "\"");
  }
  if (it->type() != type) return malformed(where + "." + key + " has the wrong JSON type");
  return &*it;
}

Result<std::string> string_member(const Json& object, const char* key, const std::string& where) {
  PAGERFS_TRY(value, member(object, key, Json::value_t::string, where));
  return value->get<std::string>();
}

struct Descriptor {
  std::string media_type;
  RegistryBlob blob;
  std::map<std::string, std::string> annotations;
};

Result<std::map<std::string, std::string>> annotations_of(const Json& object, const std::string& where) {
  std::map<std::string, std::string> out;
  PAGERFS_TRY(annotations, member(object, "annotations", Json::value_t::object, where, true));
  if (annotations == nullptr) return out;
  for (const auto& [key, value] : annotations->items()) {
    if (!value.is_string()) return malformed(where + ".annotations[\"" + key + "\"] is not a string");
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

Result<Descriptor> descriptor_of(const Json& value, const std::string& where) {
  if (!value.is_object()) return malformed(where + " is not an object");
  Descriptor d;
  PAGERFS_TRY(media_type, string_member(value, "mediaType", where));
  d.media_type = std::move(media_type);
  PAGERFS_TRY(digest, string_member(value, "digest", where));
  auto parsed = parse_canonical_digest(digest, where + ".digest");
  if (!parsed) return malformed(parsed.error().message());
  d.blob.digest = parsed.value();
  // A size is a non-negative integer; nlohmann keeps those as unsigned.
  PAGERFS_TRY(size, member(value, "size", Json::value_t::number_unsigned, where));
  d.blob.size = size->get<uint64_t>();
  if (d.blob.size > kMaxBlobFileBytes) return malformed(where + ".size is larger than a blob may be");
  PAGERFS_TRY(annotations, annotations_of(value, where));
  d.annotations = std::move(annotations);
  return d;
}

Json descriptor_json(std::string_view media_type, const RegistryBlob& blob) {
  return Json{{"mediaType", media_type}, {"digest", blob.digest.str()}, {"size", blob.size}};
}

}  // namespace

Result<std::optional<std::vector<std::byte>>> load_profile_file(const Store& store, std::string_view name) {
  const std::string path = store.profile_path(name);
  auto fd = open_regular_file(path, O_RDONLY);
  if (!fd) {
    if (fd.error().code() == std::errc::no_such_file_or_directory) return std::optional<std::vector<std::byte>>();
    return fd.error();
  }
  std::vector<std::byte> bytes;
  std::vector<std::byte> buffer(1 << 16);
  for (;;) {
    PAGERFS_TRY(n, pread_some(fd.value().get(), buffer, bytes.size(), path));
    if (n == 0) break;
    if (bytes.size() + n > profile::kMaxProfileBytes) {
      return Error(errc::corrupt_blob, "the prefetch profile of image '" + std::string(name) + "' is too large");
    }
    bytes.insert(bytes.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n));
  }
  if (auto parsed = profile::parse(bytes); !parsed) {
    return parsed.error().with_context("the prefetch profile of image '" + std::string(name) + "' (" + path + ")");
  }
  return std::optional<std::vector<std::byte>>(std::move(bytes));
}

bool is_valid_tag(std::string_view tag) noexcept {
  if (tag.empty() || tag.size() > 128) return false;
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  if (!word(tag[0])) return false;
  return std::all_of(tag.begin() + 1, tag.end(), [&](char c) { return word(c) || c == '.' || c == '-'; });
}

Result<Digest> parse_canonical_digest(std::string_view text, std::string_view what) {
  constexpr std::string_view prefix = "sha256:";
  if (!text.starts_with(prefix) || !Digest::is_canonical_hex(text.substr(prefix.size()))) {
    return Error(errc::invalid_argument,
                 std::string(what) + " is not a digest of the form sha256:<64 lowercase hex digits>");
  }
  return Digest::parse(text.substr(prefix.size()));
}

Result<ImageArtifact> describe_image(const Store& store, std::string_view name) {
  if (!is_valid_tag(name)) {
    return Error(errc::invalid_argument, "image '" + std::string(name) +
                                             "' cannot be a registry tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})");
  }
  ImageArtifact artifact;
  artifact.name = std::string(name);
  PAGERFS_TRY(manifest, store.load_image(name));
  PAGERFS_TRY(manifest_file, hash_file(store.image_path(name), kMaxPagerfsManifestBytes));
  artifact.manifest = std::move(manifest_file);
  for (uint32_t k = 0; k < manifest.blob_count(); ++k) {
    PAGERFS_TRY(record, manifest.blob_at(k));
    auto file = hash_file(store.blob_path(record.digest), kMaxBlobFileBytes);
    if (!file) return file.error().with_context("image '" + artifact.name + "': blob " + record.digest.str());
    artifact.blobs.push_back({record.digest, file.value()});
  }
  std::sort(artifact.blobs.begin(), artifact.blobs.end(),
            [](const ArtifactBlob& a, const ArtifactBlob& b) { return a.content < b.content; });
  artifact.blobs.erase(std::unique(artifact.blobs.begin(), artifact.blobs.end()), artifact.blobs.end());
  auto config = store.load_image_config(name);
  if (config) {
    artifact.config = RegistryBlob{Sha256::of(config.value()), config.value().size()};
  } else if (config.error().code() != std::errc::no_such_file_or_directory) {
    return config.error();
  }
  PAGERFS_TRY(profile, load_profile_file(store, name));
  if (profile) artifact.profile = RegistryBlob{Sha256::of(*profile), profile->size()};
  return artifact;
}

std::string encode_artifact(const ImageArtifact& artifact) {
  Json layers = Json::array();
  for (const ArtifactBlob& blob : artifact.blobs) {
    Json layer = descriptor_json(kPagerfsBlobMediaType, blob.file);
    layer["annotations"] = {{kBlobDigestAnnotation, blob.content.str()}};
    layers.push_back(std::move(layer));
  }
  if (artifact.config) {
    Json layer = descriptor_json(kOciConfigMediaType, *artifact.config);
    layer["annotations"] = {{kConfigAnnotation, "true"}};
    layers.push_back(std::move(layer));
  }
  if (artifact.profile) layers.push_back(descriptor_json(kPagerfsProfileMediaType, *artifact.profile));
  const Json manifest = {{"schemaVersion", 2},
                         {"mediaType", kOciManifestMediaType},
                         {"config", descriptor_json(kPagerfsManifestMediaType, artifact.manifest)},
                         {"layers", std::move(layers)},
                         {"annotations", {{kImageNameAnnotation, artifact.name}}}};
  return manifest.dump();
}

Result<ImageArtifact> parse_artifact(std::span<const std::byte> bytes) {
  if (bytes.size() > kMaxArtifactBytes) return malformed("larger than 4 MiB");
  const auto* text = reinterpret_cast<const char*>(bytes.data());
  // No exceptions: a parse error is a discarded value. Depth is bounded by
  // the size (nlohmann's parser is recursive, 4 MiB of '[' would be deep):
  // the callback refuses anything nested deeper than a manifest is.
  bool too_deep = false;
  const Json root = Json::parse(
      text, text + bytes.size(),
      [&](int depth, Json::parse_event_t event, Json&) {
        if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
            depth > 8) {
          too_deep = true;
        }
        return !too_deep;
      },
      /*allow_exceptions=*/false);
  if (too_deep) return malformed("nested too deeply");
  if (root.is_discarded() || !root.is_object()) return malformed("not a JSON object");

  PAGERFS_TRY(schema, member(root, "schemaVersion", Json::value_t::number_unsigned, "manifest"));
  if (schema->get<uint64_t>() != 2) return malformed("schemaVersion is not 2");
  PAGERFS_TRY(media_type, member(root, "mediaType", Json::value_t::string, "manifest", true));
  if (media_type != nullptr && media_type->get<std::string>() != kOciManifestMediaType) {
    return malformed("mediaType is not " + std::string(kOciManifestMediaType));
  }

  ImageArtifact artifact;
  PAGERFS_TRY(annotations, annotations_of(root, "manifest"));
  const auto name = annotations.find(std::string(kImageNameAnnotation));
  if (name == annotations.end()) return malformed("no annotation " + std::string(kImageNameAnnotation));
  if (!is_valid_tag(name->second)) return malformed("the image name is not a valid tag");
  artifact.name = name->second;

  PAGERFS_TRY(config, member(root, "config", Json::value_t::object, "manifest"));
  PAGERFS_TRY(manifest, descriptor_of(*config, "config"));
  if (manifest.media_type != kPagerfsManifestMediaType) {
    return malformed("config.mediaType is not " + std::string(kPagerfsManifestMediaType) +
                     " (not a pagerfs image)");
  }
  if (manifest.blob.size > kMaxPagerfsManifestBytes) return malformed("the pagerfs manifest is larger than 256 MiB");
  artifact.manifest = manifest.blob;

  PAGERFS_TRY(layers, member(root, "layers", Json::value_t::array, "manifest"));
  std::set<Digest> contents;
  for (size_t i = 0; i < layers->size(); ++i) {
    const std::string where = "layers[" + std::to_string(i) + "]";
    PAGERFS_TRY(layer, descriptor_of((*layers)[i], where));
    if (layer.media_type == kOciConfigMediaType) {
      const auto flag = layer.annotations.find(std::string(kConfigAnnotation));
      if (flag == layer.annotations.end() || flag->second != "true") {
        return malformed(where + " is an image config without the annotation " + std::string(kConfigAnnotation));
      }
      if (artifact.config) return malformed(where + " is a second image config");
      if (layer.blob.size > Store::kMaxImageConfigBytes) return malformed(where + ": the image config is too large");
      artifact.config = layer.blob;
      continue;
    }
    if (layer.media_type == kPagerfsProfileMediaType) {
      if (artifact.profile) return malformed(where + " is a second prefetch profile");
      if (layer.blob.size > profile::kMaxProfileBytes) return malformed(where + ": the prefetch profile is too large");
      artifact.profile = layer.blob;
      continue;
    }
    if (layer.media_type != kPagerfsBlobMediaType) return malformed(where + " has an unknown mediaType");
    const auto content = layer.annotations.find(std::string(kBlobDigestAnnotation));
    if (content == layer.annotations.end()) {
      return malformed(where + " has no annotation " + std::string(kBlobDigestAnnotation));
    }
    auto digest = parse_canonical_digest(content->second, where + " " + std::string(kBlobDigestAnnotation));
    if (!digest) return malformed(digest.error().message());
    if (!contents.insert(digest.value()).second) return malformed(where + " names blob " + content->second + " again");
    artifact.blobs.push_back({digest.value(), layer.blob});
  }
  std::sort(artifact.blobs.begin(), artifact.blobs.end(),
            [](const ArtifactBlob& a, const ArtifactBlob& b) { return a.content < b.content; });
  return artifact;
}

}  // namespace pagerfs::remote
