// Where a container image comes from: an OCI image layout directory or a
// `docker save` archive, read as what `pagerfsctl import` needs: the image
// config (its bytes, verbatim) and the layers, in order, each a stream of
// its raw bytes with what they must hash to.
//
//   oci:DIR[:TAG]             an OCI image layout (skopeo, umoci, buildah):
//                             DIR/oci-layout, DIR/index.json, DIR/blobs/
//   docker-archive:FILE[:REF] a tar (plain, gzip or zstd) written by
//                             `docker save` or `skopeo copy`: manifest.json
//
// DIR (FILE) is the shortest prefix before a ':' that exists, and TAG (REF)
// the rest ("docker-archive:img.tar:busybox:latest"); none: no TAG.
//
// OCI layout: the manifest is the one of index.json whose annotation
// org.opencontainers.image.ref.name is TAG (without TAG: the only one); an
// image index (OCI, or a docker manifest list) gives the manifest for this
// host's platform. The manifest and the config are read whole (at most
// 4 MiB each) and checked against the digest and size of their descriptor;
// each layer is checked against its descriptor as it is read (LayerReader).
// docker-archive: the entry of manifest.json whose RepoTags holds REF (without
// REF: the only one); the config is checked against its member name when
// that is "<hex>.json" or "blobs/sha256/<hex>"; a layer member that is an
// uncompressed tar is checked against the config's rootfs.diff_ids (and
// against its name when that is "blobs/sha256/<hex>"). Layers are read
// straight out of the archive, which is read again from its start for each.
//
// Every JSON field is checked for its type; a malformed file is a one-line
// error naming it.
//
// Thread safety: ImageSource is a value; its layers' open() may be called
// from one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/oci/layer_reader.h"
#include "pagerfs/util/error.h"
#include "pagerfs/util/file.h"

namespace pagerfs::oci {

inline constexpr uint64_t kMaxMetadataBytes = 4u << 20;  // a manifest, index or config

struct OpenedLayer {
  std::unique_ptr<InputStream> raw;
  LayerExpectations expected;
};

struct LayerSource {
  std::string name;        // "layer 2 (sha256:abcd1234...)": for messages
  std::string media_type;  // as the manifest says ("" in a docker archive)
  std::function<Result<OpenedLayer>()> open;
};

struct ImageSource {
  std::string description;        // the SOURCE as given
  std::vector<std::byte> config;  // the image config JSON, verbatim
  std::vector<LayerSource> layers;
};

// Opens `source` ("oci:DIR[:TAG]" or "docker-archive:FILE[:REF]"): reads
// and checks everything but the layers' content.
Result<ImageSource> open_image_source(std::string_view source);

// "amd64", "arm64", ...: the GOARCH of this host, as image platforms name it.
std::string host_architecture();

}  // namespace pagerfs::oci
