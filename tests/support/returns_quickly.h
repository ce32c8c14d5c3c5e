// For tests of code that must not block on a FIFO: runs a call on a thread of
// its own and, if it has not returned within 5 s (an open() waiting for the
// other end of a FIFO), fails the test and opens the FIFOs from both ends to
// set the waiter free. A hang fails the test instead of hanging the suite.
//
// Thread safety: each call is independent.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

namespace pagerfs::testing {

template <class Fn>
auto returns_quickly(const std::vector<std::string>& fifos, Fn fn) {
  auto future = std::async(std::launch::async, fn);
  if (future.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    ADD_FAILURE() << "blocked on a FIFO, e.g. " << (fifos.empty() ? "?" : fifos.front());
    for (int round = 0; round < 50 && future.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready;
         ++round) {
      for (const std::string& fifo : fifos) {
        const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
        const int r = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
        if (w >= 0) ::close(w);
        if (r >= 0) ::close(r);
      }
    }
  }
  return future.get();
}

template <class Fn>
auto returns_quickly(const std::string& fifo, Fn fn) {
  return returns_quickly(std::vector<std::string>{fifo}, std::move(fn));
}

}  // namespace pagerfs::testing
