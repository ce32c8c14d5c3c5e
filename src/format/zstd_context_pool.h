// A pool of reusable zstd contexts with an RAII handle.
//
// Making a zstd context costs allocations of hundreds of KiB; decoding a
// 128 KiB chunk takes ~100 us, so contexts are reused, never made per call.
// The pool keeps every context it made (at most one per thread that ever used
// it concurrently), so its size is bounded by peak concurrency.
//
// Thread safety: acquire() and Handle destruction may run on any thread.
#pragma once

#include <zstd.h>

#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace pagerfs {

template <class Ctx>
struct ZstdContextTraits;

template <>
struct ZstdContextTraits<ZSTD_CCtx> {
  static ZSTD_CCtx* create() { return ZSTD_createCCtx(); }
  static void destroy(ZSTD_CCtx* c) { ZSTD_freeCCtx(c); }
};

template <>
struct ZstdContextTraits<ZSTD_DCtx> {
  static ZSTD_DCtx* create() { return ZSTD_createDCtx(); }
  static void destroy(ZSTD_DCtx* c) { ZSTD_freeDCtx(c); }
};

template <class Ctx>
class ZstdContextPool {
  struct Deleter {
    void operator()(Ctx* c) const { ZstdContextTraits<Ctx>::destroy(c); }
  };
  using Owned = std::unique_ptr<Ctx, Deleter>;

 public:
  class Handle {
   public:
    Handle(ZstdContextPool* pool, Owned ctx) : pool_(pool), ctx_(std::move(ctx)) {}
    Handle(Handle&&) noexcept = default;
    Handle& operator=(Handle&&) = delete;
    ~Handle() {
      if (ctx_) pool_->release(std::move(ctx_));
    }
    Ctx* get() const noexcept { return ctx_.get(); }

   private:
    ZstdContextPool* pool_;
    Owned ctx_;
  };

  // Throws std::bad_alloc if zstd cannot allocate a context.
  Handle acquire() EXCLUDES(mu_) {
    {
      MutexLock lock(mu_);
      if (!free_.empty()) {
        Owned ctx = std::move(free_.back());
        free_.pop_back();
        return Handle(this, std::move(ctx));
      }
    }
    Owned ctx(ZstdContextTraits<Ctx>::create());
    if (!ctx) throw std::bad_alloc();
    return Handle(this, std::move(ctx));
  }

 private:
  void release(Owned ctx) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    free_.push_back(std::move(ctx));
  }

  Mutex mu_;
  std::vector<Owned> free_ GUARDED_BY(mu_);
};

// The process-wide pools (contexts carry no state between uses that matters:
// every use sets its parameters).
ZstdContextPool<ZSTD_CCtx>& compression_context_pool();
ZstdContextPool<ZSTD_DCtx>& decompression_context_pool();

}  // namespace pagerfs
