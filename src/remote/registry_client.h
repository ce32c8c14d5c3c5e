// A client of one repository of an OCI registry (the distribution spec's
// HTTP API), over HttpClient: blobs checked, uploaded and fetched; image
// manifests put by tag and fetched by tag or digest. Everything fetched is
// verified against the digest it was asked by before it is returned: the
// registry is untrusted, and so is every answer's size.
//
//   oci://HOST[:PORT]/REPO   https://HOST[:PORT]/v2/REPO/...; plain http when
//                            HOST is a loopback address (127.0.0.0/8,
//                            localhost, [::1]) or RegistryOptions::plain_http.
//
// Authentication (answers to a 401, then kept for the next requests):
//   WWW-Authenticate: Basic realm=...     the credentials, as Basic;
//   WWW-Authenticate: Bearer realm=R,service=S,scope=C
//                                         GET R?service=S&scope=C (with the
//                                         credentials as Basic, if any) gives a
//                                         token (JSON "token" or "access_token",
//                                         "expires_in"), sent as Bearer; one per
//                                         scope, until it expires or a 401.
// Credentials are never logged nor put in an error message.
//
// Thread safety: all methods may be called concurrently (the auth state is
// behind a mutex; each request is its own HttpClient transfer).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/remote/remote_images.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "remote/http_client.h"
#include "remote/manifest_cache.h"
#include "remote/registry_artifact.h"
#include "util/mutex.h"

namespace pagerfs::remote {

// Where a repository is: parsed from "oci://HOST[:PORT]/REPO".
struct RegistryLocation {
  std::string base_url;    // "https://HOST[:PORT]" (or http, see above)
  std::string host;        // "HOST[:PORT]"
  std::string repository;  // "REPO": lowercase path components [a-z0-9]+([._-]|__)... joined by '/'
  // "oci://HOST[:PORT]/REPO": for messages.
  std::string str() const { return "oci://" + host + "/" + repository; }
  // errc::invalid_argument, one line, for anything that is not such a URL.
  static Result<RegistryLocation> parse(std::string_view url, bool plain_http = false);
};

struct RegistryCredentials {
  std::string user;
  std::string password;
};

// The credentials to use: `file` (one line "USER:PASSWORD", refused if
// group or others may read it, like ssh refuses a private key), else the
// environment variable PAGERFS_REGISTRY_AUTH ("USER:PASSWORD"), else none.
Result<std::optional<RegistryCredentials>> load_credentials(const std::optional<std::string>& file);

// A parsed WWW-Authenticate challenge: `Scheme k1=v1, k2="v 2"`; the scheme
// in lower case, parameter names in lower case. nullopt if malformed.
struct AuthChallenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};
std::optional<AuthChallenge> parse_www_authenticate(std::string_view value);

// Where to Range-GET a registry blob, and the headers to send (the
// Authorization of the moment: a token may expire, ask again on a 401).
struct BlobAccess {
  std::string url;
  std::vector<std::string> headers;
};

struct RegistryOptions {
  bool plain_http = false;  // http even for a host that is not loopback
  HttpClientOptions http{};
};

class RegistryClient {
 public:
  RegistryClient(RegistryLocation location, std::optional<RegistryCredentials> credentials,
                 RegistryOptions options = {});
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  const RegistryLocation& location() const noexcept { return location_; }

  // HEAD /v2/REPO/blobs/DIGEST: the blob's size if the repository has it.
  Result<std::optional<uint64_t>> blob_size(const Digest& digest);

  // Uploads a blob whose bytes have SHA-256 `digest` (POST .../blobs/uploads/,
  // then one PUT LOCATION?digest=...), from memory or streamed from the
  // file `fd` (`size` bytes from offset 0). `sent` is told the bytes sent so
  // far, from the transfer thread.
  Result<void> upload_blob(const Digest& digest, std::span<const std::byte> data);
  Result<void> upload_blob(const Digest& digest, int fd, uint64_t size);

  // PUT /v2/REPO/manifests/TAG of an OCI image manifest; returns its digest
  // (the SHA-256 of `json`, checked against Docker-Content-Digest if sent).
  Result<Digest> put_manifest(std::string_view tag, std::string_view json);

  struct Manifest {
    std::vector<std::byte> bytes;
    Digest digest;  // SHA-256 of bytes
  };
  // GET /v2/REPO/manifests/REFERENCE (a tag, or a digest when `pinned`,
  // which the bytes must then hash to), at most kMaxArtifactBytes. For a tag,
  // a Docker-Content-Digest header must agree with the bytes.
  Result<Manifest> get_manifest(std::string_view tag, const std::optional<Digest>& pinned);

  // GET /v2/REPO/blobs/DIGEST whole: exactly blob.size bytes hashing to
  // blob.digest, into memory (a small blob: at most `max_size`) or written to
  // `fd` at its current offset (streamed, any size; on failure the file
  // holds what came, for the caller to delete).
  Result<std::vector<std::byte>> get_blob(const RegistryBlob& blob, uint64_t max_size);
  Result<void> download_blob(const RegistryBlob& blob, int fd);

  // For a Range-GET of the blob by someone else's HttpClient (the remote
  // layer): the URL and the Authorization to send. Obtains a token first if
  // the registry needs one for pulling.
  Result<BlobAccess> blob_access(const Digest& digest);
  // The same without a request of its own: the URL and the authorization
  // learnt so far (a token is renewed when it has expired). For every read
  // of a blob after the first request to the registry.
  BlobAccess pull_access(const Digest& digest);

 private:
  enum class Access { pull, push };
  struct Token {
    std::string value;
    std::chrono::steady_clock::time_point expires;
  };

  // Performs `request` with the authorization `access` needs, answering a
  // 401 challenge once (twice when a cached token had expired early).
  Result<HttpResponse> send(HttpRequest request, Access access, const HttpClient::BodyFn& body = nullptr);
  // The Authorization header line for `access` now, if any.
  std::optional<std::string> authorization(Access access);
  // Learns from a 401's challenge how to authenticate; an error if we cannot.
  Result<void> answer_challenge(const HttpResponse& response, Access access, bool retried);
  Result<Token> fetch_token(const AuthChallenge& challenge, const std::string& scope);
  std::string scope(Access access) const;
  Result<void> upload(const Digest& digest, const HttpRequestBody& body);
  // GET of a blob, its bytes handed to `sink` as they come, checked against
  // its size and digest.
  Result<void> fetch_blob(const RegistryBlob& blob,
                          const std::function<Result<void>(std::span<const std::byte>)>& sink);
  std::string blob_url(const Digest& digest) const;
  // A Location header resolved against the registry; refused unless it is
  // on the registry itself.
  Result<std::string> resolve_location(const std::string& location) const;
  Error status_error(const std::string& what, const HttpResponse& response) const;

  RegistryLocation location_;
  std::optional<RegistryCredentials> credentials_;
  HttpClient http_;

  Mutex mu_;
  bool use_basic_ GUARDED_BY(mu_) = false;
  std::optional<AuthChallenge> bearer_ GUARDED_BY(mu_);
  std::map<std::string, Token> tokens_ GUARDED_BY(mu_);  // by scope
};

using pagerfs::ImageReference;
using pagerfs::parse_image_reference;

// The pagerfs image `ref` ("NAME" or "NAME@sha256:HEX", NAME a valid tag) of
// the repository, verified: the OCI manifest (by tag, or by the pinned
// digest), the pagerfs manifest it names (hashing to its config digest,
// parsed and checked whole), the image config (if any), and the blobs the
// artifact lists, which must be exactly those the pagerfs manifest names.
// What a reader of an oci:// remote needs before it reads a blob.
//
// With a cache (and a pinned digest for the OCI manifest), what it holds
// intact is taken from it without a request, and what was fetched and
// verified is kept in it: a pinned image whose files are all cached is had
// with the registry down. The prefetch profile is fetched only if asked
// for, and is a hint: one that cannot be had (absent from the registry and
// the cache, bytes that do not hash to its digest) leaves `profile` empty
// and says why in `profile_error`.
//
//   auto location = RegistryLocation::parse("oci://registry.example.com/team/images");
//   RegistryClient client(location.value(), load_credentials(std::nullopt).value());
//   auto image = fetch_registry_image(client, "demo@sha256:...");
//   // image->manifest: Manifest::parse it; image->blob_files(): where each blob is;
//   // client.blob_access(file.digest): the URL and headers to Range-GET it with.
struct RegistryImage {
  ImageArtifact artifact;              // content digest -> registry digest and size: artifact.blobs
  Digest oci_digest;                   // of the OCI manifest: what NAME@sha256:... pins
  std::vector<std::byte> manifest;     // the pagerfs image manifest file
  std::optional<std::vector<std::byte>> config;   // the OCI image config JSON
  std::optional<std::vector<std::byte>> profile;  // the prefetch profile's bytes (not parsed)
  std::string profile_error;           // why the artifact's profile is not in `profile`

  // Content digest (the blob's name in a store) -> its file in the registry.
  std::map<Digest, RegistryBlob> blob_files() const {
    std::map<Digest, RegistryBlob> files;
    for (const ArtifactBlob& blob : artifact.blobs) files.emplace(blob.content, blob.file);
    return files;
  }
};
struct RegistryFetchOptions {
  const ManifestCache* cache = nullptr;
  bool profile = false;
};
Result<RegistryImage> fetch_registry_image(RegistryClient& client, const ImageReference& ref,
                                           const RegistryFetchOptions& options = {});
// The same, `reference` parsed first (parse_image_reference).
Result<RegistryImage> fetch_registry_image(RegistryClient& client, std::string_view reference);

}  // namespace pagerfs::remote
