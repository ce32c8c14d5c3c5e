// ioctl: the file-attribute questions that lsattr(1) and overlayfs ask.
//
// Since Linux 5.13 the kernel turns FS_IOC_GETFLAGS and FS_IOC_FSGETXATTR
// (lsattr, and overlayfs copying a lower file's attributes up) into FUSE
// ioctls sent to the daemon. Without an answer they fail with EOPNOTSUPP,
// which lsattr reports as an error and which overlayfs must special-case.
// An image has no inode flags (no append-only, no immutable, no project
// quota), so both are answered "none". Never "immutable": overlayfs copies
// the flag to the upper file on copy-up, and the upper copy must stay
// writable. Every other ioctl is ENOTTY ("not for this file"), what a file
// system without it answers.
#include <linux/fs.h>

#include <cerrno>
#include <cstdint>

#include "fuse/filesystem.h"

namespace pagerfs {

void Filesystem::ioctl(fuse_req_t req, unsigned int cmd, size_t out_size) {
  switch (cmd) {
    case FS_IOC_GETFLAGS: {
      // The kernel asks for an int (fileattr), whatever _IOC_SIZE says.
      const uint32_t flags = 0;
      if (out_size < sizeof flags) {
        fuse_reply_err(req, EINVAL);
        return;
      }
      fuse_reply_ioctl(req, 0, &flags, sizeof flags);
      return;
    }
    case FS_IOC_FSGETXATTR: {
      const fsxattr none{};
      if (out_size < sizeof none) {
        fuse_reply_err(req, EINVAL);
        return;
      }
      fuse_reply_ioctl(req, 0, &none, sizeof none);
      return;
    }
    default:
      fuse_reply_err(req, ENOTTY);
      return;
  }
}

}  // namespace pagerfs
