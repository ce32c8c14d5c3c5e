// The remote layer across a network: hosts of their own (network
// namespaces, support/network_namespace.h) mount one nginx's published store
// at the same time, each with only the image manifests in its local store
// and a cache disk of its own, and every byte each of them reads is compared
// with the source. Then one host behind a WAN link (20 ms RTT, 100 Mbit/s):
// reads are right, and when the link drops every packet a read fails within
// remote_timeout and works again once the link is back.
//
// The daemons run in the hosts' network namespaces only (nsenter --net): the
// mounts are in the test's mount namespace, where the test reads them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <latch>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>

#include "support/file_reads.h"
#include "support/http_server.h"
#include "support/mount_fixture.h"
#include "support/network_namespace.h"
#include "support/subprocess.h"

namespace pagerfs {
namespace {

using testing::ReadResult;
using testing::read_all;

namespace fs = std::filesystem;
using testing::MountedStore;
using testing::NetworkHost;
using testing::NginxServer;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

// Mixed content: random (incompressible) or text-like (compressible).
std::string make_bytes(size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  if (seed % 2 == 0) {
    for (auto& c : s) c = static_cast<char>(rng());
  } else {
    static const char words[] = "import os, sys; def main(): return 0  # pagerfs\n";
    for (size_t i = 0; i < n; ++i) s[i] = words[(i + rng() % 3) % (sizeof words - 1)];
  }
  return s;
}

// Random 4 KiB pages of a mapping against the source; "" when all match.
std::string check_mapped_pages(const std::string& path, const std::string& source, unsigned seed) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return path + ": " + std::strerror(errno);
  void* p = ::mmap(nullptr, source.size(), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return path + ": mmap: " + std::strerror(errno);
  const char* mapped = static_cast<const char*>(p);
  std::mt19937 rng(seed);
  std::string failure;
  for (int i = 0; i < 64 && failure.empty(); ++i) {
    const size_t page = rng() % ((source.size() + 4095) / 4096);
    const size_t len = std::min<size_t>(4096, source.size() - page * 4096);
    if (std::memcmp(mapped + page * 4096, source.data() + page * 4096, len) != 0) {
      failure = path + ": mapped page " + std::to_string(page) + " differs from its source";
    }
  }
  ::munmap(p, source.size());
  return failure;
}

// The remote layer's counters, or {"error": why} (then every counter read
// from it fails the test with that message).
nlohmann::json remote_stats(const std::string& mnt) {
  const auto r = testing::run({testing::binary_from_env("PAGERFSCTL"), "stats", "--json", mnt});
  if (r.exit_code != 0) return {{"error", "pagerfsctl stats: " + r.err}};
  const nlohmann::json all = nlohmann::json::parse(r.out, nullptr, false);
  if (all.is_discarded() || !all.contains("layers")) return {{"error", "not stats: " + r.out}};
  for (const auto& layer : all["layers"]) {
    if (layer["type"] == "remote") return layer;
  }
  return {{"error", "no remote layer: " + r.out}};
}

uint64_t counter(const nlohmann::json& layer, const char* name) {
  return layer.contains(name) ? layer[name].get<uint64_t>() : 0;
}

class RemoteHostsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::fuse_available()) {
      if (std::getenv("PAGERFS_REQUIRE_FUSE")) FAIL() << "FUSE is required here but /dev/fuse is unusable";
      GTEST_SKIP() << "no /dev/fuse";
    }
    if (::geteuid() != 0) {
      if (std::getenv("CI")) FAIL() << "CI runs this test as root (network namespaces need it)";
      GTEST_SKIP() << "network namespaces need root";
    }
    // A few hundred files of mixed sizes in nested directories (packed
    // together into shared blobs), a few bigger ones, and two of some MiB
    // (many chunks, blobs of their own).
    std::mt19937 rng(7);
    for (int i = 0; i < 300; ++i) {
      const size_t size = i % 50 == 0 ? 200000 + rng() % 300000 : rng() % (i % 3 == 0 ? 40000 : 3000);
      files_["d" + std::to_string(i % 7) + "/s" + std::to_string(i % 4) + "/f" + std::to_string(i)] =
          make_bytes(size, 100 + i);
    }
    files_["empty"] = "";
    files_["big.bin"] = make_bytes((4 << 20) - 42, 2);   // random: incompressible
    files_["big.txt"] = make_bytes((3 << 20) + 5, 3);    // compressible
    for (const auto& [name, data] : files_) {
      fs::create_directories(fs::path(dir_ / ("tree/" + name)).parent_path());
      testing::write_file(dir_ / ("tree/" + name), data);
    }
    const auto pack = testing::run({testing::binary_from_env("PAGERFSCTL"), "pack", "--store", dir_ / "pub",
                                    "--image", "demo", dir_ / "tree"});
    ASSERT_EQ(pack.exit_code, 0) << pack.err;
  }

  // A host's own store: the image manifests only, every blob is remote.
  std::string local_store(const std::string& name) {
    const std::string store = dir_ / name;
    fs::create_directories(store + "/blobs/sha256");
    fs::copy(dir_ / "pub/images", store + "/images", fs::copy_options::recursive);
    return store;
  }

  // Every file of the image read whole and compared with its source, and
  // random pages of the big file by mmap; the failures, one per line.
  std::string check_image(const std::string& mnt, unsigned seed) const {
    std::string failures;
    for (const auto& [name, data] : files_) {
      const ReadResult r = read_all(mnt + "/images/demo/" + name);
      if (r.error != 0) {
        failures += name + ": " + std::strerror(r.error) + "\n";
      } else if (r.data != data) {
        failures += name + " differs from its source\n";
      }
    }
    const std::string mapped = check_mapped_pages(mnt + "/images/demo/big.bin", files_.at("big.bin"), seed);
    if (!mapped.empty()) failures += mapped + "\n";
    return failures;
  }

  TempDir dir_;
  std::map<std::string, std::string> files_;
};

TEST_F(RemoteHostsTest, ThreeHostsReadOneServersStoreAtTheSameTime) {
  // Declared in the order they are needed: destroyed mounts first, then the
  // server, then the hosts.
  std::vector<std::unique_ptr<NetworkHost>> hosts;
  for (int i = 0; i < 3; ++i) hosts.push_back(std::make_unique<NetworkHost>());
  NginxServer nginx(dir_ / "pub", {.listen_addresses = {NetworkHost::server_address()}});
  const std::string url = nginx.url_on(NetworkHost::server_address());
  // The server is not the hosts' loopback: the hosts reach it only by the link.
  EXPECT_NE(hosts[0]->run({"curl", "-sf", "-o", "/dev/null", nginx.url() + "/images/demo"}).exit_code, 0);

  std::vector<std::unique_ptr<MountedStore>> mounts;  // started here: on the test's thread
  for (size_t i = 0; i < hosts.size(); ++i) {
    const std::string n = std::to_string(i);
    mounts.push_back(std::make_unique<MountedStore>(
        local_store("local" + n), dir_ / ("mnt" + n),
        std::vector<std::string>{"remote=" + url, "cache=" + dir_ / ("cache" + n), "remote_timeout=10"},
        hosts[i]->enter()));
  }

  // All three read at once, from the first file on.
  std::vector<std::string> failures(mounts.size());
  std::latch start(static_cast<ptrdiff_t>(mounts.size()));
  std::vector<std::thread> readers;
  for (size_t i = 0; i < mounts.size(); ++i) {
    readers.emplace_back([&, i] {
      start.arrive_and_wait();
      failures[i] = check_image(mounts[i]->path(), static_cast<unsigned>(i));
    });
  }
  for (auto& t : readers) t.join();

  const std::string log = nginx.access_log();
  for (size_t i = 0; i < mounts.size(); ++i) {
    EXPECT_EQ(failures[i], "") << "host " << hosts[i]->address() << "\n" << mounts[i]->log();
    const auto remote = remote_stats(mounts[i]->path());
    EXPECT_GT(counter(remote, "requests"), 0u) << remote;
    // At least the compressed size of big.bin (random: ~4 MiB) came over the link.
    EXPECT_GT(counter(remote, "bytes_read"), 4u << 20) << remote;
    // nginx saw each host's own address (the log line ends with it).
    EXPECT_NE(log.find("\" " + hosts[i]->address() + "\n"), std::string::npos)
        << hosts[i]->address() << " is not in the access log:\n" << log.substr(0, 2000);
  }
  EXPECT_NE(log.find(" 206 "), std::string::npos) << "Range requests expected";
  EXPECT_EQ(log.find("127.0.0.1\n"), std::string::npos) << "a daemon reached the server by loopback";
}

TEST_F(RemoteHostsTest, AWanLinkReadsRightAndALinkThatDropsEverythingFailsWithinTheTimeout) {
  NetworkHost host({.rtt = std::chrono::milliseconds(20), .rate_bit = 100'000'000});
  NginxServer nginx(dir_ / "pub", {.listen_addresses = {NetworkHost::server_address()}});
  const std::string url = nginx.url_on(NetworkHost::server_address());
  // The link has the delay it was given: a TCP connect is one round trip.
  const auto connect = host.run({"curl", "-s", "-o", "/dev/null", "-w", "%{time_connect}", url + "/images/demo"});
  ASSERT_EQ(connect.exit_code, 0) << connect.err;
  EXPECT_GE(std::stod(connect.out), 0.018) << "round trip " << connect.out << " s, 20 ms expected";

  const std::string store = local_store("local");
  {
    MountedStore m(store, dir_ / "mnt", {"remote=" + url, "cache=" + dir_ / "cache", "remote_timeout=10"},
                   host.enter());
    const auto start = Clock::now();
    EXPECT_EQ(check_image(m.path(), 1), "") << m.log();
    // Over 8 MiB at 100 Mbit/s, in round trips of 20 ms: seconds, not more.
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(20));
    const auto remote = remote_stats(m.path());
    EXPECT_GT(counter(remote, "bytes_read"), 4u << 20) << remote;
  }

  // A fresh mount (nothing cached) that has read the first page of big.bin.
  MountedStore m(store, dir_ / "mnt2", {"remote=" + url, "remote_timeout=2"}, host.enter());
  const std::string& big = files_["big.bin"];
  const int fd = ::open((m.path() + "/images/demo/big.bin").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  std::string buf(4096, '\0');
  ASSERT_EQ(::pread(fd, buf.data(), buf.size(), 0), 4096) << m.log();
  EXPECT_TRUE(buf == big.substr(0, 4096));

  host.set_loss(true);
  const off_t far = 3 << 20;  // not read ahead yet
  const auto start = Clock::now();
  EXPECT_EQ(::pread(fd, buf.data(), buf.size(), far), -1);
  EXPECT_EQ(errno, EIO);
  const auto took = Clock::now() - start;
  // remote_timeout=2 bounds each read the daemon is asked for, and the
  // reader waits for one: the kernel's read-ahead READ fails after the whole
  // bound (a silent link), then the READ it sends again for the one page
  // fails at once, the remote being out (before, it waited a second bound:
  // 4.0 s); then a margin for the FUSE round trips.
  EXPECT_LT(took, std::chrono::milliseconds(3500)) << "remote_timeout=2 was not kept: "
                                                   << std::chrono::duration<double>(took).count() << " s\n"
                                                   << m.log();

  host.set_loss(false);
  // Reads fail at once for a second after the failure (outage_hold).
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  ASSERT_EQ(::pread(fd, buf.data(), buf.size(), far), 4096) << std::strerror(errno) << "\n" << m.log();
  EXPECT_TRUE(buf == big.substr(far, 4096));
  ::close(fd);
  EXPECT_EQ(check_image(m.path(), 2), "") << m.log();
}

}  // namespace
}  // namespace pagerfs
