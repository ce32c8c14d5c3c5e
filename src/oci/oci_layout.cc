#include "oci/oci_layout.h"

#include <algorithm>

#include "oci/json_fields.h"
#include "oci/source_files.h"
#include "util/quoted.h"

namespace pagerfs::oci {
namespace {

constexpr std::string_view kRefNameAnnotation = "org.opencontainers.image.ref.name";
constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr std::string_view kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
// An index may name an index; a chain longer than this is refused.
constexpr int kMaxIndexDepth = 4;

bool is_index(std::string_view media_type) { return media_type == kOciIndex || media_type == kDockerList; }

bool is_layer_media_type(std::string_view type) {
  for (std::string_view known : {"application/vnd.oci.image.layer.v1.tar",
                                 "application/vnd.oci.image.layer.v1.tar+gzip",
                                 "application/vnd.oci.image.layer.v1.tar+zstd",
                                 "application/vnd.oci.image.layer.nondistributable.v1.tar",
                                 "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                                 "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
                                 "application/vnd.docker.image.rootfs.diff.tar",
                                 "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                 "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"}) {
    if (type == known) return true;
  }
  return false;
}

class Layout {
 public:
  explicit Layout(std::string dir) : dir_(std::move(dir)) {}

  std::string blob_path(const Digest& digest) const { return dir_ + "/blobs/sha256/" + digest.hex(); }
  std::string blob_name(const Digest& digest) const { return pagerfs::quoted("blobs/sha256/" + digest.hex()); }

  // A manifest, index or config: read whole, checked against `d`.
  Result<std::vector<std::byte>> read_metadata(const Descriptor& d, const std::string& what) const {
    const std::string name = what + " " + blob_name(d.digest) + " of " + pagerfs::quoted(dir_);
    if (d.size > kMaxMetadataBytes) {
      return Error(errc::corrupt_blob, name + ": " + std::to_string(d.size) + " bytes, more than " +
                                           std::to_string(kMaxMetadataBytes));
    }
    auto bytes = read_bounded_file(blob_path(d.digest), d.size);
    if (!bytes) return bytes.error().with_context(name);
    if (bytes.value().size() != d.size) {
      return Error(errc::digest_mismatch, name + ": " + std::to_string(bytes.value().size()) +
                                              " bytes, but its descriptor says " + std::to_string(d.size));
    }
    if (Sha256::of(bytes.value()) != d.digest) {
      return Error(errc::digest_mismatch, name + ": its content does not match its digest");
    }
    return bytes;
  }

  Result<Descriptor> select_tag(const std::optional<std::string>& tag) const {
    const std::string index_file = pagerfs::quoted(dir_ + "/index.json");
    PAGERFS_TRY(bytes, read_bounded_file(dir_ + "/index.json", kMaxMetadataBytes));
    PAGERFS_TRY(index, parse_json(bytes, index_file));
    PAGERFS_TRY(manifests, member(index, "manifests", Json::value_t::array, index_file, "the index"));
    std::vector<Descriptor> all;
    for (size_t i = 0; i < manifests->size(); ++i) {
      PAGERFS_TRY(d, parse_descriptor((*manifests)[i], index_file, "manifests[" + std::to_string(i) + "]"));
      all.push_back(std::move(d));
    }
    std::vector<std::string> tags;
    for (const Descriptor& d : all) {
      const auto it = d.annotations.find(std::string(kRefNameAnnotation));
      tags.push_back(it == d.annotations.end() ? "" : it->second);
    }
    auto listed = [&] {
      std::string out;
      for (const std::string& t : tags) out += (out.empty() ? "" : ", ") + (t.empty() ? "(untagged)" : t);
      return out;
    };
    if (tag) {
      const auto it = std::find(tags.begin(), tags.end(), *tag);
      if (it == tags.end()) {
        return Error(std::make_error_code(std::errc::no_such_file_or_directory),
                     pagerfs::quoted(dir_) + " has no image tagged " + pagerfs::quoted(*tag) + " (tags: " + listed() + ")");
      }
      if (std::count(tags.begin(), tags.end(), *tag) > 1) {
        return Error(errc::corrupt_blob, index_file + ": several images tagged " + pagerfs::quoted(*tag));
      }
      return all[static_cast<size_t>(it - tags.begin())];
    }
    if (all.size() != 1) {
      return Error(errc::invalid_argument, pagerfs::quoted(dir_) + " holds " + std::to_string(all.size()) +
                                               " images; name one as oci:DIR:TAG (tags: " + listed() + ")");
    }
    return all.front();
  }

  // The manifest for this host out of an image index.
  Result<Descriptor> select_platform(const Descriptor& index_descriptor) const {
    PAGERFS_TRY(bytes, read_metadata(index_descriptor, "index"));
    const std::string file = "index " + blob_name(index_descriptor.digest);
    PAGERFS_TRY(index, parse_json(bytes, file));
    PAGERFS_TRY(manifests, member(index, "manifests", Json::value_t::array, file, "the index"));
    const std::string arch = host_architecture();
    for (size_t i = 0; i < manifests->size(); ++i) {
      PAGERFS_TRY(d, parse_descriptor((*manifests)[i], file, "manifests[" + std::to_string(i) + "]"));
      if (d.os == "linux" && d.architecture == arch) return d;
    }
    return Error(std::make_error_code(std::errc::no_such_file_or_directory),
                 file + " of " + pagerfs::quoted(dir_) + " has no image for linux/" + arch);
  }

 private:
  std::string dir_;
};

}  // namespace

Result<ImageSource> open_oci_layout(const std::string& dir, const std::optional<std::string>& tag) {
  const Layout layout(dir);
  const std::string layout_file = pagerfs::quoted(dir + "/oci-layout");
  PAGERFS_TRY(layout_bytes, read_bounded_file(dir + "/oci-layout", kMaxMetadataBytes));
  PAGERFS_TRY(layout_json, parse_json(layout_bytes, layout_file));
  PAGERFS_TRY(version, string_member(layout_json, "imageLayoutVersion", layout_file, "the layout"));
  if (!version.starts_with("1.")) {
    return Error(errc::unsupported_format, layout_file + ": imageLayoutVersion " + version.substr(0, 40) +
                                               " (only 1.x is supported)");
  }

  PAGERFS_TRY(descriptor, layout.select_tag(tag));
  for (int depth = 0; is_index(descriptor.media_type); ++depth) {
    if (depth == kMaxIndexDepth) return Error(errc::corrupt_blob, pagerfs::quoted(dir) + ": image indexes nested too deep");
    PAGERFS_TRY(next, layout.select_platform(descriptor));
    descriptor = std::move(next);
  }
  if (descriptor.media_type != kOciManifest && descriptor.media_type != kDockerManifest) {
    return Error(errc::unsupported_format, pagerfs::quoted(dir) + ": manifest " + layout.blob_name(descriptor.digest) +
                                               " has media type " + pagerfs::quoted(descriptor.media_type.substr(0, 100)));
  }
  PAGERFS_TRY(manifest_bytes, layout.read_metadata(descriptor, "manifest"));
  const std::string file = "manifest " + layout.blob_name(descriptor.digest);
  PAGERFS_TRY(manifest, parse_json(manifest_bytes, file));
  PAGERFS_TRY(config_json, member(manifest, "config", Json::value_t::object, file, "the manifest"));
  PAGERFS_TRY(config_descriptor, parse_descriptor(*config_json, file, "config"));
  PAGERFS_TRY(layers, member(manifest, "layers", Json::value_t::array, file, "the manifest"));

  ImageSource source;
  source.description = "oci:" + dir + (tag ? ":" + *tag : "");
  PAGERFS_TRY(config, layout.read_metadata(config_descriptor, "config"));
  // The config must describe these layers (a runtime reads it later).
  if (auto ids = config_diff_ids(config, "config " + layout.blob_name(config_descriptor.digest), layers->size());
      !ids) {
    return ids.error();
  }
  source.config = std::move(config);
  for (size_t i = 0; i < layers->size(); ++i) {
    PAGERFS_TRY(d, parse_descriptor((*layers)[i], file, "layers[" + std::to_string(i) + "]"));
    LayerSource layer;
    layer.name = layer_name(i, d.digest);
    layer.media_type = d.media_type;
    if (!is_layer_media_type(d.media_type)) {
      return Error(errc::unsupported_format, layer.name + ": unsupported media type " +
                                                 pagerfs::quoted(d.media_type.substr(0, 100)));
    }
    layer.open = [path = layout.blob_path(d.digest), d]() -> Result<OpenedLayer> {
      PAGERFS_TRY(raw, open_file_stream(path));
      return OpenedLayer{std::move(raw), LayerExpectations{d.digest, d.size}};
    };
    source.layers.push_back(std::move(layer));
  }
  return source;
}

}  // namespace pagerfs::oci
