// pagerfs: mount a pagerfs store (see pagerfs(8)).
#include <cstdio>
#include <exception>

#include "fuse/daemon.h"

int main(int argc, char** argv) {
  try {
    return pagerfs::run_daemon(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pagerfs: %s\n", e.what());
    return 1;
  }
}
