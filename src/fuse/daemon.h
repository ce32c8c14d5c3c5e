// The pagerfs mount daemon: `pagerfs STORE MOUNTPOINT [-f] [-d] [-s] [-o opt,...]`.
//
// Everything that can fail is checked before mounting (options, store,
// cache directory, control socket): a one-line error, exit status 1, and
// nothing mounted. Threads start only after daemonizing.
#pragma once

namespace pagerfs {

// Runs the daemon; returns the process exit status.
int run_daemon(int argc, char** argv);

}  // namespace pagerfs
