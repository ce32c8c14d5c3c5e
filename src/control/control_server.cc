#include "control/control_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <list>
#include <spdlog/spdlog.h>
#include <thread>

#include "pagerfs/control/control.h"
#include "util/rate_limiter.h"
#include "util/unique_fd.h"

namespace pagerfs {
namespace {

using boost::asio::local::stream_protocol;
using control::kMaxRequest;
using control::kMaxSessions;
using control::kRequestTimeout;
// A client that does not read its answer is dropped after this long.
constexpr std::chrono::seconds kAnswerTimeout{30};
constexpr std::chrono::seconds kRefusalLogInterval{10};

// Best effort, never blocking: an error line for a connection we are about
// to close (it fits any socket buffer; a peer that does not read loses it).
void send_error_now(int fd, const std::string& message) {
  const std::string line = control::encode_answer(Error(errc::invalid_argument, message));
  [[maybe_unused]] const ssize_t n = ::send(fd, line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

}  // namespace

struct ControlServer::Impl {
  class Session;
  using Sessions = std::list<std::shared_ptr<Session>>;

  // One client: read a line, answer, close. Lives in `sessions` (which owns
  // it) until finish(); everything runs on the I/O thread.
  class Session : public std::enable_shared_from_this<Session> {
   public:
    Session(Impl& server, stream_protocol::socket socket)
        : server_(server), socket_(std::move(socket)), timer_(server.io), buffer_(kMaxRequest) {}

    void run(Sessions::iterator self_it) {
      self_it_ = self_it;
      auto self = shared_from_this();
      timer_.expires_after(kRequestTimeout);
      timer_.async_wait([self](boost::system::error_code ec) {
        if (ec || self->done_) return;
        ++self->server_.timed_out;
        self->finish(self->answering_ ? "" : "no request within " + std::to_string(kRequestTimeout.count()) + " s");
      });
      boost::asio::async_read_until(socket_, buffer_, '\n', [self](boost::system::error_code ec, size_t n) {
        if (self->done_) return;
        if (ec == boost::asio::error::not_found) {  // the buffer is full and holds no '\n'
          ++self->server_.oversized;
          return self->finish("request larger than " + std::to_string(kMaxRequest / 1024) + " KiB");
        }
        if (ec) return self->finish("");  // the client went away
        self->answer(std::string(boost::asio::buffers_begin(self->buffer_.data()),
                                 boost::asio::buffers_begin(self->buffer_.data()) + static_cast<ptrdiff_t>(n) - 1));
      });
    }

    bool answering() const noexcept { return answering_; }

    // Closes the connection, with an error line first unless `error` is empty.
    // Idempotent.
    void finish(const std::string& error) {
      if (done_) return;
      done_ = true;
      if (!error.empty()) send_error_now(socket_.native_handle(), error);
      boost::system::error_code ignored;
      timer_.cancel();
      socket_.close(ignored);  // cancels the pending read or write
      server_.sessions.erase(self_it_);  // may drop the last owner: touch nothing after
    }

   private:
    void answer(const std::string& line) {
      answering_ = true;
      Result<std::string> answer = Error(errc::invalid_argument, "internal error");
      try {
        answer = server_.handler(line);
      } catch (...) {
        answer = current_exception_error();
      }
      reply_ = control::encode_answer(answer);
      // The command may have run long: the answer gets a fresh deadline.
      timer_.expires_after(kAnswerTimeout);
      auto self = shared_from_this();
      timer_.async_wait([self](boost::system::error_code ec) {
        if (ec || self->done_) return;
        ++self->server_.timed_out;
        self->finish("");
      });
      boost::asio::async_write(socket_, boost::asio::buffer(reply_), [self](boost::system::error_code, size_t) {
        self->finish("");
      });
    }

    Impl& server_;
    stream_protocol::socket socket_;
    boost::asio::steady_timer timer_;
    boost::asio::streambuf buffer_;
    std::string reply_;
    Sessions::iterator self_it_;
    bool answering_ = false;
    bool done_ = false;
  };

  explicit Impl(int fd) : listen_fd(fd), owner(::geteuid()) {}
  UniqueFd listen_fd;
  const uid_t owner;
  boost::asio::io_context io;
  std::unique_ptr<stream_protocol::acceptor> acceptor;
  Handler handler;
  std::shared_ptr<spdlog::logger> log;
  std::thread thread;
  Sessions sessions;  // oldest first; I/O thread only
  RateLimiter refusal_log{kRefusalLogInterval};
  std::atomic<uint64_t> connections{0}, refused_peers{0}, oversized{0}, timed_out{0}, evicted{0};

  void accept() {
    acceptor->async_accept([this](boost::system::error_code ec, stream_protocol::socket socket) {
      if (ec == boost::asio::error::operation_aborted) return;
      if (!ec) {
        // A failure to admit (out of memory) costs that connection only:
        // accept() is armed again whatever happens.
        try {
          admit(std::move(socket));
        } catch (...) {
          try {
            if (log) log->warn("control socket: a connection dropped: {}", current_exception_error().message());
          } catch (...) {  // no memory even for the message
          }
        }
      }
      accept();
    });
  }

  void admit(stream_protocol::socket socket) {
    ucred peer{};
    socklen_t len = sizeof peer;
    if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 ||
        (peer.uid != 0 && peer.uid != owner)) {
      ++refused_peers;
      send_error_now(socket.native_handle(), "permission denied: uid " + std::to_string(peer.uid) +
                                                 " may not use this control socket (only root and uid " +
                                                 std::to_string(owner) + ")");
      log_refusal(peer);
      return;  // the socket closes here
    }
    if (sessions.size() >= kMaxSessions) {
      // The oldest connection still silent has had the longest to speak.
      auto idle = std::find_if(sessions.begin(), sessions.end(), [](const auto& s) { return !s->answering(); });
      ++evicted;
      if (idle == sessions.end()) {
        send_error_now(socket.native_handle(), "too many connections to this control socket");
        return;
      }
      (*idle)->finish("closed: too many connections to this control socket");
    }
    ++connections;
    auto session = std::make_shared<Session>(*this, std::move(socket));
    sessions.push_back(session);
    session->run(std::prev(sessions.end()));
  }

  // One line per kRefusalLogInterval at most, however many peers knock.
  void log_refusal(const ucred& peer) {
    uint64_t suppressed = 0;
    if (!log || !refusal_log.allow(&suppressed)) return;
    log->warn("control socket: refused uid {} (pid {}): only root and uid {} may use it ({} refused since the last "
              "such message)",
              peer.uid, peer.pid, owner, suppressed + 1);
  }
};

namespace {

// The socket's directory: ours (0700) if we create it; otherwise it must be
// a directory that nobody but us or root can change (no one else can then
// swap the socket for something else).
Result<void> check_directory(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) return ok();
  if (errno != EEXIST) return Error::from_errno(errno, "control socket directory '" + dir + "'");
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return Error::from_errno(errno, "control socket directory '" + dir + "'");
  if (!S_ISDIR(st.st_mode)) {
    return Error::from_errno(ENOTDIR, "control socket directory '" + dir + "'");
  }
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    return Error(errc::invalid_argument, "control socket directory '" + dir + "' is owned by uid " +
                                             std::to_string(st.st_uid) + ", not by us or root");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Error(errc::invalid_argument, "control socket directory '" + dir +
                                             "' is writable by group or others: choose a private directory");
  }
  return ok();
}

// Makes `path` free for bind(): only a stale socket of ours is removed.
Result<void> clear_path(const std::string& path, const sockaddr_un& addr) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return ok();
    return Error::from_errno(errno, "control socket '" + path + "'");
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Error(errc::invalid_argument, "control socket '" + path + "' exists and is not a socket: not replacing it");
  }
  if (st.st_uid != ::geteuid()) {
    return Error(errc::invalid_argument, "control socket '" + path + "' belongs to uid " + std::to_string(st.st_uid) +
                                             ": not replacing it");
  }
  // A socket nobody answers on is left over from a killed daemon. One that
  // answers may belong to a daemon that was just unmounted and is stopping:
  // it unpublishes its socket within milliseconds, so wait a little.
  for (int attempt = 0;; ++attempt) {
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!probe) return Error::from_errno(errno, "socket");
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      if (errno == ENOENT) return ok();  // removed meanwhile by its daemon
      if (errno != ECONNREFUSED) return Error::from_errno(errno, "control socket '" + path + "'");
      break;
    }
    if (attempt == 50) {
      return Error::from_errno(EADDRINUSE, "control socket '" + path + "' (is another pagerfs using it?)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Still the same stale socket file (not something put there since)?
  struct stat now {};
  if (::lstat(path.c_str(), &now) != 0) return ok();
  if (now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
    return Error(errc::invalid_argument, "control socket '" + path + "' changed while being checked");
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Error::from_errno(errno, "remove stale control socket '" + path + "'");
  }
  return ok();
}

}  // namespace

ControlServer::ControlServer(std::string path, int fd, dev_t dev, ino_t ino)
    : path_(std::move(path)), dev_(dev), ino_(ino), impl_(std::make_unique<Impl>(fd)) {}

ControlServer::~ControlServer() { stop(); }

Result<std::unique_ptr<ControlServer>> ControlServer::bind(const std::string& path) {
  if (!path.starts_with("/")) {
    return Error(errc::invalid_argument, "control socket '" + path + "' is not an absolute path");
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Error(errc::invalid_argument, "control socket path too long (" + std::to_string(path.size()) +
                                             " bytes, at most " + std::to_string(sizeof addr.sun_path - 1) +
                                             "): '" + path + "'");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const size_t slash = path.rfind('/');
  PAGERFS_TRYV(check_directory(slash == 0 ? "/" : path.substr(0, slash)));
  PAGERFS_TRYV(clear_path(path, addr));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno(errno, "socket");
  const mode_t old_mask = ::umask(0077);  // the socket is created 0600
  const int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  ::umask(old_mask);
  if (rc != 0) return Error::from_errno(errno, "bind control socket '" + path + "'");
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Error::from_errno(errno, "control socket '" + path + "'");
  if (::listen(fd.get(), 64) != 0) return Error::from_errno(errno, "listen on '" + path + "'");
  return std::unique_ptr<ControlServer>(new ControlServer(path, fd.release(), st.st_dev, st.st_ino));
}

Result<std::unique_ptr<ControlServer>> ControlServer::adopt(UniqueFd fd, const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Error::from_errno(errno, "control socket '" + path + "'");
  if (!S_ISSOCK(st.st_mode)) return Error(errc::invalid_argument, "control socket '" + path + "' is not a socket");
  int listening = 0;
  socklen_t length = sizeof listening;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || listening == 0) {
    return Error(errc::invalid_argument, "control socket: descriptor " + std::to_string(fd.get()) + " is not listening");
  }
  return std::unique_ptr<ControlServer>(new ControlServer(path, fd.release(), st.st_dev, st.st_ino));
}

int ControlServer::listen_fd() const noexcept { return impl_->listen_fd.get(); }

void ControlServer::start(Handler handler, std::shared_ptr<spdlog::logger> log) {
  impl_->handler = std::move(handler);
  impl_->log = std::move(log);
  impl_->acceptor = std::make_unique<stream_protocol::acceptor>(impl_->io);
  impl_->acceptor->assign(stream_protocol(), impl_->listen_fd.release());
  impl_->accept();
  impl_->thread = std::thread([this] {
    // A handler that throws (out of memory) costs that connection, not the
    // daemon: run() is resumed after it.
    for (;;) {
      try {
        impl_->io.run();
        return;
      } catch (...) {
      }
    }
  });
}

void ControlServer::unpublish() {
  MutexLock lock(path_mu_);
  struct stat st {};
  // Never another daemon's socket that took the path since.
  if (!path_.empty() && ::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) {
    ::unlink(path_.c_str());
  }
  path_.clear();
}

void ControlServer::keep_socket_file() {
  MutexLock lock(path_mu_);
  path_.clear();
}

ControlCounters ControlServer::counters() const {
  return {impl_->connections.load(), impl_->refused_peers.load(), impl_->oversized.load(), impl_->timed_out.load(),
          impl_->evicted.load()};
}

void ControlServer::stop() {
  if (!impl_) return;
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->sessions.clear();
  impl_->acceptor.reset();
  unpublish();
}

}  // namespace pagerfs
