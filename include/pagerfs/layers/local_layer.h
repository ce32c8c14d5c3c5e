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
  // Whether the store holds every blob (the bottom of the stack). Over a
  // remote layer it is a partial copy: a blob it lacks is asked of the
  // remote (blob_size() is nullopt, read() marks nothing) instead of ENOENT.
  bool complete = true;
};

std::shared_ptr<Layer> make_local_layer(const Store& store, const LocalLayerOptions& options = {});

}  // namespace pagerfs
