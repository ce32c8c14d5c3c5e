// How an image of a store is laid out in an OCI registry (pagerfs-store(5),
// IMAGES IN AN OCI REGISTRY): one OCI image manifest per image, tagged with
// the image's name, whose
//
//   config   is the pagerfs image manifest file (kPagerfsManifestMediaType),
//   layers   are the blob files it names, sorted by content digest, each once
//            (kPagerfsBlobMediaType; registry digest = SHA-256 of the file's
//            bytes, annotation kBlobDigestAnnotation = the content digest
//            that names it in a store), then the image's OCI config JSON, if
//            it has one (kOciConfigMediaType, annotation kConfigAnnotation),
//            then its prefetch profile, if it has one (kPagerfsProfileMediaType:
//            the STORE/profiles/NAME file, prefetch_profile.h),
//   annotations hold kImageNameAnnotation = the image's name.
//
// The OCI manifest's digest (what NAME@sha256:HEX pins) covers everything:
// the pagerfs manifest, every blob file, the config and the profile, each by
// the digest of its bytes. A new profile is a new artifact with a new
// digest. The profile stays a hint (prefetch_profile.h): a reader that
// cannot have it, or finds it malformed, mounts without it. An artifact
// without a profile (pushed before profiles travelled) is as valid as ever.
//
// Two digests per blob: the registry knows a blob by the SHA-256 of the bytes
// it stores (the compressed file), a store by the SHA-256 of the decoded
// content. The artifact maps one to the other; a reader checks both (the
// registry digest as the bytes arrive, the content digest by verify_blob).
//
// The registry is untrusted: parse_artifact() refuses anything malformed,
// oversized, of another media type, a digest that is not canonical
// "sha256:<64 lowercase hex>", a blob named twice.
//
// Thread safety: pure functions over values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/store/prefetch_profile.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace pagerfs::remote {

inline constexpr std::string_view kOciManifestMediaType = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kPagerfsManifestMediaType = "application/vnd.pagerfs.image.manifest.v2";
inline constexpr std::string_view kPagerfsBlobMediaType = "application/vnd.pagerfs.blob.v2";
inline constexpr std::string_view kPagerfsProfileMediaType = "application/vnd.pagerfs.profile.v1";
inline constexpr std::string_view kOciConfigMediaType = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kBlobDigestAnnotation = "org.pagerfs.blob.digest";
inline constexpr std::string_view kConfigAnnotation = "org.pagerfs.image.config";
inline constexpr std::string_view kImageNameAnnotation = "org.pagerfs.image.name";

// Bounds on what a registry may hand us.
inline constexpr uint64_t kMaxArtifactBytes = 4u << 20;          // the OCI manifest JSON
inline constexpr uint64_t kMaxPagerfsManifestBytes = 256u << 20;  // the config blob (a pagerfs manifest)
inline constexpr uint64_t kMaxBlobFileBytes = uint64_t{1} << 40;  // one blob file (1 TiB)

// A blob as the registry knows it: by the digest of its bytes, and their size.
struct RegistryBlob {
  Digest digest;
  uint64_t size = 0;
  bool operator==(const RegistryBlob&) const = default;
};

// One blob file of the image.
struct ArtifactBlob {
  Digest content;          // its name in a store (SHA-256 of the decoded content)
  RegistryBlob file;       // the stored file's bytes in the registry
  bool operator==(const ArtifactBlob&) const = default;
};

struct ImageArtifact {
  std::string name;                   // the image's name, which is also its tag
  RegistryBlob manifest;              // the pagerfs image manifest file
  std::vector<ArtifactBlob> blobs;    // sorted by content digest, unique
  std::optional<RegistryBlob> config;  // the OCI image config JSON
  std::optional<RegistryBlob> profile;  // the prefetch profile (at most profile::kMaxProfileBytes)
  bool operator==(const ImageArtifact&) const = default;
};

// Whether `tag` is a valid OCI tag: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
bool is_valid_tag(std::string_view tag) noexcept;

// "sha256:<64 lowercase hex>" exactly; errc::invalid_argument naming `what`.
Result<Digest> parse_canonical_digest(std::string_view text, std::string_view what);

// The artifact of image `name` of `store`: hashes the manifest file, every
// blob file it names, the config and the prefetch profile (which must parse:
// a malformed one is errc::corrupt_blob naming it). A name that is not a valid tag is
// errc::invalid_argument; a blob the store lacks is ENOENT naming it. It
// does not verify the blobs (see verify_blob).
Result<ImageArtifact> describe_image(const Store& store, std::string_view name);

// The bytes of image `name`'s prefetch profile file (STORE/profiles/NAME),
// checked to parse (errc::corrupt_blob naming it if not); nullopt if it has
// none. What push uploads, byte for byte.
Result<std::optional<std::vector<std::byte>>> load_profile_file(const Store& store, std::string_view name);

// The OCI image manifest JSON of `artifact` (what is PUT under its tag).
std::string encode_artifact(const ImageArtifact& artifact);

// Parses an OCI image manifest written by encode_artifact() (or by anyone
// else who follows pagerfs-store(5)). errc::corrupt_blob, one line, for
// anything else.
Result<ImageArtifact> parse_artifact(std::span<const std::byte> json);

}  // namespace pagerfs::remote
