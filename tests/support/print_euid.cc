// Prints the effective user ID it runs with: the multi-user tests pack it
// setuid-root into an image and run it as another user, so its output says
// whether the mount honoured the bit.
#include <unistd.h>

#include <cstdio>

int main() {
  std::printf("%u\n", static_cast<unsigned>(::geteuid()));
  return 0;
}
