// The one function that fills the FUSE low-level operations table.
#pragma once

#include <fuse_lowlevel.h>

namespace pagerfs {

// Operations whose userdata (fuse_session_new's last argument) is a Filesystem*.
// Every operation runs inside a boundary that counts it and guarantees exactly
// one reply: an exception becomes ENOMEM or EIO, never a crash or a hang.
fuse_lowlevel_ops make_fuse_ops();

}  // namespace pagerfs
