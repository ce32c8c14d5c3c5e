// libFuzzer target: what an OCI registry hands the registry client. The
// input is an OCI image manifest for parse_artifact() (a hostile registry's
// answer, with or without a config and a prefetch profile layer), and, as
// text, a WWW-Authenticate challenge, an image reference and an oci://
// location. Nothing may crash, hang or allocate without bound; an artifact
// that parses must encode and parse back to itself, name only canonical
// digests and a valid tag, and bound its profile. Seeds: manifests pushed by
// pagerfsctl's encoder and a few challenges (scripts/fuzz).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "pagerfs/store/image_manifest.h"
#include "pagerfs/store/prefetch_profile.h"
#include "remote/registry_artifact.h"
#include "remote/registry_client.h"

using namespace pagerfs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto bytes = std::as_bytes(std::span(data, size));
  auto artifact = remote::parse_artifact(bytes);
  if (artifact) {
    if (!remote::is_valid_tag(artifact.value().name)) std::abort();
    const auto& profile = artifact.value().profile;
    if (profile && profile->size > profile::kMaxProfileBytes) std::abort();
    const std::string encoded = remote::encode_artifact(artifact.value());
    auto again = remote::parse_artifact(std::as_bytes(std::span(encoded.data(), encoded.size())));
    if (!again || !(again.value() == artifact.value())) std::abort();
  }
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto challenge = remote::parse_www_authenticate(text)) {
    if (challenge->scheme.empty() || challenge->params.size() > 16) std::abort();
  }
  if (auto ref = remote::parse_image_reference(text)) {
    if (!image::validate_image_name(ref.value().name)) std::abort();
  }
  if (auto location = remote::RegistryLocation::parse(text)) {
    const std::string& repo = location.value().repository;
    if (repo.empty() || repo.front() == '/' || repo.find("//") != std::string::npos || repo.find("/../") != std::string::npos) std::abort();
  }
  return 0;
}
