// The fixture of the pager tests (pager_test.cc, pager_failures_test.cc): a
// pager over a fake store of blobs packed in memory, behind a fault layer,
// with an optional fake cache above it.
#pragma once

#include "pagerfs/pager/pager.h"

#include <gtest/gtest.h>

#include <set>

#include <new>
#include <random>
#include <thread>

#include "pagerfs/format/blob_writer.h"
#include "layers/fault_layer.h"
#include "support/fake_layer.h"
#include "support/test_data.h"
#include "util/fault_injection.h"

namespace pagerfs {

inline constexpr uint32_t kChunk = 16 * 1024;

// A pager over a fake store holding blobs packed in memory.
class PagerTest : public ::testing::Test {
 protected:
  Digest add_blob(const std::vector<std::byte>& content, uint32_t chunk_size = kChunk) {
    std::vector<std::byte> file;
    auto input = memory_input_stream(content);
    auto output = memory_writable_file(&file);
    BlobWriterOptions options;
    options.chunk_size = chunk_size;
    auto header = write_blob(*input, *output, options);
    EXPECT_TRUE(header);
    store_->add(header.value().header.digest, file);
    files_[header.value().header.digest] = file;
    return header.value().header.digest;
  }

  // A pager over the (fault-wrapped) store; `cached`: with cache_ above it.
  std::shared_ptr<Pager> make_pager(PagerOptions options = {}, bool cached = false) {
    options.threads = 2;
    if (options.readahead == PagerOptions{}.readahead) options.readahead = 64 * 1024;
    std::vector<std::shared_ptr<Layer>> layers;
    if (cached) layers.push_back(cache_);
    layers.push_back(make_fault_layer(store_, faults_));
    auto stack = LayerStack::create(std::move(layers), nullptr);
    EXPECT_TRUE(stack);
    auto pager = Pager::create(stack.value(), options);
    EXPECT_TRUE(pager) << pager.error().message();
    return pager.value();
  }

  void TearDown() override { fault::disarm_all(); }

  // The sectors of blob file `d` that hold chunk `c`'s frame.
  std::set<uint64_t> frame_sectors(const PagedBlob& blob, uint64_t c) const {
    const format::ChunkEntry& e = blob.reader().chunks()[c];
    std::set<uint64_t> out;
    for (uint64_t s = e.offset / 4096; s * 4096 < e.offset + e.compressed_size; ++s) out.insert(s);
    return out;
  }

  std::shared_ptr<testing::FakeLayer> store_ = std::make_shared<testing::FakeLayer>("store", true, false);
  std::shared_ptr<testing::FakeLayer> cache_ = std::make_shared<testing::FakeLayer>("cache", false, true);
  std::shared_ptr<FaultConfig> faults_ = std::make_shared<FaultConfig>();
  std::map<Digest, std::vector<std::byte>> files_;
};

// The expected answer: content bytes, zeros to the page end, nothing after.
inline std::vector<std::byte> expected(const std::vector<std::byte>& content, uint64_t offset, uint64_t length) {
  const range::ByteRange want = range::requested_range(offset, length, content.size());
  std::vector<std::byte> out(want.size(), std::byte{0});
  for (uint64_t i = want.begin; i < std::min<uint64_t>(want.end, content.size()); ++i) out[i - want.begin] = content[i];
  return out;
}

}  // namespace pagerfs
