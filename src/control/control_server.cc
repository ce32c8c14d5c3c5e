#include "control/control_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <chrono>
#include <thread>

#include "util/unique_fd.h"

namespace pagerfs {
namespace {

using boost::asio::local::stream_protocol;
constexpr size_t kMaxCommand = 64 * 1024;

// One client: read a line, answer, close.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(stream_protocol::socket socket, const ControlServer::Handler& handler)
      : socket_(std::move(socket)), handler_(handler), buffer_(kMaxCommand) {}

  void run() {
    auto self = shared_from_this();
    boost::asio::async_read_until(socket_, buffer_, '\n', [self](boost::system::error_code ec, size_t n) {
      if (ec) return;  // client went away or sent too much
      std::string line(boost::asio::buffers_begin(self->buffer_.data()),
                       boost::asio::buffers_begin(self->buffer_.data()) + static_cast<ptrdiff_t>(n) - 1);
      Result<std::string> answer = Error(errc::invalid_argument, "internal error");
      try {
        answer = self->handler_(line);
      } catch (const std::exception& e) {
        answer = Error(errc::invalid_argument, e.what());
      }
      self->reply_ = answer ? "ok\n" + answer.value() : "error " + answer.error().message() + "\n";
      boost::asio::async_write(self->socket_, boost::asio::buffer(self->reply_),
                               [self](boost::system::error_code, size_t) {});
    });
  }

 private:
  stream_protocol::socket socket_;
  const ControlServer::Handler& handler_;
  boost::asio::streambuf buffer_;
  std::string reply_;
};

}  // namespace

struct ControlServer::Impl {
  explicit Impl(int fd) : listen_fd(fd) {}
  UniqueFd listen_fd;
  boost::asio::io_context io;
  std::unique_ptr<stream_protocol::acceptor> acceptor;
  Handler handler;
  std::thread thread;

  void accept() {
    acceptor->async_accept([this](boost::system::error_code ec, stream_protocol::socket socket) {
      if (ec == boost::asio::error::operation_aborted) return;
      if (!ec) std::make_shared<Session>(std::move(socket), handler)->run();
      accept();
    });
  }
};

ControlServer::ControlServer(std::string path, int fd) : path_(std::move(path)), impl_(std::make_unique<Impl>(fd)) {}

ControlServer::~ControlServer() { stop(); }

Result<std::unique_ptr<ControlServer>> ControlServer::bind(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Error(errc::invalid_argument, "control socket path too long: '" + path + "'");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const std::string dir = path.substr(0, path.rfind('/'));
  if (!dir.empty() && ::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error::from_errno(errno, "control socket directory '" + dir + "'");
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno(errno, "socket");
  // A socket file nobody answers on is left over from a killed daemon. One
  // that answers may belong to a daemon that was just unmounted and is
  // stopping: it unpublishes its socket within milliseconds, so wait a little.
  for (int attempt = 0;; ++attempt) {
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) break;
    if (attempt == 50) {
      return Error::from_errno(EADDRINUSE, "control socket '" + path + "' (is another pagerfs using it?)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::unlink(path.c_str());
  const mode_t old_mask = ::umask(0077);  // the socket is created 0600
  const int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  ::umask(old_mask);
  if (rc != 0) return Error::from_errno(errno, "bind control socket '" + path + "'");
  if (::listen(fd.get(), 16) != 0) return Error::from_errno(errno, "listen on '" + path + "'");
  return std::unique_ptr<ControlServer>(new ControlServer(path, fd.release()));
}

void ControlServer::start(Handler handler) {
  impl_->handler = std::move(handler);
  impl_->acceptor = std::make_unique<stream_protocol::acceptor>(impl_->io);
  impl_->acceptor->assign(stream_protocol(), impl_->listen_fd.release());
  impl_->accept();
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

void ControlServer::unpublish() {
  std::lock_guard lock(path_mu_);
  if (!path_.empty()) ::unlink(path_.c_str());
  path_.clear();
}

void ControlServer::stop() {
  if (!impl_) return;
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->acceptor.reset();
  unpublish();
}

}  // namespace pagerfs
