// Exactly one reply per FUSE request. A reply frees the request, so a second
// one (say, an error reply from the boundary wrapper after a throw that came
// after the data was sent) would write through freed memory. A handler that
// takes a ReplyGuard sends its reply through it; the guard sends the first
// and refuses every later one, and the wrapper (fuse_ops.cc) asks it whether
// the request still needs an answer.
//
// Thread safety: none needed; a request is handled by one thread.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/uio.h>

namespace pagerfs {

class ReplyGuard {
 public:
  explicit ReplyGuard(fuse_req_t req) noexcept : req_(req) {}
  ReplyGuard(const ReplyGuard&) = delete;
  ReplyGuard& operator=(const ReplyGuard&) = delete;

  bool replied() const noexcept { return replied_; }

  // Each sends its reply and returns true, or sends nothing and returns
  // false when the request was answered already. The request counts as
  // answered even if sending fails: libfuse frees it either way.
  bool err(int errnum) noexcept {
    if (!claim()) return false;
    fuse_reply_err(req_, errnum);
    return true;
  }
  bool iov(const iovec* iov, int count) noexcept {
    if (!claim()) return false;
    fuse_reply_iov(req_, iov, count);
    return true;
  }
  // For a reply sent by other means: true the first time only.
  bool claim() noexcept {
    if (replied_) return false;
    replied_ = true;
    return true;
  }

 private:
  fuse_req_t req_;
  bool replied_ = false;
};

}  // namespace pagerfs
