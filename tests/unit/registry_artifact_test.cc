// The registry artifact (what an image looks like in an OCI registry) and
// the registry client's parsers, without a registry: tags, digests,
// references, locations, credentials, WWW-Authenticate, and every way a
// hostile registry can malform a manifest. Pushes and pulls against a real
// docker-registry are in tests/integration/registry_test.cc.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "remote/registry_artifact.h"
#include "remote/registry_client.h"
#include "support/subprocess.h"

namespace pagerfs {
namespace {

using remote::ImageArtifact;
using remote::parse_artifact;
using Json = nlohmann::json;

Digest digest_of(const std::string& text) {
  return Sha256::of(std::as_bytes(std::span(text.data(), text.size())));
}

ImageArtifact sample(bool with_config = true, bool with_profile = true) {
  ImageArtifact a;
  a.name = "demo-1.0";
  a.manifest = {digest_of("manifest"), 4096};
  a.blobs = {{digest_of("a"), {digest_of("file a"), 100}}, {digest_of("b"), {digest_of("file b"), 200}}};
  std::sort(a.blobs.begin(), a.blobs.end(), [](const auto& x, const auto& y) { return x.content < y.content; });
  if (with_config) a.config = remote::RegistryBlob{digest_of("config"), 77};
  if (with_profile) a.profile = remote::RegistryBlob{digest_of("profile"), 150};
  return a;
}

Result<ImageArtifact> parse_text(const std::string& text) {
  return parse_artifact(std::as_bytes(std::span(text.data(), text.size())));
}

Json sample_json() { return Json::parse(remote::encode_artifact(sample())); }

TEST(RegistryArtifact, EncodesWhatTheLayoutSays) {
  const Json j = sample_json();
  EXPECT_EQ(j["schemaVersion"], 2);
  EXPECT_EQ(j["mediaType"], "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(j["config"]["mediaType"], "application/vnd.pagerfs.image.manifest.v2");
  EXPECT_EQ(j["config"]["digest"], digest_of("manifest").str());
  EXPECT_EQ(j["config"]["size"], 4096);
  ASSERT_EQ(j["layers"].size(), 4u);
  EXPECT_EQ(j["layers"][0]["mediaType"], "application/vnd.pagerfs.blob.v2");
  EXPECT_EQ(j["layers"][0]["annotations"]["org.pagerfs.blob.digest"], sample().blobs[0].content.str());
  EXPECT_EQ(j["layers"][0]["digest"], sample().blobs[0].file.digest.str());
  EXPECT_EQ(j["layers"][2]["mediaType"], "application/vnd.oci.image.config.v1+json");
  EXPECT_EQ(j["layers"][2]["annotations"]["org.pagerfs.image.config"], "true");
  EXPECT_EQ(j["layers"][3]["mediaType"], "application/vnd.pagerfs.profile.v1");
  EXPECT_EQ(j["layers"][3]["digest"], digest_of("profile").str());
  EXPECT_EQ(j["layers"][3]["size"], 150);
  EXPECT_EQ(j["annotations"]["org.pagerfs.image.name"], "demo-1.0");
}

TEST(RegistryArtifact, RoundTrips) {
  for (bool config : {true, false}) {
    for (bool profile : {true, false}) {
      auto parsed = parse_text(remote::encode_artifact(sample(config, profile)));
      ASSERT_TRUE(parsed) << parsed.error().message();
      EXPECT_EQ(parsed.value(), sample(config, profile));
    }
  }
  // An artifact pushed before profiles travelled (no profile layer) parses
  // as one without a profile; the profile layer may come anywhere.
  Json j = sample_json();
  j["layers"].erase(3);
  auto old = parse_text(j.dump());
  ASSERT_TRUE(old) << old.error().message();
  EXPECT_FALSE(old.value().profile);
  j = sample_json();
  std::swap(j["layers"][0], j["layers"][3]);
  auto moved = parse_text(j.dump());
  ASSERT_TRUE(moved) << moved.error().message();
  EXPECT_EQ(moved.value(), sample());
}

TEST(RegistryArtifact, RefusesEveryMalformedManifest) {
  const std::string hex = digest_of("x").hex();
  std::vector<std::pair<std::string, std::function<void(Json&)>>> edits = {
      {"schema 1", [](Json& j) { j["schemaVersion"] = 1; }},
      {"schema string", [](Json& j) { j["schemaVersion"] = "2"; }},
      {"docker media type", [](Json& j) { j["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json"; }},
      {"not pagerfs", [](Json& j) { j["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json"; }},
      {"no config", [](Json& j) { j.erase("config"); }},
      {"config array", [](Json& j) { j["config"] = Json::array(); }},
      {"upper-case digest", [&](Json& j) { j["config"]["digest"] = "sha256:" + digest_of("x").hex().substr(0, 63) + "A"; }},
      {"sha512", [&](Json& j) { j["config"]["digest"] = "sha512:" + hex; }},
      {"bare hex", [&](Json& j) { j["config"]["digest"] = hex; }},
      {"path digest", [](Json& j) { j["layers"][0]["digest"] = "sha256:../../../../etc/passwd"; }},
      {"negative size", [](Json& j) { j["layers"][0]["size"] = -1; }},
      {"float size", [](Json& j) { j["layers"][0]["size"] = 1.5; }},
      {"huge size", [](Json& j) { j["layers"][0]["size"] = uint64_t{1} << 62; }},
      {"huge manifest", [](Json& j) { j["config"]["size"] = uint64_t{1} << 40; }},
      {"no layers", [](Json& j) { j.erase("layers"); }},
      {"layers object", [](Json& j) { j["layers"] = Json::object(); }},
      {"layer not object", [](Json& j) { j["layers"][0] = "x"; }},
      {"unknown layer type", [](Json& j) { j["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar"; }},
      {"no content digest", [](Json& j) { j["layers"][0].erase("annotations"); }},
      {"bad content digest", [](Json& j) { j["layers"][0]["annotations"]["org.pagerfs.blob.digest"] = "../x"; }},
      {"annotation not string", [](Json& j) { j["layers"][0]["annotations"]["org.pagerfs.blob.digest"] = 5; }},
      {"blob twice", [](Json& j) { j["layers"][1]["annotations"] = j["layers"][0]["annotations"]; }},
      {"config twice", [](Json& j) { j["layers"].push_back(j["layers"][2]); }},
      {"config unmarked", [](Json& j) { j["layers"][2].erase("annotations"); }},
      {"profile twice", [](Json& j) { j["layers"].push_back(j["layers"][3]); }},
      {"profile too large", [](Json& j) { j["layers"][3]["size"] = (32u << 20) + 1; }},
      {"profile bad digest", [](Json& j) { j["layers"][3]["digest"] = "sha256:../../profile"; }},
      {"profile size missing", [](Json& j) { j["layers"][3].erase("size"); }},
      {"no name", [](Json& j) { j.erase("annotations"); }},
      {"name not a tag", [](Json& j) { j["annotations"]["org.pagerfs.image.name"] = "../evil"; }},
      {"name empty", [](Json& j) { j["annotations"]["org.pagerfs.image.name"] = ""; }},
  };
  for (const auto& [what, edit] : edits) {
    Json j = sample_json();
    edit(j);
    auto parsed = parse_text(j.dump());
    ASSERT_FALSE(parsed) << what;
    EXPECT_EQ(parsed.error().code(), errc::corrupt_blob) << what;
    EXPECT_EQ(parsed.error().message().find('\n'), std::string::npos) << what;
  }
}

TEST(RegistryArtifact, RefusesWhatIsNotAManifestAtAll) {
  for (const std::string& bad : {std::string(), std::string("null"), std::string("[]"), std::string("{"),
                                 std::string("\"x\""), std::string(100000, '['), std::string(100000, '{'),
                                 std::string("{\"schemaVersion\":2}\xff")}) {
    EXPECT_FALSE(parse_text(bad)) << bad.substr(0, 20);
  }
  Json j = sample_json();
  j["annotations"]["padding"] = std::string(5 << 20, 'x');
  EXPECT_FALSE(parse_text(j.dump())) << "larger than 4 MiB";
}

TEST(RegistryTags, FollowTheDistributionSpec) {
  for (const char* good : {"a", "latest", "v1.2.3", "_x", "A-b_c.d", "9"}) EXPECT_TRUE(remote::is_valid_tag(good)) << good;
  for (const char* bad : {"", ".x", "-x", "a/b", "a:b", "../x", "a b", "é"}) EXPECT_FALSE(remote::is_valid_tag(bad)) << bad;
  EXPECT_TRUE(remote::is_valid_tag(std::string(128, 'a')));
  EXPECT_FALSE(remote::is_valid_tag(std::string(129, 'a')));
}

TEST(RegistryReferences, SplitNameAndDigest) {
  const std::string d = digest_of("m").str();
  auto plain = remote::parse_image_reference("demo");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain.value().name, "demo");
  EXPECT_FALSE(plain.value().digest);
  auto pinned = remote::parse_image_reference("demo@" + d);
  ASSERT_TRUE(pinned);
  EXPECT_EQ(pinned.value().digest->str(), d);
  // One parser for every reference: a store's image names (a registry
  // wants a tag, checked where one is needed), canonical digests only.
  EXPECT_TRUE(remote::parse_image_reference("-x@" + d));
  EXPECT_FALSE(remote::is_valid_tag("-x"));
  for (const std::string& bad :
       std::vector<std::string>{"demo@", "demo@sha256:abc", "@" + d, "../demo", "demo@" + d + "x", ".demo",
                                "demo@sha256:" + d.substr(7, 63) + "A", "demo@" + d.substr(7), "a/b@" + d}) {
    EXPECT_FALSE(remote::parse_image_reference(bad)) << bad;
  }
}

TEST(RegistryLocations, ParseAndChooseTheScheme) {
  auto local = remote::RegistryLocation::parse("oci://127.0.0.1:5000/team/images");
  ASSERT_TRUE(local) << local.error().message();
  EXPECT_EQ(local.value().base_url, "http://127.0.0.1:5000");
  EXPECT_EQ(local.value().repository, "team/images");
  EXPECT_EQ(local.value().str(), "oci://127.0.0.1:5000/team/images");
  auto remote_host = remote::RegistryLocation::parse("oci://registry.example.com/x");
  ASSERT_TRUE(remote_host);
  EXPECT_EQ(remote_host.value().base_url, "https://registry.example.com");
  EXPECT_EQ(remote::RegistryLocation::parse("oci://registry.example.com/x", true).value().base_url,
            "http://registry.example.com");
  for (const char* bad : {"http://h/x", "oci://h", "oci://h/", "oci:///x", "oci://h/../x", "oci://h/X", "oci://h/a//b",
                          "oci://u:p@h/x", "oci://h:99999/x", "oci://h:/x", "oci://h/x/", "oci://h/x?y"}) {
    EXPECT_FALSE(remote::RegistryLocation::parse(bad)) << bad;
  }
}

TEST(WwwAuthenticate, ParsesBasicAndBearerChallenges) {
  auto bearer = remote::parse_www_authenticate(
      R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push")");
  ASSERT_TRUE(bearer);
  EXPECT_EQ(bearer->scheme, "bearer");
  EXPECT_EQ(bearer->params["realm"], "https://auth.example/token");
  EXPECT_EQ(bearer->params["service"], "registry.example");
  EXPECT_EQ(bearer->params["scope"], "repository:a/b:pull,push");
  auto basic = remote::parse_www_authenticate("Basic realm=\"Registry Realm\"");
  ASSERT_TRUE(basic);
  EXPECT_EQ(basic->scheme, "basic");
  EXPECT_EQ(basic->params["realm"], "Registry Realm");
  auto escaped = remote::parse_www_authenticate(R"(Bearer realm="a\"b", error=invalid_token)");
  ASSERT_TRUE(escaped);
  EXPECT_EQ(escaped->params["realm"], "a\"b");
  EXPECT_EQ(escaped->params["error"], "invalid_token");
  for (const char* bad : {"", "  ", "Bearer realm=\"unterminated", "Bearer =x", "Bearer realm", "Bearer a=b c=d"}) {
    EXPECT_FALSE(remote::parse_www_authenticate(bad)) << bad;
  }
}

TEST(RegistryCredentials, FromAPrivateFileOrTheEnvironment) {
  testing::TempDir dir;
  const std::string file = dir.path() + "/auth";
  testing::write_file(file, "alice:s3:cret\n");
  ::chmod(file.c_str(), 0644);
  auto loose = remote::load_credentials(file);
  ASSERT_FALSE(loose);
  EXPECT_NE(loose.error().message().find("readable by group or others"), std::string::npos);
  EXPECT_EQ(loose.error().message().find("s3:cret"), std::string::npos);
  ::chmod(file.c_str(), 0600);
  auto good = remote::load_credentials(file);
  ASSERT_TRUE(good) << good.error().message();
  EXPECT_EQ(good.value()->user, "alice");
  EXPECT_EQ(good.value()->password, "s3:cret");
  testing::write_file(file, "no colon\n");
  ::chmod(file.c_str(), 0600);
  EXPECT_FALSE(remote::load_credentials(file));
  EXPECT_FALSE(remote::load_credentials(dir.path() + "/missing"));

  ::setenv("PAGERFS_REGISTRY_AUTH", "bob:pw", 1);
  auto env = remote::load_credentials(std::nullopt);
  ::unsetenv("PAGERFS_REGISTRY_AUTH");
  ASSERT_TRUE(env);
  EXPECT_EQ(env.value()->user, "bob");
  auto none = remote::load_credentials(std::nullopt);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none.value());
}

}  // namespace
}  // namespace pagerfs
