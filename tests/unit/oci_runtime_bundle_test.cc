// The runtime config `pagerfsctl bundle` writes, from image configs and a
// rootfs made here: the process the OCI conversion rules give, users and
// groups resolved in the image (and never outside it), the directories a
// read-only root needs, malformed configs refused in one line.
#include "pagerfs/oci/runtime_bundle.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "support/subprocess.h"

namespace pagerfs::oci {
namespace {

using Json = nlohmann::json;
using testing::write_file;

std::vector<std::byte> bytes(const std::string& text) {
  const auto* p = reinterpret_cast<const std::byte*>(text.data());
  return {p, p + text.size()};
}

class RuntimeBundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* dir : {"proc", "dev", "sys", "etc", "work"})
      std::filesystem::create_directories(root(dir));
    write_file(root("etc/passwd"),
               "root:x:0:0:root:/root:/bin/sh\n"
               "# a comment line\n"
               "app:x:1234:1235:App:/home/app:/bin/sh\n"
               "short:x:9\n");
    write_file(root("etc/group"),
               "root:x:0:\napp:x:1235:\nextra:x:777:root,app\nmore:x:778:app\nnone:x:779:\n");
  }
  std::string root(const std::string& rel = "") const {
    return rel.empty() ? dir_ / "root" : dir_ / ("root/" + rel);
  }

  Result<Json> config_of(const std::string& image_config, BundleOptions options = {}) {
    if (options.rootfs.empty()) options.rootfs = root();
    return runtime_config(bytes(image_config), options);
  }
  Result<ProcessUser> user(const std::string& spec) {
    const int fd = ::open(root().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    auto resolved = resolve_user(fd, spec);
    ::close(fd);
    return resolved;
  }

  testing::TempDir dir_;
};

constexpr const char* kImageConfig = R"({
  "architecture": "amd64", "os": "linux",
  "config": {
    "User": "app", "Env": ["GREETING=hi"], "Entrypoint": ["/bin/sh", "-e"], "Cmd": ["-c", "echo $GREETING"],
    "WorkingDir": "/work", "Labels": {"org.example.role": "test"}, "StopSignal": "SIGINT"
  },
  "rootfs": {"type": "layers", "diff_ids": []}
})";

TEST_F(RuntimeBundleTest, TheProcessIsTheImageConfigs) {
  auto config = config_of(kImageConfig);
  ASSERT_TRUE(config) << config.error().message();
  const Json& c = config.value();
  const Json& p = c["process"];
  EXPECT_EQ(p["args"], Json({"/bin/sh", "-e", "-c", "echo $GREETING"}));
  EXPECT_EQ(p["env"], Json({"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                            "GREETING=hi"}));
  EXPECT_EQ(p["cwd"], "/work");
  EXPECT_EQ(p["user"]["uid"], 1234);
  EXPECT_EQ(p["user"]["gid"], 1235);
  EXPECT_EQ(p["user"]["additionalGids"], Json({777, 778}));
  EXPECT_EQ(p["terminal"], false);
  EXPECT_EQ(p["noNewPrivileges"], true);
  // Not root: capabilities only in the bounding set.
  EXPECT_TRUE(p["capabilities"]["effective"].empty());
  EXPECT_FALSE(p["capabilities"]["bounding"].empty());
  EXPECT_EQ(c["root"]["path"], root());
  EXPECT_EQ(c["root"]["readonly"], true);
  EXPECT_EQ(c["annotations"]["org.example.role"], "test");
  EXPECT_EQ(c["annotations"]["org.opencontainers.image.stopSignal"], "SIGINT");
  EXPECT_EQ(c["annotations"]["org.opencontainers.image.architecture"], "amd64");
  std::vector<std::string> destinations;
  for (const Json& m : c["mounts"]) destinations.push_back(m["destination"]);
  EXPECT_EQ(destinations, (std::vector<std::string>{"/proc", "/dev", "/dev/pts", "/dev/shm",
                                                    "/dev/mqueue", "/sys"}));
}

TEST_F(RuntimeBundleTest, AGivenCommandReplacesCmdAndKeepsTheEntrypoint) {
  BundleOptions options;
  options.args = {"-c", "id"};
  options.user = "root";
  options.writable = true;
  options.hostname = "box";
  auto config = config_of(kImageConfig, options);
  ASSERT_TRUE(config) << config.error().message();
  EXPECT_EQ(config.value()["process"]["args"], Json({"/bin/sh", "-e", "-c", "id"}));
  EXPECT_EQ(config.value()["process"]["user"]["uid"], 0);
  EXPECT_EQ(config.value()["process"]["user"]["additionalGids"], Json({777}));
  EXPECT_FALSE(config.value()["process"]["capabilities"]["effective"].empty());
  EXPECT_EQ(config.value()["root"]["readonly"], false);
  EXPECT_EQ(config.value()["hostname"], "box");
}

TEST_F(RuntimeBundleTest, AnImageWithoutConfigNeedsACommand) {
  BundleOptions options;
  options.rootfs = root();
  auto none = runtime_config(std::nullopt, options);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("give a command"), std::string::npos)
      << none.error().message();
  options.args = {"/bin/true"};
  auto config = runtime_config(std::nullopt, options);
  ASSERT_TRUE(config) << config.error().message();
  EXPECT_EQ(config.value()["process"]["user"]["uid"], 0);
  EXPECT_EQ(config.value()["process"]["cwd"], "/");
  const auto no_cmd = config_of(R"({"config": {"Env": ["A=1"]}})");
  ASSERT_FALSE(no_cmd);
  EXPECT_NE(no_cmd.error().message().find("no Entrypoint or Cmd"), std::string::npos);
}

TEST_F(RuntimeBundleTest, UsersAndGroupsAreResolvedInTheImage) {
  struct Case {
    std::string spec;
    uint32_t uid, gid;
  };
  for (const Case& c : {Case{"", 0, 0}, Case{"app", 1234, 1235}, Case{"1234", 1234, 1235},
                        Case{"app:extra", 1234, 777}, Case{"app:5", 1234, 5}, Case{"4000", 4000, 0},
                        Case{"4000:4001", 4000, 4001}}) {
    SCOPED_TRACE(c.spec);
    auto u = user(c.spec);
    ASSERT_TRUE(u) << u.error().message();
    EXPECT_EQ(u.value().uid, c.uid);
    EXPECT_EQ(u.value().gid, c.gid);
  }
  for (const std::string bad : {"nobody", "app:nogroup", ":", "app:", ":0", "short"}) {
    SCOPED_TRACE(bad);
    auto u = user(bad);
    ASSERT_FALSE(u);
    EXPECT_EQ(u.error().message().find('\n'), std::string::npos);
    EXPECT_NE(u.error().message().find("the image's user"), std::string::npos)
        << u.error().message();
  }
}

// An image whose /etc/passwd is a symlink out of the image (absolute, or
// climbing with ..) reads the image's own files, never the host's.
TEST_F(RuntimeBundleTest, APasswdSymlinkNeverLeavesTheImage) {
  write_file(dir_ / "host-passwd", "evil:x:4242:4242::/:/bin/sh\n");
  std::filesystem::remove(root("etc/passwd"));
  for (const std::string& target : {dir_ / "host-passwd", std::string("../../host-passwd"),
                                    std::string("/../../../host-passwd")}) {
    SCOPED_TRACE(target);
    std::filesystem::remove(root("etc/passwd"));
    std::filesystem::create_symlink(target, root("etc/passwd"));
    auto u = user("evil");
    ASSERT_FALSE(u) << "uid " << u.value().uid;
    EXPECT_NE(u.error().message().find("the image has no /etc/passwd"), std::string::npos)
        << u.error().message();
  }
  // Inside the image, a symlink is followed as the image means it.
  write_file(root("etc/real-passwd"), "svc:x:321:322::/:/bin/sh\n");
  std::filesystem::remove(root("etc/passwd"));
  std::filesystem::create_symlink("/etc/real-passwd", root("etc/passwd"));
  auto u = user("svc");
  ASSERT_TRUE(u) << u.error().message();
  EXPECT_EQ(u.value().uid, 321u);
}

TEST_F(RuntimeBundleTest, AReadOnlyRootNeedsItsMountPointsAndWorkingDirectory) {
  std::filesystem::remove(root("proc"));
  auto missing = config_of(kImageConfig);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("no directory /proc"), std::string::npos)
      << missing.error().message();
  EXPECT_NE(missing.error().message().find("--writable"), std::string::npos);
  std::filesystem::create_directories(root("proc"));
  std::filesystem::remove(root("work"));
  write_file(root("work"), "not a directory");
  auto cwd = config_of(kImageConfig);
  ASSERT_FALSE(cwd);
  EXPECT_NE(cwd.error().message().find("no directory /work"), std::string::npos)
      << cwd.error().message();
  BundleOptions writable;
  writable.writable = true;
  EXPECT_TRUE(config_of(kImageConfig, writable));  // the runtime makes them in a writable root
}

TEST_F(RuntimeBundleTest, AMalformedImageConfigIsOneLine) {
  for (const std::string bad :
       {"{", "[]", R"({"config": []})", R"({"config": {"Cmd": "sh"}})",
        R"({"config": {"Cmd": ["sh", 1]}})", R"({"config": {"Env": [null], "Cmd": ["x"]}})",
        R"({"config": {"User": 0, "Cmd": ["x"]}})",
        R"({"config": {"Labels": {"a": 1}, "Cmd": ["x"]}})",
        R"({"config": {"WorkingDir": "rel", "Cmd": ["x"]}})"}) {
    SCOPED_TRACE(bad);
    auto config = config_of(bad);
    ASSERT_FALSE(config);
    EXPECT_EQ(config.error().message().find('\n'), std::string::npos) << config.error().message();
    EXPECT_NE(config.error().message().find("the image config"), std::string::npos)
        << config.error().message();
  }
  BundleOptions relative;
  relative.rootfs = "relative/root";
  EXPECT_FALSE(config_of(kImageConfig, relative));
}

TEST_F(RuntimeBundleTest, TheBundleIsWrittenWholeAndReplaced) {
  auto config = config_of(kImageConfig);
  ASSERT_TRUE(config);
  const std::string bundle = dir_ / "bundle";
  ASSERT_TRUE(write_bundle(bundle, config.value()));
  BundleOptions other;
  other.args = {"true"};
  auto second = config_of(kImageConfig, other);
  ASSERT_TRUE(second);
  ASSERT_TRUE(write_bundle(bundle, second.value()));
  EXPECT_EQ(Json::parse(testing::read_file(bundle + "/config.json")), second.value());
  struct stat st {};
  ASSERT_EQ(::stat((bundle + "/config.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(bundle), {}), 1)
      << "no temporary file left";
  EXPECT_FALSE(write_bundle(dir_ / "no/such/parent", config.value()));
}

}  // namespace
}  // namespace pagerfs::oci
