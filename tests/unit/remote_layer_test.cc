// The remote layer's pieces that need no mount: parsing what servers send,
// option checks, credentials kept out of messages, the bound on a read when
// no server answers, the counters of each mirror and reads during an outage
// (against nginx on loopback). Reads of mounts over real servers (nginx and
// a fault proxy) are in tests/integration/remote_test.cc.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "pagerfs/remote/remote_layer.h"
#include "remote/http_client.h"
#include "support/http_server.h"
#include "support/subprocess.h"
#include "support/test_data.h"

namespace pagerfs {
namespace {

using remote::parse_content_range;
using remote::redact_url;

TEST(ContentRange, ParsesFirstLastAndTotal) {
  auto r = parse_content_range("bytes 4096-8191/100000");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, 4096u);
  EXPECT_EQ(r->last, 8191u);
  ASSERT_TRUE(r->total);
  EXPECT_EQ(*r->total, 100000u);
  auto unknown = parse_content_range(" bytes 0-0/* ");
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(unknown->total);
}

TEST(ContentRange, RejectsWhatIsNotARange) {
  for (const char* bad : {"", "bytes", "bytes */100", "items 0-1/2", "bytes 5-4/10", "bytes 0-9/9", "bytes 0-9/x",
                          "bytes -1-2/10", "bytes 0-18446744073709551616/3", "bytes 1-2"}) {
    EXPECT_FALSE(parse_content_range(bad)) << bad;
  }
}

TEST(RedactUrl, HidesUserAndPassword) {
  EXPECT_EQ(redact_url("https://alice:s3cret@example.org:8443/store"), "https://***@example.org:8443/store");
  EXPECT_EQ(redact_url("http://token@host/a@b"), "http://***@host/a@b");
  EXPECT_EQ(redact_url("http://host/path@x"), "http://host/path@x");
  EXPECT_EQ(redact_url("not a url"), "not a url");
}

TEST(RemoteOptions, RefusesWhatIsNotAStoreUrl) {
  RemoteLayerOptions options;
  EXPECT_FALSE(validate(options));  // no URL
  for (const char* bad : {"ftp://host/store", "http://", "https:///store", "/srv/store", "http://host/store?x=1",
                          "http://host/a b"}) {
    options.urls = {bad};
    auto valid = validate(options);
    ASSERT_FALSE(valid) << bad;
    EXPECT_EQ(valid.error().message().find('\n'), std::string::npos);
  }
  options.urls = {"https://u:secret@host/store"};
  options.attempts = 0;
  auto valid = validate(options);
  ASSERT_FALSE(valid);
  options.urls = {"http://mirror-a/store/", "https://mirror-b:8443/"};
  options.attempts = 4;
  EXPECT_TRUE(validate(options));
}

TEST(RemoteOptions, CredentialsStayOutOfMessages) {
  RemoteLayerOptions options;
  options.urls = {"ftp://alice:s3cret@host/store"};
  auto valid = validate(options);
  ASSERT_FALSE(valid);
  EXPECT_EQ(valid.error().message().find("s3cret"), std::string::npos) << valid.error().message();
}

// A port on loopback where nothing listens (bound, then closed).
int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return 1;
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(RemoteLayer, NoServerIsAnErrorWithinTheDeadlineAfterRetries) {
  RemoteLayerOptions options;
  options.urls = {"http://127.0.0.1:" + std::to_string(closed_port()) + "/store"};
  options.deadline = std::chrono::milliseconds(1500);
  options.backoff = std::chrono::milliseconds(20);
  options.attempts = 3;
  auto layer = make_remote_layer(options);
  ASSERT_TRUE(layer) << layer.error().message();
  const Digest digest = Sha256::of({});
  const auto start = std::chrono::steady_clock::now();
  auto size = layer.value()->blob_size(digest);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(size);
  EXPECT_EQ(size.error().code(), std::errc::io_error) << size.error().message();
  EXPECT_NE(size.error().message().find("onnect"), std::string::npos) << size.error().message();
  EXPECT_LT(took, std::chrono::milliseconds(1500));
  const auto stats = layer.value()->stats().snapshot();
  EXPECT_EQ(stats.retries, 2u);  // three attempts in all
  EXPECT_EQ(stats.requests, 3u);

  std::vector<std::byte> out(4096);
  SectorMarker marker(0, 1);
  auto read = layer.value()->read(BlobExtent{digest, 4096}, out, marker);
  ASSERT_FALSE(read);
  EXPECT_EQ(marker.marked_count(), 0u);
  EXPECT_NE(read.error().message().find(digest.hex()), std::string::npos) << read.error().message();
  EXPECT_FALSE(layer.value()->is_trusted());
  EXPECT_TRUE(layer.value()->is_complete());
}

// A directory served by nginx holding one blob file (any bytes: the layer
// does not check them) of kFileSize bytes.
class RemoteServerTest : public ::testing::Test {
 protected:
  static constexpr size_t kFileSize = 200 << 10;

  void SetUp() override {
    std::filesystem::create_directories(dir_ / "pub/blobs/sha256");
    bytes_ = testing::random_string(kFileSize, 7);
    digest_ = Sha256::of(std::as_bytes(std::span(bytes_.data(), bytes_.size())));
    testing::write_file(dir_ / ("pub/blobs/sha256/" + digest_.hex()), bytes_);
    nginx_.emplace(dir_ / "pub");
  }

  // Reads `count` sectors from `first`: their bytes, or the error.
  static Result<std::string> read(Layer& layer, const BlobExtent& blob, uint64_t first, uint64_t count) {
    std::string out(count * 4096, '\0');
    SectorMarker marker(first, count);
    PAGERFS_TRYV(layer.read(blob, std::as_writable_bytes(std::span(out.data(), out.size())), marker));
    return out;
  }

  testing::TempDir dir_;
  std::string bytes_;
  Digest digest_;
  std::optional<testing::NginxServer> nginx_;
};

TEST_F(RemoteServerTest, EachMirrorCountsItsRequestsBytesErrorsAndFailovers) {
  testing::NginxServer::Options failing;
  failing.extra_server_config = "location /blobs/ { return 500; }";
  testing::NginxServer broken(dir_ / "pub", failing);
  RemoteLayerOptions options;
  // The broken mirror first, named with credentials that stats must not show.
  options.urls = {"http://alice:s3cret@127.0.0.1:" + std::to_string(broken.port()), nginx_->url()};
  options.backoff = std::chrono::milliseconds(10);
  auto made = make_remote_layer(options);
  ASSERT_TRUE(made) << made.error().message();
  Layer& layer = *made.value();

  // The size (a GET of the head): a 500 from the first, then the second.
  auto size = layer.blob_size(digest_);
  ASSERT_TRUE(size && *size.value() == kFileSize) << (size ? "" : size.error().message());
  const BlobExtent blob{digest_, kFileSize};
  // A range past the head: the broken mirror cools down, the second serves.
  auto got = read(layer, blob, 20, 10);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_TRUE(got.value() == bytes_.substr(20 * 4096, 10 * 4096));

  const auto remote = remote_stats(layer);
  ASSERT_TRUE(remote);
  ASSERT_EQ(remote->mirrors.size(), 2u);
  const RemoteMirrorStats& first = remote->mirrors[0];
  const RemoteMirrorStats& second = remote->mirrors[1];
  EXPECT_EQ(first.url, "http://***@127.0.0.1:" + std::to_string(broken.port()));
  EXPECT_EQ(first.requests, 1u);
  EXPECT_EQ(first.errors, 1u);
  EXPECT_EQ(first.failovers, 1u);
  EXPECT_EQ(first.retries, 0u);
  EXPECT_EQ(first.bytes, 0u) << "an error page is not blob bytes";
  EXPECT_TRUE(first.cooling_down);
  EXPECT_EQ(first.latency.count, 1u);
  EXPECT_EQ(second.url, nginx_->url());
  EXPECT_EQ(second.requests, 2u);
  EXPECT_EQ(second.errors, 0u);
  EXPECT_EQ(second.failovers, 0u);
  EXPECT_EQ(second.retries, 1u) << "the attempt after the 500";
  EXPECT_EQ(second.bytes, (64u << 10) + 10 * 4096) << "the head, then the range";
  EXPECT_FALSE(second.cooling_down);
  EXPECT_EQ(second.latency.count, 2u);
  EXPECT_FALSE(remote->outage);
  EXPECT_EQ(remote->failed_fast, 0u);
  // The layer's totals are the mirrors' sums.
  const auto totals = layer.stats().snapshot();
  EXPECT_EQ(totals.requests, 3u);
  EXPECT_EQ(totals.failovers, 1u);
  EXPECT_EQ(totals.retries, 1u);
}

TEST_F(RemoteServerTest, OtherLayersHaveNoRemoteStats) {
  RemoteLayerOptions options;
  options.urls = {nginx_->url()};
  auto made = make_remote_layer(options);
  ASSERT_TRUE(made);
  EXPECT_TRUE(remote_stats(*made.value()));
  struct NotRemote : Layer {
    std::string_view type() const noexcept override { return "other"; }
    uint32_t sector_size() const noexcept override { return 4096; }
    Result<std::optional<uint64_t>> blob_size(const Digest&) override { return std::optional<uint64_t>(); }
    Result<void> read(const BlobExtent&, std::span<std::byte>, SectorMarker&) override { return ok(); }
  } other;
  EXPECT_FALSE(remote_stats(other));
}

// The kernel asks again, at once, for the page a failed read-ahead covered:
// that read must not wait another deadline for the server that just failed.
TEST_F(RemoteServerTest, DuringAnOutageReadsFailAtOnceWhileOneProbesAndRecoverWhenTheServerIsBack) {
  RemoteLayerOptions options;
  options.urls = {nginx_->url()};
  options.deadline = std::chrono::milliseconds(5000);
  options.attempts = 3;
  options.backoff = std::chrono::milliseconds(100);
  options.outage_hold = std::chrono::milliseconds(1000);
  auto made = make_remote_layer(options);
  ASSERT_TRUE(made) << made.error().message();
  Layer& layer = *made.value();
  ASSERT_TRUE(layer.blob_size(digest_));
  const BlobExtent blob{digest_, kFileSize};
  using Clock = std::chrono::steady_clock;
  auto requests = [&] { return layer.stats().snapshot().requests; };

  nginx_->stop();
  // A read asks (three attempts, backing off) and fails: the outage begins.
  uint64_t before = requests();
  auto failed = read(layer, blob, 20, 1);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code(), std::errc::io_error);
  EXPECT_EQ(requests(), before + 3);
  Clock::time_point failed_at = Clock::now();
  // The next read fails at once, without a request.
  auto start = Clock::now();
  auto again = read(layer, blob, 20, 1);
  ASSERT_FALSE(again);
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(200)) << "well under the 5 s deadline";
  EXPECT_EQ(again.error().code(), std::errc::io_error);
  EXPECT_NE(again.error().message().find(digest_.hex()), std::string::npos) << again.error().message();
  EXPECT_EQ(requests(), before + 3);
  auto remote = remote_stats(layer);
  EXPECT_TRUE(remote->outage);
  EXPECT_EQ(remote->failed_fast, 1u);

  // After the hold, a read probes the remote (still down): it asks again.
  std::this_thread::sleep_until(failed_at + options.outage_hold + std::chrono::milliseconds(50));
  before = requests();
  ASSERT_FALSE(read(layer, blob, 30, 1));
  EXPECT_EQ(requests(), before + 3) << "the probe";
  failed_at = Clock::now();
  ASSERT_FALSE(read(layer, blob, 30, 1));
  EXPECT_EQ(requests(), before + 3) << "failed at once after the probe failed";
  EXPECT_EQ(remote_stats(layer)->failed_fast, 2u);

  // The server is back: after the hold, the probe succeeds and the outage ends.
  nginx_->start();
  std::this_thread::sleep_until(failed_at + options.outage_hold + std::chrono::milliseconds(50));
  auto served = read(layer, blob, 40, 2);
  ASSERT_TRUE(served) << served.error().message();
  EXPECT_TRUE(served.value() == bytes_.substr(40 * 4096, 2 * 4096));
  EXPECT_FALSE(remote_stats(layer)->outage);
  served = read(layer, blob, 42, 1);
  ASSERT_TRUE(served) << served.error().message();
  EXPECT_TRUE(served.value() == bytes_.substr(42 * 4096, 4096));
}

// A 404 is an answer: a blob missing from the remote is no outage.
TEST_F(RemoteServerTest, AMissingBlobIsNoOutage) {
  RemoteLayerOptions options;
  options.urls = {nginx_->url()};
  auto made = make_remote_layer(options);
  ASSERT_TRUE(made);
  for (int i = 0; i < 2; ++i) {
    auto size = made.value()->blob_size(Sha256::of({}));
    ASSERT_FALSE(size);
    EXPECT_EQ(size.error().code(), std::errc::no_such_file_or_directory);
  }
  EXPECT_FALSE(remote_stats(*made.value())->outage);
  EXPECT_EQ(made.value()->stats().snapshot().requests, 2u);
}

}  // namespace
}  // namespace pagerfs
