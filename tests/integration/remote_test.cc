// The remote layer through real mounts and real servers: a store published
// by nginx on loopback, a fault proxy of ours in front of it for what
// networks and hostile servers do. Every byte a reader gets is compared with
// the source, by read() and by mmap.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "pagerfs/util/digest.h"
#include "support/blob_forgery.h"
#include "support/file_reads.h"
#include "support/fault_proxy.h"
#include "support/http_server.h"
#include "support/mount_fixture.h"
#include "support/subprocess.h"
#include "support/test_data.h"

namespace pagerfs {
namespace {

namespace fs = std::filesystem;
using testing::FaultProxy;
using testing::FaultRule;
using testing::MountedStore;
using testing::NginxServer;
using testing::ReadResult;
using testing::TempDir;
using testing::read_all;
using testing::read_mapped;
using Clock = std::chrono::steady_clock;

std::string digest_hex(const std::string& data) {
  return Sha256::of(std::as_bytes(std::span(data.data(), data.size()))).hex();
}

nlohmann::json stats(const std::string& mnt) {
  const auto r = testing::run({testing::binary_from_env("PAGERFSCTL"), "stats", "--json", mnt});
  if (r.exit_code != 0) return {};
  return nlohmann::json::parse(r.out, nullptr, false);
}

// After a read found no mirror answering, reads fail at once for this long
// (RemoteLayerOptions::outage_hold): a server that is back is served after it.
constexpr auto kOutageHold = std::chrono::milliseconds(1000);

nlohmann::json layer_stats(const std::string& mnt, const std::string& type) {
  const nlohmann::json all = stats(mnt);
  for (const auto& layer : all["layers"]) {
    if (layer["type"] == type) return layer;
  }
  return {};
}

class RemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::fuse_available()) {
      if (std::getenv("PAGERFS_REQUIRE_FUSE")) FAIL() << "FUSE is required here but /dev/fuse is unusable";
      GTEST_SKIP() << "no /dev/fuse";
    }
    // The source tree: a big file (many chunks, its own blob), small files
    // (packed together), a text file.
    fs::create_directories(dir_ / "tree/small");
    files_["big"] = testing::random_string(3 << 20, 1);
    files_["text.txt"] = std::string(200000, 'x') + "end\n";
    for (int i = 0; i < 20; ++i) files_["small/f" + std::to_string(i)] = testing::random_string(1000 + 97 * i, 10 + i);
    for (const auto& [name, data] : files_) testing::write_file(dir_ / ("tree/" + name), data);
    const auto pack = testing::run({testing::binary_from_env("PAGERFSCTL"), "pack", "--store", dir_ / "pub",
                                    "--image", "demo", dir_ / "tree"});
    ASSERT_EQ(pack.exit_code, 0) << pack.err;
    // The host's own store holds the image manifests only: every blob is remote.
    fs::create_directories(dir_ / "local/blobs/sha256");
    fs::copy(dir_ / "pub/images", dir_ / "local/images", fs::copy_options::recursive);
    nginx_.emplace(dir_ / "pub");
  }

  std::string image_file(const MountedStore& m, const std::string& name) const {
    return m.path() + "/images/demo/" + name;
  }

  // Every file of the image equals its source, by read() and by mmap.
  void expect_image_equal(const MountedStore& m) {
    for (const auto& [name, data] : files_) {
      const ReadResult r = read_all(image_file(m, name));
      ASSERT_EQ(r.error, 0) << name << ": " << std::strerror(r.error) << "\n" << m.log();
      ASSERT_TRUE(r.data == data) << name << " differs from its source";
      ASSERT_TRUE(read_mapped(image_file(m, name)) == data) << name << " (mmap) differs from its source";
    }
  }

  TempDir dir_;
  std::map<std::string, std::string> files_;
  std::optional<NginxServer> nginx_;
};

TEST_F(RemoteTest, AnImageReadOverHttpEqualsItsSourceAndIsServedFromTheCacheDiskOffline) {
  {
    MountedStore m(dir_ / "local", dir_ / "mnt", {"remote=" + nginx_->url(), "cache=" + dir_ / "cache"});
    expect_image_equal(m);
    // The blob view of the big file: checked whole against its name.
    const ReadResult blob = read_all(m.blob(digest_hex(files_["big"])));
    ASSERT_EQ(blob.error, 0) << m.log();
    EXPECT_TRUE(blob.data == files_["big"]);
    const auto remote = layer_stats(m.path(), "remote");
    EXPECT_GT(remote["requests"].get<uint64_t>(), 0u);
    EXPECT_EQ(remote["retries"].get<uint64_t>(), 0u);
    // The one mirror's own counters.
    ASSERT_EQ(remote["mirrors"].size(), 1u) << remote;
    const auto& mirror = remote["mirrors"][0];
    EXPECT_EQ(mirror["url"], nginx_->url());
    EXPECT_EQ(mirror["requests"], remote["requests"]);
    EXPECT_GT(mirror["bytes"].get<uint64_t>(), 3u << 20) << "the big file came from it";
    EXPECT_EQ(mirror["errors"].get<uint64_t>(), 0u);
    EXPECT_EQ(mirror["latency"]["count"], remote["requests"]);
    EXPECT_FALSE(remote["outage"].get<bool>());
    EXPECT_GT(layer_stats(m.path(), "cache")["bytes_filled"].get<uint64_t>(), 3u << 20);
    EXPECT_NE(nginx_->access_log().find("206"), std::string::npos) << "Range requests expected";
  }
  // The server is gone: what was read once comes from the cache disk.
  nginx_->stop();
  MountedStore m(dir_ / "local", dir_ / "mnt", {"remote=" + nginx_->url(), "cache=" + dir_ / "cache",
                                                 "remote_timeout=2"});
  expect_image_equal(m);
  EXPECT_EQ(layer_stats(m.path(), "remote")["bytes_read"].get<uint64_t>(), 0u);
}

TEST_F(RemoteTest, ASmallBlobCostsOneRequest) {
  // Its size, header, seek table and chunks all come with the GET of its
  // head: no HEAD request, no second round trip.
  MountedStore m(dir_ / "local", dir_ / "mnt", {"remote=" + nginx_->url()});
  ASSERT_EQ(read_all(image_file(m, "text.txt")).data, files_["text.txt"]) << m.log();
  EXPECT_EQ(layer_stats(m.path(), "remote")["requests"].get<uint64_t>(), 1u) << nginx_->access_log();
  EXPECT_EQ(nginx_->access_log().find("\"HEAD "), std::string::npos) << nginx_->access_log();
}

TEST_F(RemoteTest, AForgedSelfConsistentBlobIsRefusedAndNeverCached) {
  // The server's blob of `big` replaced by a valid blob of other content of
  // the same size whose header claims big's digest: every XXH3 and every
  // chunk SHA-256 of it is right; only the anchor and the name tell.
  const std::string other = testing::random_string(files_["big"].size(), 99);
  testing::write_file(dir_ / "other", other);
  const auto pack = testing::run({testing::binary_from_env("PAGERFSCTL"), "pack", "--store", dir_ / "scratch",
                                  dir_ / "other"});
  ASSERT_EQ(pack.exit_code, 0) << pack.err;
  const std::string forged_text = testing::read_file(dir_ / ("scratch/blobs/sha256/" + digest_hex(other)));
  std::vector<std::byte> forged(reinterpret_cast<const std::byte*>(forged_text.data()),
                                reinterpret_cast<const std::byte*>(forged_text.data()) + forged_text.size());
  const std::string big_hex = digest_hex(files_["big"]);
  testing::forge_header_digest(forged, Digest::parse(big_hex).value());
  testing::write_file(dir_ / ("pub/blobs/sha256/" + big_hex),
                      std::string(reinterpret_cast<const char*>(forged.data()), forged.size()));

  MountedStore m(dir_ / "local", dir_ / "mnt", {"remote=" + nginx_->url(), "cache=" + dir_ / "cache"});
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(read_all(image_file(m, "big")).error, EIO) << m.log();
    EXPECT_EQ(read_all(m.blob(big_hex)).error, EIO);
  }
  const auto s = stats(m.path());
  EXPECT_GE(s["pager"]["anchor_mismatches"].get<uint64_t>(), 2u);
  EXPECT_EQ(layer_stats(m.path(), "cache")["bytes_filled"].get<uint64_t>(), 0u) << "forged bytes were cached";
  EXPECT_EQ(read_all(image_file(m, "text.txt")).data, files_["text.txt"]) << "other files are unaffected";
}

TEST_F(RemoteTest, DamagedAnswersAreRetriedAndNeverServed) {
  FaultProxy proxy(nginx_->url());
  const std::string big_hex = digest_hex(files_["big"]);
  // Two damaged answers, one cut short, one slow: all retried.
  proxy.set_rules({{.path = big_hex, .action = "corrupt", .count = 2, .method = "GET"},
                   {.path = big_hex, .action = "truncate:100", .count = 1, .method = "GET"},
                   {.path = "/blobs/", .action = "delay:300", .count = 2, .method = "GET"}});
  MountedStore m(dir_ / "local", dir_ / "mnt", {"remote=" + proxy.url()});
  expect_image_equal(m);
  const auto s = stats(m.path());
  EXPECT_GE(s["pager"]["integrity_retries"].get<uint64_t>(), 1u) << proxy.log();
  EXPECT_GE(layer_stats(m.path(), "remote")["retries"].get<uint64_t>(), 1u) << proxy.log();

  // Damage on every answer: an error, never wrong bytes.
  proxy.set_rules({{.path = "/blobs/", .action = "corrupt", .count = -1, .method = "GET"}});
  MountedStore fresh(dir_ / "local", dir_ / "mnt2", {"remote=" + proxy.url()});
  EXPECT_EQ(read_all(image_file(fresh, "big")).error, EIO);
}

TEST_F(RemoteTest, RedirectsAreFollowed) {
  FaultProxy proxy(nginx_->url());
  proxy.set_rules({{.path = "/blobs/", .action = "redirect", .count = -1}});
  MountedStore m(dir_ / "local", dir_ / "mnt", {"remote=" + proxy.url()});
  expect_image_equal(m);
  EXPECT_GT(proxy.requests("/__direct__/"), 0) << proxy.log();
}

TEST_F(RemoteTest, AServerThatGoesAwayIsAnErrorWithinTheBoundAndReadsRecoverWhenItIsBack) {
  MountedStore m(dir_ / "local", dir_ / "mnt", {"remote=" + nginx_->url(), "remote_timeout=2"});
  // O_CLOEXEC: nginx, started again below, must not inherit it (an open
  // file of the mount keeps it alive after its daemon is told to stop).
  const int fd = ::open(image_file(m, "big").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string buf(4096, '\0');
  ASSERT_EQ(::pread(fd, buf.data(), buf.size(), 0), 4096);
  EXPECT_TRUE(buf == files_["big"].substr(0, 4096));
  nginx_->stop();
  const auto start = Clock::now();
  const off_t far = 2 << 20;  // not read ahead yet
  EXPECT_EQ(::pread(fd, buf.data(), buf.size(), far), -1);
  EXPECT_EQ(errno, EIO);
  const auto took = Clock::now() - start;
  EXPECT_LT(took, std::chrono::seconds(4)) << "remote_timeout=2 was not kept";
  nginx_->start();
  std::this_thread::sleep_for(kOutageHold);
  ASSERT_EQ(::pread(fd, buf.data(), buf.size(), far), 4096) << std::strerror(errno) << "\n" << m.log();
  EXPECT_TRUE(buf == files_["big"].substr(far, 4096));
  ::close(fd);
}

TEST_F(RemoteTest, AServerThatNeverAnswersIsAnErrorWithinTheBound) {
  FaultProxy proxy(nginx_->url());
  MountedStore m(dir_ / "local", dir_ / "mnt", {"remote=" + proxy.url(), "remote_timeout=2"});
  ASSERT_EQ(read_all(image_file(m, "text.txt")).data, files_["text.txt"]);
  // `big` open, its first page read: its size and seek table are known.
  const int fd = ::open(image_file(m, "big").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string buf(4096, '\0');
  ASSERT_EQ(::pread(fd, buf.data(), buf.size(), 0), 4096) << m.log();
  proxy.set_rules({{.path = "/blobs/", .action = "delay:30000", .count = -1}});
  const off_t far = 2 << 20;  // not read ahead yet
  const auto start = Clock::now();
  EXPECT_EQ(::pread(fd, buf.data(), buf.size(), far), -1);
  EXPECT_EQ(errno, EIO);
  // One bound, not two: the kernel's read-ahead READ waits the whole
  // remote_timeout, then the READ it sends again for the reader's page fails
  // at once (the remote is out); then a margin for the FUSE round trips.
  const auto took = Clock::now() - start;
  EXPECT_LT(took, std::chrono::milliseconds(3500))
      << "remote_timeout=2 was not kept: " << std::chrono::duration<double>(took).count() << " s\n" << m.log();
  EXPECT_GE(layer_stats(m.path(), "remote")["failed_fast"].get<uint64_t>(), 1u) << m.log();
  proxy.clear();
  std::this_thread::sleep_for(kOutageHold);
  ASSERT_EQ(::pread(fd, buf.data(), buf.size(), far), 4096) << std::strerror(errno) << "\n" << m.log();
  EXPECT_TRUE(buf == files_["big"].substr(far, 4096));
  ::close(fd);
  EXPECT_TRUE(read_all(image_file(m, "big")).data == files_["big"]) << m.log();
  EXPECT_FALSE(layer_stats(m.path(), "remote")["outage"].get<bool>());
}

TEST_F(RemoteTest, AFailingMirrorIsSkippedForTheNextOne) {
  FaultProxy broken(nginx_->url());
  broken.set_rules({{.path = "/blobs/", .action = "status:503", .count = -1}});
  MountedStore m(dir_ / "local", dir_ / "mnt", {"remote=" + broken.url(), "remote=" + nginx_->url()});
  expect_image_equal(m);
  const auto remote = layer_stats(m.path(), "remote");
  EXPECT_GE(remote["failovers"].get<uint64_t>(), 1u);
  // Each mirror's counters: the broken one failed and was left, the other served.
  ASSERT_EQ(remote["mirrors"].size(), 2u) << remote;
  const auto& first = remote["mirrors"][0];
  const auto& second = remote["mirrors"][1];
  EXPECT_EQ(first["url"], broken.url());
  EXPECT_GE(first["errors"].get<uint64_t>(), 1u) << remote;
  EXPECT_GE(first["failovers"].get<uint64_t>(), 1u) << remote;
  EXPECT_EQ(first["bytes"].get<uint64_t>(), 0u) << remote;
  EXPECT_TRUE(first["cooling_down"].get<bool>()) << remote;
  EXPECT_EQ(second["url"], nginx_->url());
  EXPECT_GT(second["requests"].get<uint64_t>(), 0u) << remote;
  EXPECT_GT(second["bytes"].get<uint64_t>(), 3u << 20) << remote;
  EXPECT_EQ(second["errors"].get<uint64_t>(), 0u) << remote;
  // The text form has a line for each mirror.
  const auto text = testing::run({testing::binary_from_env("PAGERFSCTL"), "stats", m.path()});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("mirror " + broken.url() + ": "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("cooling down"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("mirror " + nginx_->url() + ": "), std::string::npos) << text.out;
  // Once skipped, the broken mirror is not asked again for a while.
  EXPECT_LE(broken.requests("/blobs/"), 2) << broken.log();
  EXPECT_NE(m.log().find("trying the other mirrors"), std::string::npos) << m.log();
}

TEST_F(RemoteTest, AccessDeniedIsFinalAndCredentialsStayOutOfLogs) {
  nginx_.reset();
  testing::write_file(dir_ / "htpasswd", testing::htpasswd_line("alice", "s3cret") + "\n");
  NginxServer::Options options;
  options.extra_server_config = "auth_basic \"store\"; auth_basic_user_file " + dir_ / "htpasswd" + ";";
  NginxServer guarded(dir_ / "pub", options);
  {
    MountedStore m(dir_ / "local", dir_ / "mnt", {"remote=" + guarded.url()});
    const ReadResult r = read_all(image_file(m, "big"));
    EXPECT_EQ(r.error, EACCES) << m.log();
    EXPECT_EQ(layer_stats(m.path(), "remote")["retries"].get<uint64_t>(), 0u) << "a 401 is not retried";
  }
  const std::string url = "http://alice:s3cret@127.0.0.1:" + std::to_string(guarded.port());
  MountedStore m(dir_ / "local", dir_ / "mnt", {"remote=" + url, "log_level=debug"});
  expect_image_equal(m);
  // Stats name the mirror without its password.
  const auto json = testing::run({testing::binary_from_env("PAGERFSCTL"), "stats", "--json", m.path()});
  EXPECT_EQ(json.out.find("s3cret"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("http://***@127.0.0.1:" + std::to_string(guarded.port())), std::string::npos) << json.out;
  const auto text = testing::run({testing::binary_from_env("PAGERFSCTL"), "stats", m.path()});
  EXPECT_EQ(text.out.find("s3cret"), std::string::npos) << text.out;
  guarded.stop();
  // A failed request is logged (its URL without the password): a blob the
  // daemon has not opened yet.
  EXPECT_EQ(read_all(m.blob(std::string(64, 'e'))).error, EIO) << m.log();
  EXPECT_EQ(m.log().find("s3cret"), std::string::npos) << m.log();
}

// The digest that anchors image `name` of `store` (pagerfsctl images).
std::string manifest_digest_of(const std::string& store, const std::string& name) {
  const auto r = testing::run({testing::binary_from_env("PAGERFSCTL"), "images", "--json", store});
  if (r.exit_code != 0) return "";
  for (const auto& image : nlohmann::json::parse(r.out)) {
    if (image["name"] == name) return image["manifest_digest"];
  }
  return "";
}

size_t entries_named(const std::string& dir, const std::string& prefix) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().filename().string().starts_with(prefix);
  return n;
}

TEST_F(RemoteTest, AHostWithNoStoreMountsTheImagesItNamesByDigest) {
  const std::string digest = manifest_digest_of(dir_ / "pub", "demo");
  ASSERT_TRUE(digest.starts_with("sha256:")) << digest;
  EXPECT_EQ(digest, "sha256:" + digest_hex(testing::read_file(dir_ / "pub/images/demo")));
  // The first mirror lacks the image: the second serves it.
  FaultProxy first(nginx_->url());
  first.set_rules({{.path = "/images/", .action = "status:404", .count = -1}});
  {
    MountedStore m(first.url(), dir_ / "mnt",
                   {"remote=" + nginx_->url(), "image=demo@" + digest, "cache=" + dir_ / "cache"});
    expect_image_equal(m);
    EXPECT_TRUE(read_all(m.blob(digest_hex(files_["big"]))).data == files_["big"]);
    // Only the images named are shown.
    EXPECT_EQ(entries_named(m.path() + "/images", ""), 1u);
    EXPECT_EQ(entries_named(dir_ / "cache", "mount-"), 1u) << "the mount's own directory";
  }
  EXPECT_EQ(entries_named(dir_ / "cache", "mount-"), 0u) << "the mount's directory is left behind";
  EXPECT_TRUE(fs::exists(dir_ / ("cache/manifests/sha256/" + digest.substr(7))));

  // Offline: the manifest from the cache (checked again), the bytes from the cache disk.
  nginx_->stop();
  MountedStore m(nginx_->url(), dir_ / "mnt", {"image=demo@" + digest, "cache=" + dir_ / "cache", "remote_timeout=2"});
  expect_image_equal(m);
}

TEST_F(RemoteTest, AnImageWhoseManifestIsNotTheDigestNamedIsRefusedAtMount) {
  const std::string digest = manifest_digest_of(dir_ / "pub", "demo");
  const std::string other = std::string(64, '0');
  const auto expect_refused = [&](const std::vector<std::string>& options, const std::string& needle) {
    std::vector<std::string> argv = {testing::binary_from_env("PAGERFS"), nginx_->url(), dir_.path(), "-f"};
    for (const std::string& o : options) argv.insert(argv.end(), {"-o", o});
    const auto r = testing::run(argv);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  };
  expect_refused({"image=demo@sha256:" + other, "remote_timeout=2"}, "not the sha256:" + other + " asked for");
  expect_refused({"image=absent@" + digest, "remote_timeout=2"}, "is on no remote");
  // A server that swaps the manifest for another valid one is caught too.
  testing::write_file(dir_ / "tree/extra", "a file the user never trusted");
  ASSERT_EQ(testing::run({testing::binary_from_env("PAGERFSCTL"), "pack", "--store", dir_ / "pub", "--image", "demo",
                          dir_ / "tree"}).exit_code, 0);
  expect_refused({"image=demo@" + digest, "cache=" + dir_ / "cache"}, "asked for");
  EXPECT_EQ(entries_named(dir_ / "cache", "mount-"), 0u);
  EXPECT_FALSE(fs::exists(dir_ / ("cache/manifests/sha256/" + digest.substr(7))));

  // A cached manifest damaged on disk is not used: fetched again (and refused here).
  fs::create_directories(dir_ / "cache/manifests/sha256");
  fs::copy_file(dir_ / "pub/images/demo", dir_ / ("cache/manifests/sha256/" + digest.substr(7)));
  expect_refused({"image=demo@" + digest, "cache=" + dir_ / "cache"}, "asked for");
}

// Waits until the mount's prefetcher has nothing queued; its stats then.
nlohmann::json wait_for_prefetch(const std::string& mnt) {
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  for (;;) {
    const nlohmann::json p = stats(mnt)["prefetch"];
    if (Clock::now() > deadline || (p["images"].get<uint64_t>() > 0 && p["ranges_queued"].get<uint64_t>() == 0 &&
                                    p["ranges_done"].get<uint64_t>() + p["ranges_failed"].get<uint64_t>() > 0)) {
      // The last ranges taken from the queue may still be in flight.
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      return stats(mnt)["prefetch"];
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

TEST_F(RemoteTest, ARecordedProfileIsReplayedWhenTheImageIsFirstUsed) {
  const std::string ctl = testing::binary_from_env("PAGERFSCTL");
  {
    // Recorded on the publishing host, into its store.
    MountedStore m(dir_ / "pub", dir_ / "mnt");
    const auto r = testing::run({ctl, "record", m.path(), "demo", "--", "sh", "-c",
                                 "cat " + image_file(m, "text.txt") + " " + image_file(m, "small/f3") + " >/dev/null"});
    ASSERT_EQ(r.exit_code, 0) << r.err << m.log();
    EXPECT_NE(r.err.find("saved as its profile"), std::string::npos) << r.err;
    // A command that fails: the profile is still written, and its status is ours.
    const auto failed = testing::run({ctl, "record", m.path(), "demo", "-o", dir_ / "other.profile", "--", "false"});
    EXPECT_EQ(failed.exit_code, 1) << failed.err;
    EXPECT_TRUE(testing::read_file(dir_ / "other.profile").starts_with("pagerfs-profile 1\n"));
    EXPECT_NE(testing::run({ctl, "record", m.path(), "absent", "--", "true"}).exit_code, 0);
  }
  const std::string profile = testing::read_file(dir_ / "pub/profiles/demo");
  EXPECT_NE(profile.find(digest_hex(files_["text.txt"]) + " 0 "), std::string::npos) << profile;
  EXPECT_EQ(profile.find(digest_hex(files_["big"])), std::string::npos) << "big was not read:\n" << profile;

  // A host with no store: the profile comes from the remote beside the
  // manifest, and is replayed when the image is first looked up.
  const std::string digest = manifest_digest_of(dir_ / "pub", "demo");
  {
    MountedStore m(nginx_->url(), dir_ / "mnt", {"image=demo@" + digest, "cache=" + dir_ / "cache"});
    struct stat st {};
    ASSERT_EQ(::stat((m.path() + "/images/demo").c_str(), &st), 0);
    const nlohmann::json p = wait_for_prefetch(m.path());
    EXPECT_EQ(p["mode"], "profile");
    EXPECT_GE(p["ranges_done"].get<uint64_t>(), 2u) << p.dump() << m.log();
    EXPECT_EQ(p["ranges_failed"].get<uint64_t>(), 0u) << p.dump();
    // What the profile named is on the cache disk; nothing else was read.
    nginx_->stop();
    EXPECT_EQ(read_all(image_file(m, "text.txt")).data, files_["text.txt"]) << m.log();
    EXPECT_EQ(read_all(image_file(m, "small/f3")).data, files_["small/f3"]) << m.log();
  }
  MountedStore m(nginx_->url(), dir_ / "mnt", {"image=demo@" + digest, "cache=" + dir_ / "cache", "remote_timeout=1"});
  EXPECT_EQ(read_all(image_file(m, "big")).error, EIO) << "big was prefetched without being in the profile";
}

TEST_F(RemoteTest, PrefetchAllFetchesTheWholeImageToTheCacheDisk) {
  const std::string digest = manifest_digest_of(dir_ / "pub", "demo");
  MountedStore m(nginx_->url(), dir_ / "mnt",
                 {"image=demo@" + digest, "cache=" + dir_ / "cache", "prefetch=all", "prefetch_rate=64M"});
  struct stat st {};
  ASSERT_EQ(::stat((m.path() + "/images/demo").c_str(), &st), 0);
  const nlohmann::json p = wait_for_prefetch(m.path());
  EXPECT_EQ(p["ranges_failed"].get<uint64_t>(), 0u) << p.dump() << m.log();
  EXPECT_GE(p["bytes_done"].get<uint64_t>(), files_["big"].size()) << p.dump();
  nginx_->stop();
  expect_image_equal(m);
}

TEST_F(RemoteTest, AHostileProfileIsOnlyAHint) {
  const std::string digest = manifest_digest_of(dir_ / "pub", "demo");
  // Malformed: logged, nothing prefetched, the mount works.
  fs::create_directories(dir_ / "pub/profiles");
  testing::write_file(dir_ / "pub/profiles/demo", "pagerfs-profile 1\n../../etc/shadow 0 1\n");
  {
    MountedStore m(nginx_->url(), dir_ / "mnt", {"image=demo@" + digest, "cache=" + dir_ / "cache"});
    expect_image_equal(m);
    EXPECT_EQ(stats(m.path())["prefetch"]["images"].get<uint64_t>(), 0u);
    EXPECT_NE(m.log().find("prefetch profile"), std::string::npos) << m.log();
  }
  // Well formed, but naming blobs the image does not: skipped.
  testing::write_file(dir_ / "pub/profiles/demo", "pagerfs-profile 1\n" + std::string(64, 'e') + " 0 4096\n");
  MountedStore m(nginx_->url(), dir_ / "mnt2", {"image=demo@" + digest, "cache=" + dir_ / "cache2"});
  expect_image_equal(m);
  EXPECT_NE(m.log().find("not of its blobs"), std::string::npos) << m.log();
  EXPECT_EQ(nginx_->access_log().find(std::string(64, 'e')), std::string::npos) << "a foreign blob was fetched";
}

TEST_F(RemoteTest, BadRemoteOptionsAreOneLineErrors) {
  for (const auto& bad : std::vector<std::vector<std::string>>{
           {"-o", "remote=ftp://127.0.0.1/store"},
           {"-o", "remote=http://"},
           {"-o", "remote_timeout=3"},
           {"-o", "remote=" + nginx_->url(), "-o", "remote_timeout=soon"},
           {"-o", "image=demo@sha256:" + std::string(64, 'a')},
           {"-o", "remote=" + nginx_->url(), "-o", "prefetch=all"},
           {"-o", "prefetch=some"},
           {"-o", "prefetch_rate=fast"}}) {
    std::vector<std::string> argv = {testing::binary_from_env("PAGERFS"), dir_ / "local", dir_.path(), "-f"};
    argv.insert(argv.end(), bad.begin(), bad.end());
    const auto r = testing::run(argv);
    EXPECT_EQ(r.exit_code, 1) << bad.back();
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(r.err.starts_with("pagerfs: ")) << r.err;
  }
  for (const std::string& bad : std::vector<std::string>{"demo", "demo@sha256:12", "../x@sha256:" + std::string(64, 'a'), "demo@md5:00"}) {
    const auto r = testing::run({testing::binary_from_env("PAGERFS"), nginx_->url(), dir_.path(), "-f", "-o",
                                 "image=" + bad});
    EXPECT_EQ(r.exit_code, 1) << bad;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

}  // namespace
}  // namespace pagerfs
