// The `local` layer: the store directory on a local disk (the bottom of the
// stack). Reads with pread through a bounded cache of open files.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "pagerfs/layers/layer.h"
#include "pagerfs/store/store.h"

namespace pagerfs {

struct LocalLayerOptions {
  uint32_t sector_size = 4096;
  size_t max_open_files = 256;
};

std::shared_ptr<Layer> make_local_layer(const Store& store, const LocalLayerOptions& options = {});

}  // namespace pagerfs
