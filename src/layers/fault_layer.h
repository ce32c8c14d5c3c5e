// The `fault` layer: wraps a layer and injects failures on command, so tests
// (and `-o debug_faults`-style experiments) can prove that every I/O failure
// is handled: errors, short reads, latency, corruption, failing fills.
//
// Thread safety: all methods may be called concurrently; the FaultConfig
// knobs are atomics and may be changed while reads run.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>

#include "pagerfs/layers/layer.h"

namespace pagerfs {

struct FaultConfig {
  std::atomic<bool> fail_reads{false};       // every read fails with `error`
  std::atomic<uint32_t> fail_every{0};       // if N > 0, every Nth read fails
  std::atomic<int> error{EIO};
  std::atomic<bool> short_reads{false};      // serve (mark) only the first half of the sectors
  std::atomic<bool> corrupt{false};          // flip one bit in every read's data
  std::atomic<uint64_t> latency_us{0};       // sleep before every read
  std::atomic<bool> fail_fills{false};       // write_no_overwrite fails with `error`
  std::atomic<bool> throw_bad_alloc{false};  // every read throws std::bad_alloc (out of memory below)
  std::atomic<uint64_t> reads_seen{0};       // reads that reached the layer
};

std::shared_ptr<Layer> make_fault_layer(std::shared_ptr<Layer> inner,
                                        std::shared_ptr<FaultConfig> config);

}  // namespace pagerfs
