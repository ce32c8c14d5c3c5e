// Images of a remote store, anchored by the digest of their manifest: what a
// host with no store of its own mounts (`pagerfs URL MNT -o
// image=NAME@sha256:HEX`).
//
// The remote is untrusted, so an image is named together with what the user
// trusts: the SHA-256 of its manifest file (`pagerfsctl images` prints it).
// The manifest is fetched from the first mirror that serves it and kept only
// if its bytes hash to that digest; from there the manifest anchors every
// blob's seek table, and the seek table every chunk (pager.h), so the chain
// from the digest the user typed to every byte a reader gets is
// cryptographic.
//
// A manifest cache directory (the cache disk's) keeps verified manifests by
// digest, so a later mount needs no request for them and works while the
// remote is down; a cached manifest is hashed again before it is used.
//
// Thread safety: free functions without shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/remote/remote_layer.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace pagerfs {

// NAME or NAME@sha256:HEX: an image, and the digest that pins it if given
// (of its manifest file over http(s); of its OCI manifest in a registry).
struct ImageReference {
  std::string name;
  std::optional<Digest> digest;

  std::string str() const { return digest ? name + "@" + digest->str() : name; }
};

// The one parser of image references (mount options, pagerfsctl pull):
// NAME a valid image name (image::validate_image_name; a registry further
// wants a tag, remote/registry_artifact.h), the digest canonical
// "sha256:<64 lowercase hex>". errc::invalid_argument with the reason.
Result<ImageReference> parse_image_reference(std::string_view text);

// A pinned image: NAME@sha256:HEX, what a remote-only mount names.
struct ImageRef {
  std::string name;
  Digest manifest_digest;

  std::string str() const { return name + "@" + manifest_digest.str(); }
};

// The SHA-256 of image `name`'s manifest file in `store`: the digest that
// anchors it (NAME@sha256:HEX).
Result<Digest> manifest_digest(const Store& store, std::string_view name);

struct FetchImagesOptions {
  // Where verified manifests are kept by digest (DIR/sha256/HEX); empty: none.
  std::string manifest_cache_dir;
  // Also fetch each image's prefetch profile, if it has one: from a
  // registry the one the artifact names (anchored by its digest, and cached
  // with the manifests); over http(s) URL/profiles/NAME (not anchored,
  // prefetch_profile.h). Either way a hint: a profile that cannot be had or
  // parsed is passed to `warn` (one line) and left out.
  bool fetch_profiles = false;
  std::function<void(const std::string&)> warn;
};

// Writes each image's manifest into `store` (images/NAME), from the manifest
// cache if it holds it intact, else from the remote (URL/images/NAME, the
// mirrors tried in order within the options' attempts and deadline). A
// manifest whose bytes do not hash to the digest asked for is refused:
// errc::corrupt_blob naming the image, the mirror and both digests. An
// image no mirror has is ENOENT; a remote that does not answer, EIO.
Result<void> fetch_images(const RemoteLayerOptions& remote, const std::vector<ImageRef>& images, const Store& store,
                          const FetchImagesOptions& options = {});

// The manifest file of image `name` from the mirrors of `remote`
// (URL/images/NAME), tried in order, each failure followed by a backoff,
// within the remote's attempts and deadline; a 404 moves on to the next
// mirror. With `pinned`, only bytes that hash to it are taken (a mirror that
// sends others is not asked again); without, the first mirror's answer
// (trusted on first use: the caller says so). At most `max_bytes`.
Result<std::vector<std::byte>> fetch_manifest(const RemoteLayerOptions& remote, std::string_view name,
                                              const std::optional<Digest>& pinned, uint64_t max_bytes);

}  // namespace pagerfs
