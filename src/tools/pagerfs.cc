// pagerfs: mount a pagerfs store (see pagerfs(8)).
#include <cstdio>
#include <exception>

#include "fuse/daemon.h"
#include "fuse/supervisor.h"

int main(int argc, char** argv) {
  try {
    if (pagerfs::is_supervisor_command(argc, argv)) return pagerfs::run_supervisor(argc, argv);
    return pagerfs::run_daemon(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pagerfs: %s\n", e.what());
    return 1;
  }
}
