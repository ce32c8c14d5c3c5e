// The `memory` layer: a bounded read cache in RAM (least recently used
// sectors evicted first).
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <memory>

#include "pagerfs/layers/layer.h"

namespace pagerfs {

std::shared_ptr<Layer> make_memory_layer(uint64_t budget_bytes, uint32_t sector_size = 4096);

}  // namespace pagerfs
