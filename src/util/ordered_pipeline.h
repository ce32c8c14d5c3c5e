// Runs tasks on a thread pool and hands their results back in submission
// order, with at most `window` tasks in flight.
//
// This is how a single-pass reader (of a pipe, of a blob) keeps every core
// busy compressing or decoding while writing its output in order and holding
// at most `window` buffers in memory.
//
// Thread safety: one thread calls submit()/drain(); tasks run on pool threads
// and must not touch state that the submitting thread mutates.
#pragma once

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <deque>
#include <future>
#include <memory>
#include <utility>

#include "pagerfs/util/error.h"

namespace pagerfs {

template <class T>
class OrderedPipeline {
 public:
  OrderedPipeline(boost::asio::thread_pool& pool, size_t window)
      : pool_(pool), window_(window == 0 ? 1 : window) {}
  OrderedPipeline(const OrderedPipeline&) = delete;
  OrderedPipeline& operator=(const OrderedPipeline&) = delete;

  // Waits for every task still running, so none outlives what it references.
  ~OrderedPipeline() {
    for (auto& f : pending_) f.wait();
  }

  // Queues `task` (T()). When the window is full, first waits for the oldest
  // task and passes its result to `consume` (Result<void>(T&&)); a consume
  // error is returned and the pipeline should be abandoned.
  template <class Task, class Consume>
  Result<void> submit(Task&& task, Consume&& consume) {
    while (pending_.size() >= window_) {
      PAGERFS_TRYV(consume_oldest(consume));
    }
    auto packaged = std::make_shared<std::packaged_task<T()>>(std::forward<Task>(task));
    pending_.push_back(packaged->get_future());
    boost::asio::post(pool_, [packaged] { (*packaged)(); });
    return ok();
  }

  // Consumes every remaining result in order.
  template <class Consume>
  Result<void> drain(Consume&& consume) {
    while (!pending_.empty()) {
      PAGERFS_TRYV(consume_oldest(consume));
    }
    return ok();
  }

 private:
  template <class Consume>
  Result<void> consume_oldest(Consume& consume) {
    std::future<T> oldest = std::move(pending_.front());
    pending_.pop_front();
    return consume(oldest.get());
  }

  boost::asio::thread_pool& pool_;
  size_t window_;
  std::deque<std::future<T>> pending_;
};

}  // namespace pagerfs
