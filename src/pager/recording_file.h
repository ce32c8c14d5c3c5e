// The blob file as the pager opens it from a stack with an untrusted layer:
// reads whole sectors through the stack and records them, so that once the
// header and seek table they carried are verified (anchored, or the whole
// blob checked), the pager can put them in the caches (fill_recorded()).
// Without this a remote blob's header and table would be fetched from the
// remote at every open, since the stack caches nothing untrusted.
//
// Thread safety: read_exact() may be called concurrently; fill_recorded()
// from any thread.
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "pagerfs/layers/layer_stack.h"
#include "util/mutex.h"

namespace pagerfs {

class RecordingFile final : public RandomAccessFile {
 public:
  // Records at most this many bytes: a seek table is 56 bytes per chunk, so
  // this covers blobs of up to ~300,000 chunks (37 GiB at 128 KiB).
  static constexpr uint64_t kMaxRecorded = 16u << 20;

  RecordingFile(std::shared_ptr<const LayerStack> stack, BlobExtent blob)
      : stack_(std::move(stack)), blob_(blob), name_(blob.digest.str()) {}

  Result<void> read_exact(uint64_t offset, std::span<std::byte> out) const override {
    uint64_t begin = 0;
    PAGERFS_TRY(sectors, stack_->read_whole_sectors(blob_, offset, out.size(), &begin));
    if (!out.empty()) std::memcpy(out.data(), sectors.data() + (offset - begin), out.size());
    MutexLock lock(mu_);
    if (recorded_bytes_ + sectors.size() <= kMaxRecorded) {
      recorded_bytes_ += sectors.size();
      recorded_.push_back({begin, std::move(sectors)});
    }
    return ok();
  }
  uint64_t size() const noexcept override { return blob_.size; }
  const std::string& name() const noexcept override { return name_; }

  // Caches what was read: call only once it is verified.
  void fill_recorded() const {
    MutexLock lock(mu_);
    for (const Read& read : recorded_) stack_->fill(blob_, read.offset, read.bytes);
  }

 private:
  struct Read {
    uint64_t offset;
    std::vector<std::byte> bytes;
  };
  std::shared_ptr<const LayerStack> stack_;
  BlobExtent blob_;
  std::string name_;
  mutable Mutex mu_;
  mutable std::vector<Read> recorded_ GUARDED_BY(mu_);
  mutable uint64_t recorded_bytes_ GUARDED_BY(mu_) = 0;
};

}  // namespace pagerfs
