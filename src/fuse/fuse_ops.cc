#include "fuse/fuse_ops.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <new>
#include <type_traits>

#include "fuse/filesystem.h"
#include "fuse/reply_guard.h"

namespace pagerfs {
namespace {

Filesystem& fs_of(fuse_req_t req) { return *static_cast<Filesystem*>(fuse_req_userdata(req)); }

// Runs `body`, which must reply exactly once; if it throws without having
// replied, replies with an errno instead (ENOMEM for std::bad_alloc, else
// EIO), and never a second time. Two kinds of body:
//   * body(fs, reply) sends its reply through the ReplyGuard, which knows
//     whether the request was answered when the exception came (read: its
//     data is sent before the read-ahead is pushed);
//   * body(fs) replies as its last step, so a throw means no reply yet.
template <class Body>
void guarded(fuse_req_t req, Filesystem::Op op, Body&& body) noexcept {
  Filesystem& fs = fs_of(req);
  const auto start = std::chrono::steady_clock::now();
  ReplyGuard reply(req);
  bool failed = false;
  try {
    if constexpr (std::is_invocable_v<Body&, Filesystem&, ReplyGuard&>) {
      body(fs, reply);
    } else {
      body(fs);
      reply.claim();
    }
  } catch (...) {
    const Error error = current_exception_error();
    if (reply.err(to_errno(error))) {
      failed = true;
      if (to_errno(error) != ENOMEM) spdlog::error("unexpected error in a FUSE operation: {}", error.message());
    } else {
      spdlog::error("unexpected error in a FUSE operation after its reply (ignored): {}", error.message());
    }
  }
  fs.count(op, std::chrono::steady_clock::now() - start, failed);
}

// Everything that would change the tree: the mount is read-only.
void deny(fuse_req_t req) {
  fs_of(req).count(Filesystem::Op::denied, {}, true);
  fuse_reply_err(req, EROFS);
}

}  // namespace

fuse_lowlevel_ops make_fuse_ops() {
  fuse_lowlevel_ops ops{};
  ops.init = [](void* userdata, fuse_conn_info* conn) { static_cast<Filesystem*>(userdata)->init(conn); };
  ops.lookup = [](fuse_req_t req, fuse_ino_t parent, const char* name) {
    guarded(req, Filesystem::Op::lookup, [&](Filesystem& fs) { fs.lookup(req, parent, name); });
  };
  ops.getattr = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    guarded(req, Filesystem::Op::getattr, [&](Filesystem& fs) { fs.getattr(req, ino); });
  };
  ops.readlink = [](fuse_req_t req, fuse_ino_t ino) {
    guarded(req, Filesystem::Op::readlink, [&](Filesystem& fs) { fs.readlink(req, ino); });
  };
  ops.open = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, Filesystem::Op::open, [&](Filesystem& fs) { fs.open(req, ino, fi); });
  };
  ops.read = [](fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
    guarded(req, Filesystem::Op::read, [&](Filesystem& fs, ReplyGuard& reply) { fs.read(reply, ino, size, off, fi); });
  };
  ops.release = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, Filesystem::Op::release, [&](Filesystem& fs) { fs.release(req, ino, fi); });
  };
  ops.opendir = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, Filesystem::Op::opendir, [&](Filesystem& fs) { fs.opendir(req, ino, fi); });
  };
  ops.readdir = [](fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
    guarded(req, Filesystem::Op::readdir, [&](Filesystem& fs) { fs.readdir(req, ino, size, off, fi); });
  };
  ops.readdirplus = [](fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
    guarded(req, Filesystem::Op::readdirplus,
            [&](Filesystem& fs) { fs.readdirplus(req, ino, size, off, fi); });
  };
  ops.releasedir = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, Filesystem::Op::releasedir, [&](Filesystem& fs) { fs.releasedir(req, ino, fi); });
  };
  // FORGET has no reply; forgetting frees memory and cannot fail.
  ops.forget = [](fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    Filesystem& fs = fs_of(req);
    fs.forget(ino, nlookup);
    fs.count(Filesystem::Op::forget, {}, false);
    fuse_reply_none(req);
  };
  ops.forget_multi = [](fuse_req_t req, size_t count, fuse_forget_data* forgets) {
    Filesystem& fs = fs_of(req);
    for (size_t i = 0; i < count; ++i) fs.forget(forgets[i].ino, forgets[i].nlookup);
    fs.count(Filesystem::Op::forget, {}, false);
    fuse_reply_none(req);
  };
  ops.statfs = [](fuse_req_t req, fuse_ino_t ino) {
    guarded(req, Filesystem::Op::statfs, [&](Filesystem& fs) { fs.statfs(req, ino); });
  };
  ops.getxattr = [](fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
    guarded(req, Filesystem::Op::getxattr, [&](Filesystem& fs) { fs.getxattr(req, ino, name, size); });
  };
  ops.listxattr = [](fuse_req_t req, fuse_ino_t ino, size_t size) {
    guarded(req, Filesystem::Op::listxattr, [&](Filesystem& fs) { fs.listxattr(req, ino, size); });
  };
  ops.ioctl = [](fuse_req_t req, fuse_ino_t, unsigned int cmd, void*, fuse_file_info*, unsigned, const void*, size_t,
                size_t out_size) {
    guarded(req, Filesystem::Op::ioctl, [&](Filesystem& fs) { fs.ioctl(req, cmd, out_size); });
  };
  ops.setattr = [](fuse_req_t req, fuse_ino_t, struct stat*, int, fuse_file_info*) { deny(req); };
  ops.mknod = [](fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) { deny(req); };
  ops.mkdir = [](fuse_req_t req, fuse_ino_t, const char*, mode_t) { deny(req); };
  ops.unlink = [](fuse_req_t req, fuse_ino_t, const char*) { deny(req); };
  ops.rmdir = [](fuse_req_t req, fuse_ino_t, const char*) { deny(req); };
  ops.symlink = [](fuse_req_t req, const char*, fuse_ino_t, const char*) { deny(req); };
  ops.rename = [](fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) { deny(req); };
  ops.link = [](fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) { deny(req); };
  ops.write = [](fuse_req_t req, fuse_ino_t, const char*, size_t, off_t, fuse_file_info*) { deny(req); };
  ops.create = [](fuse_req_t req, fuse_ino_t, const char*, mode_t, fuse_file_info*) { deny(req); };
  ops.setxattr = [](fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) { deny(req); };
  ops.removexattr = [](fuse_req_t req, fuse_ino_t, const char*) { deny(req); };
  ops.fallocate = [](fuse_req_t req, fuse_ino_t, int, off_t, off_t, fuse_file_info*) { deny(req); };
  return ops;
}

}  // namespace pagerfs
