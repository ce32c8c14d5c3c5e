// The remote layer's pieces that need no server: parsing what servers send,
// option checks, credentials kept out of messages, and the bound on a read
// when no server answers. Reads against real servers (nginx and a fault
// proxy) are in tests/integration/remote_test.cc.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "pagerfs/remote/remote_layer.h"
#include "remote/http_client.h"

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

}  // namespace
}  // namespace pagerfs
