// The control commands a mount answers on its socket: one request line
// (pagerfs/control/control.h) in, the answer's body out.
//
// Thread safety: called from the control server's thread; Filesystem's
// control methods are thread-safe.
#pragma once

#include <string>

#include "pagerfs/util/error.h"

namespace pagerfs {

class ControlServer;
class Filesystem;

// stats (with the control server's own counters), dump, drop-caches, prewarm.
Result<std::string> handle_command(Filesystem& fs, const ControlServer& server, const std::string& line);

}  // namespace pagerfs
