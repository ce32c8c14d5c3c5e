// The servers that the remote layer's tests run against: ChildProcess ends
// what it started, nginx serves files and ranges and restarts on its port,
// and each fault of the proxy does what it says, as real clients (libcurl,
// the curl binary) see it. Each helper must also be able to fail: a bad
// config, a taken port, a rejected rule.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include "support/child_process.h"
#include "support/fault_proxy.h"
#include "support/http_client.h"
#include "support/http_server.h"
#include "support/subprocess.h"
#include "support/test_data.h"

namespace pagerfs::testing {
namespace {

using std::chrono::milliseconds;

// A process that has been reaped, or never existed, cannot be signalled.
bool gone(pid_t pid) {
  return ::kill(pid, 0) == -1 && errno == ESRCH;
}

// The pids of this process's children, zombies included.
std::vector<pid_t> children() {
  std::vector<pid_t> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    // "pid (comm) state ppid ...", where comm may hold spaces and parentheses.
    const size_t comm_end = stat.rfind(')');
    if (comm_end == std::string::npos) continue;
    std::istringstream rest(stat.substr(comm_end + 1));
    char state = 0;
    pid_t ppid = 0;
    if (rest >> state >> ppid && ppid == ::getpid()) out.push_back(std::stoi(name));
  }
  return out;
}

// Waits (up to 5 s) until `path` has some content.
std::string wait_for_content(const std::string& path) {
  for (int i = 0; i < 500; ++i) {
    if (std::filesystem::exists(path) && std::filesystem::file_size(path) > 0)
      return read_file(path);
    std::this_thread::sleep_for(milliseconds(10));
  }
  return "";
}

// ---- ChildProcess, ports

TEST(ChildProcessTest, RunsWithEnvironmentWorkingDirectoryAndRedirections) {
  TempDir dir;
  std::filesystem::create_directory(dir / "cwd");
  {
    ChildProcess child({"sh", "-c", "echo \"$PAGERFS_TEST_VALUE\"; pwd; echo oops >&2"},
                       SpawnOptions{.env = {"PAGERFS_TEST_VALUE=forty-two"},
                                    .cwd = dir / "cwd",
                                    .stdout_path = dir / "out",
                                    .stderr_path = dir / "err"});
    const auto status = child.wait_for(std::chrono::seconds(10));
    ASSERT_TRUE(status);
    EXPECT_EQ(status->describe(), "exit 0");
  }
  EXPECT_EQ(read_file(dir / "out"),
            "forty-two\n" + std::filesystem::canonical(dir / "cwd").string() + "\n");
  EXPECT_EQ(read_file(dir / "err"), "oops\n");

  // One file for both, in the order written.
  ChildProcess both({"sh", "-c", "echo one; echo two >&2; echo three; exit 3"},
                    SpawnOptions{.stdout_path = dir / "both", .stderr_path = dir / "both"});
  const auto status = both.wait_for(std::chrono::seconds(10));
  ASSERT_TRUE(status);
  EXPECT_FALSE(status->signaled);
  EXPECT_EQ(status->code, 3);
  EXPECT_EQ(read_file(dir / "both"), "one\ntwo\nthree\n");
}

TEST(ChildProcessTest, StopEndsItWithSigterm) {
  ChildProcess child({"sleep", "60"});
  EXPECT_TRUE(child.running());
  const ExitStatus status = child.stop();
  EXPECT_TRUE(status.signaled);
  EXPECT_EQ(status.code, SIGTERM);
  EXPECT_FALSE(child.running());
  EXPECT_TRUE(gone(child.pid()));
  EXPECT_EQ(child.stop().code, SIGTERM) << "a second stop() reports the same end";
}

TEST(ChildProcessTest, StopKillsWhatIgnoresSigtermAfterTheGracePeriod) {
  TempDir dir;
  // An ignored signal stays ignored across exec: sleep ignores SIGTERM.
  ChildProcess child({"sh", "-c", "trap '' TERM; echo ready; exec sleep 60"},
                     SpawnOptions{.stdout_path = dir / "out"});
  ASSERT_EQ(wait_for_content(dir / "out"), "ready\n");
  const auto start = std::chrono::steady_clock::now();
  const ExitStatus status = child.stop(milliseconds(300));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(status.signaled);
  EXPECT_EQ(status.code, SIGKILL);
  EXPECT_GE(took, milliseconds(300));
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_TRUE(gone(child.pid()));
}

TEST(ChildProcessTest, DestructorEndsAndReapsTheChild) {
  pid_t pid = -1;
  {
    ChildProcess child({"sleep", "60"});
    pid = child.pid();
    ASSERT_FALSE(gone(pid));
    // Moving hands the process over; only the new owner ends it.
    ChildProcess owner(std::move(child));
    EXPECT_EQ(owner.pid(), pid);
    EXPECT_TRUE(owner.running());
  }
  EXPECT_TRUE(gone(pid)) << "not even a zombie is left";
}

TEST(ChildProcessTest, AMissingProgramThrowsTheErrno) {
  try {
    ChildProcess child({"/nonexistent/pagerfs-no-such-program"});
    FAIL() << "started a program that does not exist";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT) << e.what();
  }
  EXPECT_THROW(ChildProcess({"pagerfs-no-such-program-in-path"}), std::system_error);
  TempDir dir;
  EXPECT_THROW(ChildProcess({"true"}, SpawnOptions{.cwd = dir / "missing"}), std::system_error);
}

TEST(PortsTest, AFreePortRefusesUntilSomethingListens) {
  const uint16_t port = pick_free_port();
  EXPECT_GT(port, 0);
  EXPECT_FALSE(can_connect(port));
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  ASSERT_EQ(::listen(fd, 4), 0);
  EXPECT_TRUE(can_connect(port));
  ::close(fd);
  EXPECT_FALSE(can_connect(port));
}

// ---- nginx, and the proxy in front of it

// A store-like tree with one blob whose size is not a multiple of anything.
class HttpFixtureTest : public ::testing::Test {
 protected:
  static constexpr size_t kSize = 300 * 1024 - 42;
  static constexpr const char* kBlob =
      "blobs/sha256/5a4d1b3c0e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b";

  void SetUp() override {
    std::filesystem::create_directories(root_ / "blobs/sha256");
    content_ = to_string(random_bytes(kSize, 16));
    write_file(root_ / kBlob, content_);
  }

  std::string blob_url(const std::string& base) const { return base + "/" + kBlob; }

  static HttpResponse get(const std::string& url, std::vector<std::string> headers = {}) {
    return http_fetch(url, HttpRequest{.headers = std::move(headers)});
  }

  TempDir root_;
  std::string content_;
};

TEST_F(HttpFixtureTest, NginxServesFilesAndRanges) {
  NginxServer nginx(root_.path());
  EXPECT_EQ(nginx.url(), "http://127.0.0.1:" + std::to_string(nginx.port()));
  EXPECT_TRUE(nginx.running());

  const HttpResponse whole = get(blob_url(nginx.url()));
  ASSERT_EQ(whole.curl_code, CURLE_OK) << whole.describe();
  EXPECT_EQ(whole.status, 200);
  EXPECT_EQ(whole.header("content-length"), std::to_string(kSize));
  EXPECT_EQ(whole.header("accept-ranges"), "bytes");
  EXPECT_TRUE(whole.body == content_);

  const HttpResponse range = get(blob_url(nginx.url()), {"Range: bytes=1000-1999"});
  EXPECT_EQ(range.status, 206) << range.describe();
  EXPECT_EQ(range.header("content-range"), "bytes 1000-1999/" + std::to_string(kSize));
  EXPECT_TRUE(range.body == content_.substr(1000, 1000));

  // The last bytes, as a reader of a blob's tail asks for them.
  const HttpResponse tail = get(blob_url(nginx.url()), {"Range: bytes=-42"});
  EXPECT_EQ(tail.status, 206);
  EXPECT_TRUE(tail.body == content_.substr(kSize - 42));

  EXPECT_EQ(get(blob_url(nginx.url()), {"Range: bytes=" + std::to_string(kSize) + "-"}).status,
            416);
  EXPECT_EQ(get(nginx.url() + "/blobs/sha256/missing").status, 404);

  const HttpResponse head = http_fetch(blob_url(nginx.url()), HttpRequest{.method = "HEAD"});
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), std::to_string(kSize));
  EXPECT_TRUE(head.body.empty());

  const std::string log = nginx.access_log();
  EXPECT_NE(log.find("\"GET /" + std::string(kBlob) + " HTTP/1.1\" 206 1000 \"bytes=1000-1999\""),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("\"GET /blobs/sha256/missing HTTP/1.1\" 404"), std::string::npos) << log;
}

TEST_F(HttpFixtureTest, NginxStopsAndStartsAgainOnTheSamePort) {
  NginxServer nginx(root_.path());
  const uint16_t port = nginx.port();
  const pid_t first = nginx.pid();
  ASSERT_EQ(get(blob_url(nginx.url())).status, 200);

  nginx.stop();
  EXPECT_FALSE(nginx.running());
  EXPECT_FALSE(can_connect(port));
  EXPECT_TRUE(gone(first));
  const HttpResponse refused = get(blob_url(nginx.url()));
  EXPECT_EQ(refused.curl_code, CURLE_COULDNT_CONNECT) << refused.describe();

  nginx.start();
  EXPECT_TRUE(nginx.running());
  EXPECT_EQ(nginx.port(), port);
  EXPECT_NE(nginx.pid(), first);
  const HttpResponse again = get(blob_url(nginx.url()));
  EXPECT_EQ(again.status, 200);
  EXPECT_TRUE(again.body == content_);
  nginx.start();  // running: nothing happens
  EXPECT_TRUE(nginx.running());
}

TEST_F(HttpFixtureTest, NginxBasicAuthentication) {
  write_file(root_ / "htpasswd", htpasswd_line("puller", "s3cret") + "\n");
  EXPECT_TRUE(htpasswd_line("u", "p").starts_with("u:{SSHA}"));
  NginxServer nginx(root_.path(), {.extra_server_config = "auth_basic \"pagerfs store\";\n"
                                                          "auth_basic_user_file " +
                                                          root_ / "htpasswd" + ";\n"});

  const HttpResponse anonymous = get(blob_url(nginx.url()));
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_EQ(anonymous.header("www-authenticate"), "Basic realm=\"pagerfs store\"");
  EXPECT_EQ(http_fetch(blob_url(nginx.url()), HttpRequest{.user = "puller:wrong"}).status, 401);
  const HttpResponse allowed =
      http_fetch(blob_url(nginx.url()), HttpRequest{.user = "puller:s3cret"});
  EXPECT_EQ(allowed.status, 200) << nginx.error_log();
  EXPECT_TRUE(allowed.body == content_);
  EXPECT_NE(nginx.access_log().find("200 " + std::to_string(kSize) + " \"-\" \"puller\""),
            std::string::npos)
      << nginx.access_log();
}

TEST_F(HttpFixtureTest, NginxThatCannotStartThrowsWithItsErrorLog) {
  try {
    NginxServer nginx(root_.path(), {.extra_server_config = "no_such_directive on;"});
    FAIL() << "nginx started with an unknown directive";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown directive \"no_such_directive\""),
              std::string::npos)
        << e.what();
  }

  // A port someone else holds: reported, not retried, since it was asked for.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  try {
    NginxServer nginx(root_.path(), {.port = ntohs(addr.sin_port)});
    FAIL() << "nginx started on a port that is taken";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("is taken"), std::string::npos) << e.what();
  }
  ::close(fd);

  EXPECT_THROW(NginxServer(root_ / "missing"), std::runtime_error);
}

TEST_F(HttpFixtureTest, ProxyForwardsUnchangedWithoutRules) {
  NginxServer nginx(root_.path());
  FaultProxy proxy(nginx.url());
  EXPECT_NE(proxy.port(), nginx.port());

  const HttpResponse whole = get(blob_url(proxy.url()));
  EXPECT_EQ(whole.status, 200) << whole.describe();
  EXPECT_TRUE(whole.body == content_);
  const HttpResponse range = get(blob_url(proxy.url()), {"Range: bytes=4096-8191"});
  EXPECT_EQ(range.status, 206);
  EXPECT_EQ(range.header("content-range"), "bytes 4096-8191/" + std::to_string(kSize));
  EXPECT_TRUE(range.body == content_.substr(4096, 4096));
  const HttpResponse head = http_fetch(blob_url(proxy.url()), HttpRequest{.method = "HEAD"});
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), std::to_string(kSize));
  EXPECT_EQ(get(proxy.url() + "/blobs/sha256/missing").status, 404);

  EXPECT_EQ(proxy.requests(kBlob), 3);
  EXPECT_EQ(proxy.requests("missing"), 1);
  EXPECT_EQ(proxy.requests("/"), 4);
  EXPECT_NE(proxy.log().find("GET /" + std::string(kBlob) + " [bytes=4096-8191] -> 206\n"),
            std::string::npos)
      << proxy.log();
  proxy.clear_log();
  EXPECT_EQ(proxy.requests("/"), 0);
}

TEST_F(HttpFixtureTest, ProxyKeepsClientConnectionsAlive) {
  NginxServer nginx(root_.path());
  FaultProxy proxy(nginx.url());
  TempDir out;
  // One curl, two requests: the second reuses the first one's connection.
  const ProcessResult r = run({"curl", "-sS", "-o", out / "1", "-o", out / "2", "-w",
                               "%{num_connects}\n", blob_url(proxy.url()), blob_url(proxy.url())});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1\n0\n");
  EXPECT_TRUE(read_file(out / "2") == content_);
}

TEST_F(HttpFixtureTest, ProxyStatusAnswersWithoutAskingUpstream) {
  NginxServer nginx(root_.path());
  FaultProxy proxy(nginx.url());
  proxy.set_rules({{.path = "/blobs/", .action = "status:503", .count = 2}});
  EXPECT_EQ(get(blob_url(proxy.url())).status, 503);
  EXPECT_EQ(get(blob_url(proxy.url())).status, 503);
  const HttpResponse third = get(blob_url(proxy.url()));
  EXPECT_EQ(third.status, 200) << "count 2 breaks two requests only";
  EXPECT_TRUE(third.body == content_);
  EXPECT_EQ(proxy.requests(kBlob), 3);
  const std::string log = nginx.access_log();
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << "nginx saw the third request only:\n"
                                                         << log;
  EXPECT_NE(proxy.log().find("-> 503 (status:503)"), std::string::npos) << proxy.log();
}

TEST_F(HttpFixtureTest, ProxyDelaysBeforeAnswering) {
  NginxServer nginx(root_.path());
  FaultProxy proxy(nginx.url());
  proxy.set_rules({{.path = kBlob, .action = "delay:400", .count = 1}});
  const HttpResponse slow = get(blob_url(proxy.url()), {"Range: bytes=0-99"});
  EXPECT_EQ(slow.status, 206);
  EXPECT_TRUE(slow.body == content_.substr(0, 100));
  EXPECT_GE(slow.elapsed, milliseconds(400));
  EXPECT_LT(slow.elapsed, milliseconds(5000));
  // A request the timeout of the client gives up on.
  proxy.set_rules({{.path = kBlob, .action = "delay:2000", .count = 1}});
  const HttpResponse timed_out =
      http_fetch(blob_url(proxy.url()), HttpRequest{.timeout = milliseconds(300)});
  EXPECT_EQ(timed_out.curl_code, CURLE_OPERATION_TIMEDOUT) << timed_out.describe();
}

TEST_F(HttpFixtureTest, ProxyTruncatesTheBody) {
  NginxServer nginx(root_.path());
  FaultProxy proxy(nginx.url());
  proxy.set_rules({{.path = kBlob, .action = "truncate:1000", .count = 2}});
  const HttpResponse whole = get(blob_url(proxy.url()));
  EXPECT_EQ(whole.curl_code, CURLE_PARTIAL_FILE) << whole.describe();
  EXPECT_EQ(whole.status, 200);
  EXPECT_EQ(whole.header("content-length"), std::to_string(kSize))
      << "the real length is announced";
  EXPECT_EQ(whole.body.size(), 1000u);
  EXPECT_TRUE(whole.body == content_.substr(0, 1000));

  const HttpResponse range = get(blob_url(proxy.url()), {"Range: bytes=5000-9999"});
  EXPECT_EQ(range.curl_code, CURLE_PARTIAL_FILE);
  EXPECT_EQ(range.status, 206);
  EXPECT_TRUE(range.body == content_.substr(5000, 1000));

  EXPECT_EQ(get(blob_url(proxy.url())).curl_code, CURLE_OK);
}

TEST_F(HttpFixtureTest, ProxyCorruptsOneByte) {
  NginxServer nginx(root_.path());
  FaultProxy proxy(nginx.url());
  proxy.set_rules({{.path = kBlob, .action = "corrupt", .count = 1}});
  const HttpResponse bad = get(blob_url(proxy.url()));
  ASSERT_EQ(bad.curl_code, CURLE_OK) << bad.describe();
  EXPECT_EQ(bad.status, 200);
  ASSERT_EQ(bad.body.size(), content_.size());
  size_t differing = 0;
  for (size_t i = 0; i < content_.size(); ++i) differing += bad.body[i] != content_[i];
  EXPECT_EQ(differing, 1u);
  EXPECT_NE(bad.body[kSize / 2], content_[kSize / 2]);

  proxy.set_rules({{.path = kBlob, .action = "corrupt:7", .count = 1}});
  const HttpResponse range = get(blob_url(proxy.url()), {"Range: bytes=100-199"});
  EXPECT_EQ(range.status, 206);
  ASSERT_EQ(range.body.size(), 100u);
  EXPECT_EQ(static_cast<unsigned char>(range.body[7]), static_cast<unsigned char>(~content_[107]));
  EXPECT_EQ(range.body.substr(8), content_.substr(108, 92));
  EXPECT_TRUE(get(blob_url(proxy.url())).body == content_);
}

TEST_F(HttpFixtureTest, ProxyClosesWithoutAnswering) {
  NginxServer nginx(root_.path());
  FaultProxy proxy(nginx.url());
  proxy.set_rules({{.path = kBlob, .action = "close", .count = 1}});
  const HttpResponse nothing = get(blob_url(proxy.url()));
  EXPECT_EQ(nothing.curl_code, CURLE_GOT_NOTHING) << nothing.describe();
  EXPECT_EQ(nothing.status, 0);
  EXPECT_EQ(get(blob_url(proxy.url())).status, 200);
  EXPECT_NE(proxy.log().find("-> no answer (close)"), std::string::npos) << proxy.log();
}

TEST_F(HttpFixtureTest, ProxyRedirectsToItsDirectPath) {
  NginxServer nginx(root_.path());
  FaultProxy proxy(nginx.url());
  proxy.set_rules({{.path = kBlob, .action = "redirect"}});

  const HttpResponse redirect = get(blob_url(proxy.url()));
  EXPECT_EQ(redirect.status, 307);
  EXPECT_EQ(redirect.header("location"), proxy.url() + "/__direct__/" + kBlob);

  const HttpResponse followed =
      http_fetch(blob_url(proxy.url()),
                 HttpRequest{.headers = {"Range: bytes=10-19"}, .follow_redirects = true});
  EXPECT_EQ(followed.status, 206) << followed.describe();
  EXPECT_TRUE(followed.body == content_.substr(10, 10));

  TempDir out;
  const ProcessResult curl = run({"curl", "-sS", "-L", "-o", out / "blob", blob_url(proxy.url())});
  ASSERT_EQ(curl.exit_code, 0) << curl.err;
  EXPECT_TRUE(read_file(out / "blob") == content_);

  EXPECT_EQ(proxy.requests("/__direct__/"), 2) << proxy.log();
  EXPECT_EQ(proxy.requests(kBlob), 5) << proxy.log();

  // Object storage fails only by a rule that names __direct__.
  proxy.set_rules({{.path = kBlob, .action = "redirect", .count = 1},
                   {.path = "__direct__/blobs/", .action = "status:500", .count = 1}});
  EXPECT_EQ(http_fetch(blob_url(proxy.url()), HttpRequest{.follow_redirects = true}).status, 500);
}

TEST_F(HttpFixtureTest, ProxyRulesCountMatchInOrderAndClear) {
  NginxServer nginx(root_.path());
  write_file(root_ / "manifest.json", "{}\n");
  FaultProxy proxy(nginx.url());
  proxy.set_rules({{.path = kBlob, .action = "status:500", .count = 1},
                   {.path = "/blobs/", .action = "status:404", .count = 2},
                   {.path = "manifest", .action = "status:502", .method = "HEAD"}});
  EXPECT_EQ(get(blob_url(proxy.url())).status, 500);
  EXPECT_EQ(get(blob_url(proxy.url())).status, 404);
  EXPECT_EQ(get(blob_url(proxy.url())).status, 404);
  EXPECT_EQ(get(blob_url(proxy.url())).status, 200);

  // Count -1: every request; the method: only HEADs.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(http_fetch(proxy.url() + "/manifest.json", HttpRequest{.method = "HEAD"}).status,
              502);
  }
  EXPECT_EQ(get(proxy.url() + "/manifest.json").body, "{}\n");

  proxy.clear();
  EXPECT_EQ(http_fetch(proxy.url() + "/manifest.json", HttpRequest{.method = "HEAD"}).status, 200);
}

TEST_F(HttpFixtureTest, ProxyRejectsBadRulesAndKeepsItsOwn) {
  NginxServer nginx(root_.path());
  FaultProxy proxy(nginx.url());
  proxy.set_rules({{.path = kBlob, .action = "status:503"}});
  EXPECT_THROW(proxy.set_rules({{.path = kBlob, .action = "explode"}}), std::runtime_error);
  EXPECT_THROW(proxy.set_rules({{.path = kBlob, .action = "status:99"}}), std::runtime_error);
  EXPECT_THROW(proxy.set_rules({{.path = kBlob, .action = "delay"}}), std::runtime_error);
  EXPECT_THROW(proxy.set_rules({{.path = kBlob, .action = "close", .count = 0}}),
               std::runtime_error);
  EXPECT_THROW(proxy.set_rules_json("{\"path\": \"x\""), std::runtime_error);
  EXPECT_THROW(proxy.set_rules_json("[{\"path\": \"x\", \"action\": \"close\", \"typo\": 1}]"),
               std::runtime_error);
  EXPECT_EQ(get(blob_url(proxy.url())).status, 503);
}

TEST_F(HttpFixtureTest, ProxyAnswers502WhileUpstreamIsDown) {
  NginxServer nginx(root_.path());
  FaultProxy proxy(nginx.url());
  ASSERT_EQ(get(blob_url(proxy.url())).status, 200);  // leaves a kept connection to nginx
  nginx.stop();
  const HttpResponse down = get(blob_url(proxy.url()));
  EXPECT_EQ(down.status, 502) << down.describe();
  nginx.start();
  const HttpResponse up = get(blob_url(proxy.url()));
  EXPECT_EQ(up.status, 200);
  EXPECT_TRUE(up.body == content_);
}

TEST_F(HttpFixtureTest, ServersLeaveNoProcessBehind) {
  pid_t nginx_pid = -1, proxy_pid = -1;
  std::thread client;
  {
    NginxServer nginx(root_.path());
    FaultProxy proxy(nginx.url());
    nginx_pid = nginx.pid();
    proxy_pid = proxy.pid();
    ASSERT_FALSE(gone(nginx_pid));
    ASSERT_FALSE(gone(proxy_pid));
    // A request in flight does not hold the proxy up: it fails when the proxy ends.
    proxy.set_rules({{.path = kBlob, .action = "delay:60000"}});
    client = std::thread([url = blob_url(proxy.url())] {
      const HttpResponse r = http_fetch(url, HttpRequest{.timeout = milliseconds(20000)});
      EXPECT_NE(r.curl_code, CURLE_OK);
    });
    std::this_thread::sleep_for(milliseconds(100));
  }
  const auto start = std::chrono::steady_clock::now();
  client.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(gone(nginx_pid));
  EXPECT_TRUE(gone(proxy_pid));

  // Nor does an nginx that fails to start.
  EXPECT_THROW(NginxServer(root_.path(), {.extra_server_config = "no_such_directive on;"}),
               std::runtime_error);
  EXPECT_EQ(children(), std::vector<pid_t>{}) << "children of the test are left, zombies included";
}

}  // namespace
}  // namespace pagerfs::testing
