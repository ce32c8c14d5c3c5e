// pagerfsctl push and pull against real servers: Debian's docker-registry
// (CNCF distribution 2.8) with no authentication, htpasswd (bcrypt) and a
// token server of ours (the Bearer flow), nginx publishing a store, and a
// fault proxy of ours for a registry that sends wrong bytes. A pulled store
// must verify, equal the pushed one byte for byte, and mount; a failed pull
// must leave no image and no wrong blob.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <thread>

#include "pagerfs/store/store.h"
#include "pagerfs/util/digest.h"
#include "remote/http_client.h"
#include "remote/registry_client.h"
#include "support/blob_forgery.h"
#include "support/fault_proxy.h"
#include "support/file_reads.h"
#include "support/http_client.h"
#include "support/http_server.h"
#include "support/mount_fixture.h"
#include "support/registry_server.h"
#include "support/subprocess.h"
#include "support/test_data.h"
#include "support/token_server.h"

namespace pagerfs {
namespace {

namespace fs = std::filesystem;
using testing::FaultProxy;
using testing::NginxServer;
using testing::ProcessResult;
using testing::RegistryServer;
using testing::TempDir;
using testing::TokenServer;

std::string digest_hex(const std::string& data) {
  return Sha256::of(std::as_bytes(std::span(data.data(), data.size()))).hex();
}

ProcessResult ctl(std::vector<std::string> args) {
  args.insert(args.begin(), testing::binary_from_env("PAGERFSCTL"));
  return testing::run(args);
}

// Every regular file under `dir`, by relative path (".tmp-" leftovers included).
std::map<std::string, std::string> files_under(const std::string& dir) {
  std::map<std::string, std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = testing::read_file(e.path());
  }
  return out;
}

// The digest printed in "pushed NAME sha256:..." or "pulled NAME sha256:...".
std::string printed_digest(const std::string& out, const std::string& verb, const std::string& name) {
  std::smatch m;
  const std::regex line(verb + " " + name + " (sha256:[0-9a-f]{64})\n");
  return std::regex_search(out, m, line) ? m[1].str() : "";
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "tree/small");
    files_["big"] = testing::random_string(3 << 20, 1);
    files_["text.txt"] = std::string(200000, 'x') + "end\n";
    for (int i = 0; i < 20; ++i) files_["small/f" + std::to_string(i)] = testing::random_string(1000 + 97 * i, 10 + i);
    for (const auto& [name, data] : files_) testing::write_file(dir_ / ("tree/" + name), data);
    const auto pack = ctl({"pack", "--store", dir_ / "src", "--image", "demo", dir_ / "tree"});
    ASSERT_EQ(pack.exit_code, 0) << pack.err;
    // An image config, as `pagerfsctl import` keeps one.
    config_ = R"({"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]}})";
    auto store = Store::open(dir_ / "src");
    ASSERT_TRUE(store);
    ASSERT_TRUE(store.value().write_image_config("demo", std::as_bytes(std::span(config_.data(), config_.size()))));
  }

  // The pulled store verifies and holds exactly the pushed image's files.
  void expect_same_store(const std::string& pulled) {
    const auto verify = ctl({"verify", pulled});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    EXPECT_NE(verify.out.find("ok       image demo"), std::string::npos) << verify.out;
    const auto source = files_under(dir_ / "src"), copy = files_under(pulled);
    EXPECT_EQ(source.size(), copy.size());
    for (const auto& [path, data] : source) {
      const auto it = copy.find(path);
      ASSERT_NE(it, copy.end()) << path << " was not pulled";
      EXPECT_TRUE(it->second == data) << path << " differs";
    }
  }

  // Nothing of a failed pull: no image, no config, no temporary file, and
  // only blobs that verify.
  void expect_no_image(const std::string& store) {
    EXPECT_FALSE(fs::exists(store + "/images/demo"));
    EXPECT_FALSE(fs::exists(store + "/configs/demo"));
    for (const auto& [path, data] : files_under(store)) {
      EXPECT_EQ(path.find(".tmp-"), std::string::npos) << path << " left behind";
    }
    if (fs::exists(store + "/blobs/sha256")) {
      const auto verify = ctl({"verify", store});
      EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    }
  }

  // Pushes the image to `registry` as alice (credentials in dir_/auth);
  // the digest it printed, or "" (a failure is recorded).
  std::string push_with_credentials(const RegistryServer& registry) {
    testing::write_file(dir_ / "auth", "alice:s3cret\n");
    ::chmod((dir_ / "auth").c_str(), 0600);
    const auto push = ctl({"push", "--credentials", dir_ / "auth", dir_ / "src", registry.oci("team/demo")});
    EXPECT_EQ(push.exit_code, 0) << push.err;
    return printed_digest(push.out, "pushed", "demo");
  }

  TempDir dir_;
  std::map<std::string, std::string> files_;
  std::string config_;
};

TEST_F(RegistryTest, APushedImagePullsBackByteForByteAndMounts) {
  RegistryServer registry;
  const auto push = ctl({"push", dir_ / "src", registry.oci("team/demo"), "demo"});
  ASSERT_EQ(push.exit_code, 0) << push.err << registry.output();
  const std::string digest = printed_digest(push.out, "pushed", "demo");
  ASSERT_FALSE(digest.empty()) << push.out;

  const auto pull = ctl({"pull", registry.oci("team/demo"), "demo", dir_ / "dst"});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_EQ(printed_digest(pull.out, "pulled", "demo"), digest) << pull.out;
  EXPECT_NE(pull.err.find("trusted on first use"), std::string::npos) << pull.err;
  EXPECT_NE(pull.err.find("demo@" + digest), std::string::npos) << pull.err;
  expect_same_store(dir_ / "dst");

  // Pulled again: every blob is there already.
  const auto again = ctl({"pull", registry.oci("team/demo"), "demo@" + digest, dir_ / "dst"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("0 blob(s) downloaded"), std::string::npos) << again.err;
  EXPECT_EQ(again.err.find("trusted on first use"), std::string::npos) << again.err;

  if (!testing::fuse_available()) GTEST_SKIP() << "no /dev/fuse: the pulled image is not mounted";
  testing::MountedStore m(dir_ / "dst", dir_ / "mnt");
  for (const auto& [name, data] : files_) {
    EXPECT_TRUE(testing::read_file(m.path() + "/images/demo/" + name) == data) << name;
  }
}

TEST_F(RegistryTest, ASecondPushUploadsNothing) {
  RegistryServer registry;
  const auto first = ctl({"push", dir_ / "src", registry.oci("demo")});  // every image of the store
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.err.find(" 0 blob(s) uploaded"), std::string::npos) << first.err;
  const auto uploads = [&] {
    const std::string log = registry.output();
    size_t n = 0;
    for (size_t at = log.find("\"PUT /v2/demo/blobs/uploads/"); at != std::string::npos;
         at = log.find("\"PUT /v2/demo/blobs/uploads/", at + 1)) {
      ++n;
    }
    return n;
  };
  const size_t before = uploads();
  EXPECT_GT(before, 2u);
  const auto second = ctl({"push", dir_ / "src", registry.oci("demo"), "demo"});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.err.find(": 0 blob(s) uploaded"), std::string::npos) << second.err;
  EXPECT_EQ(uploads(), before);
  EXPECT_EQ(printed_digest(first.out, "pushed", "demo"), printed_digest(second.out, "pushed", "demo"));
}

TEST_F(RegistryTest, APinnedPullAcceptsOnlyThatImage) {
  RegistryServer registry;
  const auto push = ctl({"push", dir_ / "src", registry.oci("demo"), "demo"});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  const std::string digest = printed_digest(push.out, "pushed", "demo");
  const auto pinned = ctl({"pull", registry.oci("demo"), "demo@" + digest, dir_ / "dst"});
  ASSERT_EQ(pinned.exit_code, 0) << pinned.err;
  expect_same_store(dir_ / "dst");

  const std::string wrong = "sha256:" + digest_hex("another image");
  const auto refused = ctl({"pull", registry.oci("demo"), "demo@" + wrong, dir_ / "other"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
  expect_no_image(dir_ / "other");
}

TEST_F(RegistryTest, BasicAuthenticationWithAndWithoutCredentials) {
  const auto hash = testing::run({"htpasswd", "-Bbn", "alice", "s3cret"});
  ASSERT_EQ(hash.exit_code, 0) << hash.err;
  testing::write_file(dir_ / "htpasswd", hash.out);
  RegistryServer registry({.auth_yaml = "  htpasswd:\n    realm: pagerfs-test\n    path: " + dir_ / "htpasswd" + "\n"});
  const std::string host = "127.0.0.1:" + std::to_string(registry.port());

  const auto anonymous = ctl({"push", dir_ / "src", registry.oci("demo"), "demo"});
  EXPECT_EQ(anonymous.exit_code, 1);
  EXPECT_NE(anonymous.err.find("registry " + host + " requires credentials"), std::string::npos) << anonymous.err;
  EXPECT_EQ(std::count(anonymous.err.begin(), anonymous.err.end(), '\n'), 1) << anonymous.err;

  testing::write_file(dir_ / "wrong", "alice:guess\n");
  ::chmod((dir_ / "wrong").c_str(), 0600);
  const auto wrong = ctl({"push", "--credentials", dir_ / "wrong", dir_ / "src", registry.oci("demo")});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("refused the credentials"), std::string::npos) << wrong.err;
  EXPECT_EQ(wrong.err.find("guess"), std::string::npos) << wrong.err;

  testing::write_file(dir_ / "auth", "alice:s3cret\n");
  ::chmod((dir_ / "auth").c_str(), 0644);
  const auto loose = ctl({"push", "--credentials", dir_ / "auth", dir_ / "src", registry.oci("demo")});
  EXPECT_EQ(loose.exit_code, 2);
  EXPECT_NE(loose.err.find("readable by group or others"), std::string::npos) << loose.err;
  ::chmod((dir_ / "auth").c_str(), 0600);
  const auto push = ctl({"push", "--credentials", dir_ / "auth", dir_ / "src", registry.oci("demo")});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  EXPECT_EQ(push.err.find("s3cret"), std::string::npos);

  const auto denied = ctl({"pull", registry.oci("demo"), "demo", dir_ / "dst"});
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_NE(denied.err.find("registry " + host + " requires credentials"), std::string::npos) << denied.err;
  expect_no_image(dir_ / "dst");
  const ProcessResult pull = testing::run({"env", "PAGERFS_REGISTRY_AUTH=alice:s3cret",
                                           testing::binary_from_env("PAGERFSCTL"), "pull", registry.oci("demo"),
                                           "demo", dir_ / "dst"});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  expect_same_store(dir_ / "dst");
}

TEST_F(RegistryTest, BearerTokensFromATokenServer) {
  TokenServer tokens({.user = "alice:s3cret"});
  RegistryServer registry({.auth_yaml = tokens.registry_auth_yaml()});
  testing::write_file(dir_ / "auth", "alice:s3cret\n");
  ::chmod((dir_ / "auth").c_str(), 0600);

  const auto anonymous = ctl({"push", dir_ / "src", registry.oci("team/demo")});
  EXPECT_EQ(anonymous.exit_code, 1);
  EXPECT_NE(anonymous.err.find("refused anonymous access"), std::string::npos) << anonymous.err;

  const auto push = ctl({"push", "--credentials", dir_ / "auth", dir_ / "src", registry.oci("team/demo")});
  ASSERT_EQ(push.exit_code, 0) << push.err << tokens.output() << registry.output();
  const std::string digest = printed_digest(push.out, "pushed", "demo");
  // One token per scope and run, not one per request.
  const std::string log = tokens.output();
  const auto token_requests = std::count_if(log.begin(), log.end(), [](char c) { return c == '\n'; });
  EXPECT_LE(token_requests, 4) << log;

  const auto pull = ctl({"pull", "--credentials", dir_ / "auth", registry.oci("team/demo"), "demo@" + digest,
                         dir_ / "dst"});
  ASSERT_EQ(pull.exit_code, 0) << pull.err << tokens.output();
  expect_same_store(dir_ / "dst");
}

// The mount's stats (pagerfsctl stats --json), or null.
nlohmann::json stats(const std::string& mnt) {
  const auto r = ctl({"stats", "--json", mnt});
  if (r.exit_code != 0) return {};
  return nlohmann::json::parse(r.out, nullptr, false);
}

// Waits until the mount's prefetcher has loaded a profile and has nothing
// queued (or 20 s passed); its stats then.
nlohmann::json wait_for_prefetch(const std::string& mnt) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  for (;;) {
    const nlohmann::json p = stats(mnt)["prefetch"];
    if (Clock::now() > deadline || (p["images"].get<uint64_t>() > 0 && p["ranges_queued"].get<uint64_t>() == 0 &&
                                    p["ranges_done"].get<uint64_t>() + p["ranges_failed"].get<uint64_t>() > 0)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the last ranges may be in flight
      return stats(mnt)["prefetch"];
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Every file of the mounted image equals its source, by read() and mmap
// (the same bytes as read_file's).
void expect_mounted_image(const testing::MountedStore& m, const std::map<std::string, std::string>& files) {
  for (const auto& [name, data] : files) {
    EXPECT_TRUE(testing::read_file(m.path() + "/images/demo/" + name) == data) << name << "\n" << m.log();
  }
}

TEST_F(RegistryTest, AHostMountsAnImageStraightFromTheRegistry) {
  if (!testing::fuse_available()) GTEST_SKIP() << "no /dev/fuse";
  TokenServer tokens({.user = "alice:s3cret"});
  RegistryServer registry({.auth_yaml = tokens.registry_auth_yaml()});
  const std::string digest = push_with_credentials(registry);
  ASSERT_FALSE(digest.empty());
  {
    testing::MountedStore m(registry.oci("team/demo"), dir_ / "mnt",
                            {"image=demo@" + digest, "registry_credentials=" + dir_ / "auth", "cache=" + dir_ / "cache"});
    expect_mounted_image(m, files_);
    // The blob view: blobs the image names, found by their content digest.
    const std::string text_hex = Sha256::of(std::as_bytes(std::span(files_["text.txt"].data(), files_["text.txt"].size()))).hex();
    EXPECT_TRUE(testing::read_file(m.blob(text_hex)) == files_["text.txt"]);
    EXPECT_FALSE(fs::exists(m.blob(std::string(64, 'e'))));
  }
  // A second mount: the manifests from the mount's cache (checked again),
  // the blobs from the cache disk.
  testing::MountedStore again(registry.oci("team/demo"), dir_ / "mnt",
                              {"image=demo@" + digest, "registry_credentials=" + dir_ / "auth", "cache=" + dir_ / "cache"});
  expect_mounted_image(again, files_);
}

// Records the image's profile into the source store as `pagerfsctl record`
// does on a publishing host (a run that reads text.txt and small/f3); the
// SHA-256 of the profile file, or "" (a failure is recorded).
std::string record_profile(const std::string& store_dir, const std::string& mnt) {
  testing::MountedStore m(store_dir, mnt);
  const std::string files = m.path() + "/images/demo/text.txt " + m.path() + "/images/demo/small/f3";
  const auto r = ctl({"record", m.path(), "demo", "--", "sh", "-c", "cat " + files + " >/dev/null"});
  EXPECT_EQ(r.exit_code, 0) << r.err << m.log();
  if (!fs::exists(store_dir + "/profiles/demo")) return "";
  return digest_hex(testing::read_file(store_dir + "/profiles/demo"));
}

// The profile travels in the artifact: pushed as a layer of its own, pulled
// back byte for byte, replayed by a mount straight from the registry, and
// kept in the mount's cache with the manifests, so a second mount works
// with the registry down (what the cache disk holds reads; the rest fails
// with EIO, within the remote timeout).
TEST_F(RegistryTest, AProfileTravelsInTheArtifactAndARegistryMountWorksOffline) {
  if (!testing::fuse_available()) GTEST_SKIP() << "no /dev/fuse: no profile is recorded";
  const std::string profile_hex = record_profile(dir_ / "src", dir_ / "mnt");
  ASSERT_FALSE(profile_hex.empty());
  RegistryServer registry;
  const auto push = ctl({"push", dir_ / "src", registry.oci("team/demo"), "demo"});
  ASSERT_EQ(push.exit_code, 0) << push.err << registry.output();
  const std::string digest = printed_digest(push.out, "pushed", "demo");
  ASSERT_FALSE(digest.empty()) << push.out;
  const testing::HttpResponse oci = testing::http_fetch(
      registry.url() + "/v2/team/demo/manifests/demo", {.headers = {"Accept: application/vnd.oci.image.manifest.v1+json"}});
  ASSERT_EQ(oci.status, 200) << oci.describe();
  const nlohmann::json layers = nlohmann::json::parse(oci.body)["layers"];
  ASSERT_FALSE(layers.empty());
  EXPECT_EQ(layers.back()["mediaType"], "application/vnd.pagerfs.profile.v1") << layers.dump();
  EXPECT_EQ(layers.back()["digest"], "sha256:" + profile_hex) << layers.dump();

  // Pulled: the store equals the source, its profile included.
  const auto pull = ctl({"pull", registry.oci("team/demo"), "demo@" + digest, dir_ / "dst"});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_EQ(pull.err.find("warning"), std::string::npos) << pull.err;
  ASSERT_TRUE(fs::exists(dir_ / "dst/profiles/demo"));
  expect_same_store(dir_ / "dst");

  const std::string text_hex = digest_hex(files_["text.txt"]);
  {
    // Replayed when the image is first looked up; every byte right.
    testing::MountedStore m(registry.oci("team/demo"), dir_ / "mnt", {"image=demo@" + digest, "cache=" + dir_ / "c1"});
    struct stat st {};
    ASSERT_EQ(::stat((m.path() + "/images/demo").c_str(), &st), 0);
    const nlohmann::json p = wait_for_prefetch(m.path());
    EXPECT_EQ(p["mode"], "profile") << p.dump();
    EXPECT_EQ(p["images"].get<uint64_t>(), 1u) << p.dump() << m.log();
    EXPECT_GE(p["ranges_done"].get<uint64_t>(), 2u) << p.dump() << m.log();
    EXPECT_EQ(p["ranges_failed"].get<uint64_t>(), 0u) << p.dump();
    expect_mounted_image(m, files_);
  }
  // What the mount verified is in its cache by digest: the OCI manifest,
  // the pagerfs manifest, the config and the profile.
  for (const std::string& hex : {digest.substr(7), digest_hex(testing::read_file(dir_ / "src/images/demo")),
                                 digest_hex(config_), profile_hex}) {
    EXPECT_TRUE(fs::exists(dir_ / ("c1/manifests/sha256/" + hex))) << hex;
  }
  {
    // A mount that reads text.txt only (the profile adds small/f3).
    testing::MountedStore m(registry.oci("team/demo"), dir_ / "mnt", {"image=demo@" + digest, "cache=" + dir_ / "c2"});
    EXPECT_TRUE(testing::read_file(m.path() + "/images/demo/text.txt") == files_["text.txt"]) << m.log();
    wait_for_prefetch(m.path());
  }

  registry.stop();
  {
    // Everything was read through c1: the whole image, offline.
    testing::MountedStore m(registry.oci("team/demo"), dir_ / "mnt",
                            {"image=demo@" + digest, "cache=" + dir_ / "c1", "remote_timeout=1"});
    expect_mounted_image(m, files_);
    EXPECT_TRUE(testing::read_file(m.blob(text_hex)) == files_["text.txt"]);
  }
  // c2 holds text.txt and what the profile named; big was never read.
  testing::MountedStore m(registry.oci("team/demo"), dir_ / "mnt",
                          {"image=demo@" + digest, "cache=" + dir_ / "c2", "remote_timeout=1"});
  EXPECT_EQ(testing::read_all(m.path() + "/images/demo/text.txt").data, files_["text.txt"]) << m.log();
  EXPECT_EQ(testing::read_all(m.path() + "/images/demo/small/f3").data, files_["small/f3"]) << m.log();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(testing::read_all(m.path() + "/images/demo/big").error, EIO) << m.log();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10)) << "a read waited beyond the timeout";
  // An image the cache does not hold needs the registry: refused at mount.
  const auto other = testing::run({testing::binary_from_env("PAGERFS"), registry.oci("team/demo"), dir_ / "mnt2",
                                   "-f", "-o", "image=demo@sha256:" + digest_hex("x"), "-o", "cache=" + dir_ / "c2",
                                   "-o", "remote_timeout=1"});
  EXPECT_EQ(other.exit_code, 1) << other.err;
  EXPECT_EQ(std::count(other.err.begin(), other.err.end(), '\n'), 1) << other.err;
}

// A registry that serves a profile whose bytes do not hash to the digest
// the artifact names: the profile is a hint, so the mount works without it
// (one line in its log) and a pull leaves it out with a warning.
TEST_F(RegistryTest, AProfileThatDoesNotMatchItsDigestIsIgnored) {
  if (!testing::fuse_available()) GTEST_SKIP() << "no /dev/fuse: no profile is recorded";
  const std::string profile_hex = record_profile(dir_ / "src", dir_ / "mnt");
  ASSERT_FALSE(profile_hex.empty());
  RegistryServer registry;
  const auto push = ctl({"push", dir_ / "src", registry.oci("demo"), "demo"});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  const std::string digest = printed_digest(push.out, "pushed", "demo");
  FaultProxy proxy(registry.url());
  const std::string through = "oci://127.0.0.1:" + proxy.url().substr(proxy.url().rfind(':') + 1) + "/demo";
  proxy.set_rules({{.path = "/blobs/sha256:" + profile_hex, .action = "corrupt", .count = -1, .method = "GET"}});

  const auto pull = ctl({"pull", through, "demo@" + digest, dir_ / "dst"});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_NE(pull.err.find("prefetch profile left out"), std::string::npos) << pull.err;
  EXPECT_FALSE(fs::exists(dir_ / "dst/profiles/demo"));
  EXPECT_EQ(ctl({"verify", dir_ / "dst"}).exit_code, 0);

  testing::MountedStore m(through, dir_ / "mnt", {"image=demo@" + digest, "cache=" + dir_ / "cache"});
  expect_mounted_image(m, files_);
  EXPECT_EQ(stats(m.path())["prefetch"]["images"].get<uint64_t>(), 0u);
  const std::string log = m.log();
  size_t lines = 0;
  for (size_t at = log.find("prefetch profile"); at != std::string::npos; at = log.find("prefetch profile", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 1u) << log;
  EXPECT_NE(log.find("do not hash to it"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(dir_ / ("cache/manifests/sha256/" + profile_hex))) << "a wrong profile was kept";
}

TEST_F(RegistryTest, ARegistryMountRefusesWhatIsNotPinnedOrAllowed) {
  TokenServer tokens({.user = "alice:s3cret"});
  RegistryServer registry({.auth_yaml = tokens.registry_auth_yaml()});
  const std::string digest = push_with_credentials(registry);
  ASSERT_FALSE(digest.empty());
  const auto mount = [&](const std::vector<std::string>& options) {
    std::vector<std::string> argv = {testing::binary_from_env("PAGERFS"), registry.oci("team/demo"), dir_.path(), "-f"};
    for (const std::string& o : options) argv.insert(argv.end(), {"-o", o});
    return testing::run(argv);
  };
  for (const auto& [options, needle] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"image=demo@sha256:" + std::string(64, '0'), "registry_credentials=" + dir_ / "auth"}, "demo"},
           {{"image=demo@" + digest}, "anonymous"},
           {{"image=demo@" + digest, "remote=http://127.0.0.1:1"}, "no mirrors"},
           {{"image=demo@" + digest, "registry_credentials=" + dir_ / "absent"}, "absent"}}) {
    const auto r = mount(options);
    EXPECT_EQ(r.exit_code, 1) << options.front();
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("s3cret"), std::string::npos) << r.err;
  }
}

// What a reader of oci:// remotes uses (the daemon, later): the verified
// image, where each blob is, and a Range-GET of a blob with the token the
// registry wants.
TEST_F(RegistryTest, TheReaderInterfaceGivesTheVerifiedImageAndRangeReadsOfBlobs) {
  TokenServer tokens({.user = "alice:s3cret"});
  RegistryServer registry({.auth_yaml = tokens.registry_auth_yaml()});
  const std::string digest = push_with_credentials(registry);
  ASSERT_FALSE(digest.empty());

  auto location = remote::RegistryLocation::parse(registry.oci("team/demo"));
  ASSERT_TRUE(location);
  remote::RegistryClient client(location.value(), remote::RegistryCredentials{"alice", "s3cret"});
  auto image = remote::fetch_registry_image(client, "demo@" + digest);
  ASSERT_TRUE(image) << image.error().message();
  EXPECT_EQ(image.value().oci_digest.str(), digest);
  const std::string manifest(reinterpret_cast<const char*>(image.value().manifest.data()), image.value().manifest.size());
  EXPECT_TRUE(manifest == testing::read_file(dir_ / "src/images/demo"));
  ASSERT_TRUE(image.value().config);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(image.value().config->data()), image.value().config->size()),
            config_);
  const auto files = image.value().blob_files();
  EXPECT_EQ(files.size(), files_under(dir_ / "src/blobs").size());

  remote::HttpClient http;
  for (const auto& [content, file] : files) {
    const std::string bytes = testing::read_file(dir_ / ("src/blobs/sha256/" + content.hex()));
    ASSERT_EQ(bytes.size(), file.size);
    auto access = client.blob_access(file.digest);
    ASSERT_TRUE(access) << access.error().message();
    remote::HttpRequest get{access.value().url};
    get.headers = access.value().headers;
    get.range = std::make_pair(uint64_t{10}, uint64_t{99});
    std::string got;
    auto response = http.perform(get, [&](const remote::HttpResponse&, std::span<const std::byte> data) {
      got.append(reinterpret_cast<const char*>(data.data()), data.size());
      return true;
    });
    ASSERT_TRUE(response) << response.error().message();
    EXPECT_EQ(response.value().status, 206);
    EXPECT_EQ(got, bytes.substr(10, 90));
  }

  // A pinned digest the registry does not have, and a tag of no image.
  EXPECT_FALSE(remote::fetch_registry_image(client, "demo@sha256:" + digest_hex("x")));
  EXPECT_FALSE(remote::fetch_registry_image(client, "other"));
}

TEST_F(RegistryTest, AnExpiredTokenIsRenewed) {
  TokenServer tokens({.user = "alice:s3cret", .expires_s = 3});
  RegistryServer registry({.auth_yaml = tokens.registry_auth_yaml()});
  auto location = remote::RegistryLocation::parse(registry.oci("demo"));
  ASSERT_TRUE(location);
  remote::RegistryClient client(location.value(), remote::RegistryCredentials{"alice", "s3cret"});
  const std::string data = "a blob of bytes";
  const Digest digest = Sha256::of(std::as_bytes(std::span(data.data(), data.size())));
  ASSERT_TRUE(client.upload_blob(digest, std::as_bytes(std::span(data.data(), data.size()))));
  auto requests = [&] {
    const std::string log = tokens.output();
    return std::count(log.begin(), log.end(), '\n');
  };
  const auto before = requests();
  auto size = client.blob_size(digest);
  ASSERT_TRUE(size) << size.error().message();
  EXPECT_EQ(size.value(), data.size());
  EXPECT_LE(requests(), before + 1) << "the token was not kept";
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  size = client.blob_size(digest);
  ASSERT_TRUE(size) << size.error().message() << tokens.output();
  EXPECT_EQ(size.value(), data.size());
  EXPECT_GT(requests(), before) << "an expired token was used";
}

TEST_F(RegistryTest, ARegistryThatSendsWrongBytesLeavesNothing) {
  RegistryServer registry;
  ASSERT_EQ(ctl({"push", dir_ / "src", registry.oci("demo")}).exit_code, 0);
  FaultProxy proxy(registry.url());
  const std::string through = "oci://127.0.0.1:" + proxy.url().substr(proxy.url().rfind(':') + 1) + "/demo";
  // Every blob answer damaged (the pagerfs manifest's included).
  proxy.set_rules({{.path = "/blobs/sha256:", .action = "corrupt", .count = -1, .method = "GET"}});
  const auto pull = ctl({"pull", through, "demo", dir_ / "dst"});
  EXPECT_EQ(pull.exit_code, 1) << pull.out;
  EXPECT_EQ(std::count(pull.err.begin(), pull.err.end(), '\n'), 1) << pull.err;
  EXPECT_NE(pull.err.find("do not hash to it"), std::string::npos) << pull.err;
  expect_no_image(dir_ / "dst");
  // Only the second blob GET damaged onwards: the manifest arrives, a blob does not.
  proxy.set_rules({{.path = "/blobs/sha256:", .action = "truncate:100", .count = -1, .method = "GET"}});
  const auto cut = ctl({"pull", through, "demo", dir_ / "dst"});
  EXPECT_EQ(cut.exit_code, 1);
  expect_no_image(dir_ / "dst");
}

// Manifests someone else tagged in the registry (its blobs all there, so
// the registry takes them): a path for a digest, a layer list that is not
// the image's. Refused; nothing written.
TEST_F(RegistryTest, AHostileManifestInTheRegistryIsRefused) {
  RegistryServer registry;
  const auto push = ctl({"push", dir_ / "src", registry.oci("demo"), "demo"});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  const std::string url = registry.url() + "/v2/demo/manifests/demo";
  const testing::HttpResponse got =
      testing::http_fetch(url, {.headers = {"Accept: application/vnd.oci.image.manifest.v1+json"}});
  ASSERT_EQ(got.status, 200) << got.describe();
  const nlohmann::json good = nlohmann::json::parse(got.body);
  auto put = [&](const nlohmann::json& manifest) {
    const testing::HttpResponse r = testing::http_fetch(
        url, {.method = "PUT", .headers = {"Content-Type: application/vnd.oci.image.manifest.v1+json"},
              .body = manifest.dump()});
    ASSERT_EQ(r.status, 201) << r.describe() << r.body;
  };
  nlohmann::json escaping = good;
  escaping["layers"][0]["annotations"]["org.pagerfs.blob.digest"] = "sha256:../../../../images/demo";
  put(escaping);
  const auto refused = ctl({"pull", registry.oci("demo"), "demo", dir_ / "dst"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("registry manifest: "), std::string::npos) << refused.err;
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
  expect_no_image(dir_ / "dst");

  nlohmann::json missing = good;
  missing["layers"].erase(0);
  put(missing);
  const auto short_list = ctl({"pull", registry.oci("demo"), "demo", dir_ / "dst"});
  EXPECT_EQ(short_list.exit_code, 1);
  EXPECT_NE(short_list.err.find("do not list exactly the blobs the image names"), std::string::npos) << short_list.err;
  expect_no_image(dir_ / "dst");
}

TEST_F(RegistryTest, ADamagedLocalBlobIsNeverPushed) {
  RegistryServer registry;
  const std::string big = dir_ / ("src/blobs/sha256/" + digest_hex(files_["big"]));
  std::string bytes = testing::read_file(big);
  bytes[bytes.size() / 2] ^= 0x55;
  fs::permissions(big, fs::perms::owner_read | fs::perms::owner_write);
  testing::write_file(big, bytes);
  const auto push = ctl({"push", dir_ / "src", registry.oci("demo"), "demo"});
  EXPECT_EQ(push.exit_code, 1);
  EXPECT_NE(push.err.find("refusing to push blob sha256:" + digest_hex(files_["big"])), std::string::npos) << push.err;
  EXPECT_EQ(std::count(push.err.begin(), push.err.end(), '\n'), 1) << push.err;
  EXPECT_FALSE(fs::exists(registry.storage() + "/docker/registry/v2/repositories/demo/_manifests/tags/demo"));
}

TEST_F(RegistryTest, APublishedStorePullsOverHttpAndAForgedBlobLeavesNothing) {
  fs::copy(dir_ / "src", dir_ / "pub", fs::copy_options::recursive);
  NginxServer nginx(dir_ / "pub");
  const auto pull = ctl({"pull", nginx.url(), "demo", dir_ / "dst"});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  const std::string digest = printed_digest(pull.out, "pulled", "demo");
  EXPECT_EQ(digest, "sha256:" + digest_hex(testing::read_file(dir_ / "src/images/demo")));
  expect_same_store(dir_ / "dst");
  EXPECT_TRUE(ctl({"pull", nginx.url(), "demo@" + digest, dir_ / "dst2"}).exit_code == 0);
  const auto wrong = ctl({"pull", nginx.url(), "demo@sha256:" + digest_hex("x"), dir_ / "dst3"});
  EXPECT_EQ(wrong.exit_code, 1);
  expect_no_image(dir_ / "dst3");

  // A server that sends far more than the blob can be: cut off, not stored.
  const std::string big_blob = dir_ / ("pub/blobs/sha256/" + digest_hex(files_["big"]));
  const std::string big_bytes = testing::read_file(big_blob);
  fs::permissions(big_blob, fs::perms::owner_read | fs::perms::owner_write);
  fs::resize_file(big_blob, 64 << 20);
  const auto huge = ctl({"pull", nginx.url(), "demo", dir_ / "dst5"});
  EXPECT_EQ(huge.exit_code, 1);
  EXPECT_NE(huge.err.find("larger than the blob may be"), std::string::npos) << huge.err;
  expect_no_image(dir_ / "dst5");
  testing::write_file(big_blob, big_bytes);

  // big's blob replaced by a valid blob of other content whose header claims
  // big's digest: every checksum right; only the content digest tells.
  const std::string other = testing::random_string(files_["big"].size(), 99);
  testing::write_file(dir_ / "other", other);
  ASSERT_EQ(ctl({"pack", "--store", dir_ / "scratch", dir_ / "other"}).exit_code, 0);
  const std::string forged_text = testing::read_file(dir_ / ("scratch/blobs/sha256/" + digest_hex(other)));
  std::vector<std::byte> forged(reinterpret_cast<const std::byte*>(forged_text.data()),
                                reinterpret_cast<const std::byte*>(forged_text.data()) + forged_text.size());
  const std::string big_hex = digest_hex(files_["big"]);
  testing::forge_header_digest(forged, Digest::parse(big_hex).value());
  const std::string target = dir_ / ("pub/blobs/sha256/" + big_hex);
  fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write);
  testing::write_file(target, std::string(reinterpret_cast<const char*>(forged.data()), forged.size()));
  const auto refused = ctl({"pull", nginx.url(), "demo", dir_ / "dst4"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
  EXPECT_NE(refused.err.find(big_hex), std::string::npos) << refused.err;
  EXPECT_FALSE(fs::exists(dir_ / ("dst4/blobs/sha256/" + big_hex)));
  expect_no_image(dir_ / "dst4");
}

TEST_F(RegistryTest, BadArgumentsAreOneLineErrors) {
  RegistryServer registry;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"push", dir_ / "src", "http://127.0.0.1/x"},
           {"push", dir_ / "src", "oci://127.0.0.1:1/UPPER"},
           {"push", dir_ / "src", registry.oci("demo"), "no image"},
           {"pull", registry.oci("demo"), "../demo", dir_ / "dst"},
           {"pull", registry.oci("demo"), "demo@sha256:abc", dir_ / "dst"},
           {"pull", "ftp://x/y", "demo", dir_ / "dst"}}) {
    const auto r = ctl(args);
    EXPECT_EQ(r.exit_code, 2) << args[2];
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(r.err.starts_with("pagerfsctl: error: ")) << r.err;
  }
  const auto missing = ctl({"pull", registry.oci("demo"), "demo", dir_ / "dst"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("not found"), std::string::npos) << missing.err;
  expect_no_image(dir_ / "dst");
}

}  // namespace
}  // namespace pagerfs
