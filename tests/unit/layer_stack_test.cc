#include "pagerfs/layers/layer_stack.h"

#include <gtest/gtest.h>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/format/blob_writer.h"
#include "layers/fault_layer.h"
#include "pagerfs/layers/memory_layer.h"
#include "support/fake_layer.h"
#include "support/test_data.h"

namespace pagerfs {
namespace {

using testing::FakeLayer;
using Call = FakeLayer::Call;
constexpr uint32_t kSector = 4096;

TEST(SectorMarker, RunsOfEveryShape) {
  SectorMarker m(10, 8);
  EXPECT_TRUE(m.none());
  EXPECT_EQ(m.runs(false), (std::vector<SectorMarker::Run>{{10, 8}}));
  EXPECT_TRUE(m.runs(true).empty());
  m.mark(11);
  m.mark(14, 2);
  m.mark(17);
  EXPECT_EQ(m.marked_count(), 4u);
  EXPECT_EQ(m.runs(true), (std::vector<SectorMarker::Run>{{11, 1}, {14, 2}, {17, 1}}));
  EXPECT_EQ(m.runs(false), (std::vector<SectorMarker::Run>{{10, 1}, {12, 2}, {16, 1}}));
  m.mark(10, 8);
  EXPECT_TRUE(m.all());
  m.unmark(12, 3);
  EXPECT_EQ(m.marked_count(), 5u);
  EXPECT_EQ(m.runs(false), (std::vector<SectorMarker::Run>{{12, 3}}));
}

class LayerStackTest : public ::testing::Test {
 protected:
  // A blob of 10 sectors whose last sector is short (not sector-aligned).
  void SetUp() override {
    content_ = testing::random_bytes(10 * kSector - 42);
    digest_ = Sha256::of(content_);
    bottom_ = std::make_shared<FakeLayer>("bottom", true, false);
    bottom_->add(digest_, content_);
  }

  std::shared_ptr<LayerStack> stack(std::vector<std::shared_ptr<Layer>> layers) {
    auto s = LayerStack::create(std::move(layers), nullptr);
    EXPECT_TRUE(s) << s.error().message();
    return s.value();
  }

  std::vector<std::byte> read(const LayerStack& s, uint64_t offset, uint64_t length) {
    std::vector<std::byte> out(length);
    auto r = s.read(blob(), offset, out);
    EXPECT_TRUE(r) << r.error().message();
    return out;
  }

  BlobExtent blob() const { return {digest_, content_.size()}; }
  std::vector<std::byte> slice(uint64_t offset, uint64_t length) const {
    return {content_.begin() + static_cast<ptrdiff_t>(offset),
            content_.begin() + static_cast<ptrdiff_t>(offset + length)};
  }

  std::vector<std::byte> content_;
  Digest digest_;
  std::shared_ptr<FakeLayer> bottom_;
};

TEST_F(LayerStackTest, ValidatesTheStack) {
  EXPECT_FALSE(LayerStack::create({}, nullptr));
  auto cache = std::make_shared<FakeLayer>("cache", false, true);
  auto incomplete = std::make_shared<FakeLayer>("partial", false, false);
  auto odd = std::make_shared<FakeLayer>("odd", true, false, 512);
  auto bottom_cache = LayerStack::create({bottom_, cache}, nullptr);
  ASSERT_FALSE(bottom_cache);
  EXPECT_NE(bottom_cache.error().message().find("bottom layer (cache)"), std::string::npos);
  EXPECT_FALSE(LayerStack::create({cache, incomplete}, nullptr));
  auto mixed = LayerStack::create({cache, odd}, nullptr);
  ASSERT_FALSE(mixed);
  EXPECT_NE(mixed.error().message().find("512-byte sectors"), std::string::npos);
  EXPECT_TRUE(LayerStack::create({cache, bottom_}, nullptr));
}

struct MarkerShape {
  const char* name;
  std::set<uint64_t> cached;                // sectors the top layer holds
  std::vector<Call> expected_bottom_reads;  // exactly the gaps, coalesced
};

class MarkerShapeTest : public LayerStackTest, public ::testing::WithParamInterface<MarkerShape> {};

TEST_P(MarkerShapeTest, LowerLayersReadOnlyTheGaps) {
  auto top = std::make_shared<FakeLayer>("top", false, true);
  if (!GetParam().cached.empty()) top->add(digest_, content_, GetParam().cached);
  auto s = stack({top, bottom_});
  EXPECT_TRUE(read(*s, 0, content_.size()) == content_);
  EXPECT_EQ(bottom_->reads(), GetParam().expected_bottom_reads);
  // What came from below filled the cache, run for run; now it holds everything.
  EXPECT_EQ(top->fills(), GetParam().expected_bottom_reads);
  std::set<uint64_t> all;
  for (uint64_t i = 0; i < 10; ++i) all.insert(i);
  EXPECT_EQ(top->present(digest_), all);
  EXPECT_TRUE(read(*s, 0, content_.size()) == content_);
  EXPECT_EQ(bottom_->reads().size(), GetParam().expected_bottom_reads.size()) << "second read is all hits";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MarkerShapeTest,
    ::testing::Values(MarkerShape{"none", {}, {{0, 10}}},
                      MarkerShape{"all", {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {}},
                      MarkerShape{"holes", {0, 1, 4, 5, 6, 9}, {{2, 2}, {7, 2}}},
                      MarkerShape{"alternating", {0, 2, 4, 6, 8}, {{1, 1}, {3, 1}, {5, 1}, {7, 1}, {9, 1}}},
                      MarkerShape{"edges", {0, 9}, {{1, 8}}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(LayerStackTest, UnalignedRangesAndTheShortLastSector) {
  auto s = stack({make_memory_layer(1 << 20), bottom_});
  const std::pair<uint64_t, uint64_t> ranges[] = {
      {0, 1}, {1, 4096}, {4095, 2}, {5000, 20000}, {content_.size() - 1, 1},
      {content_.size() - 5000, 5000}, {9 * kSector, kSector - 42}, {0, content_.size()}};
  for (const auto& [offset, length] : ranges) {
    EXPECT_TRUE(read(*s, offset, length) == slice(offset, length)) << offset << "+" << length;
  }
  std::vector<std::byte> past(10);
  EXPECT_FALSE(s->read(blob(), content_.size() - 5, past));
  EXPECT_FALSE(s->read(blob(), UINT64_MAX - 3, past));
}

TEST_F(LayerStackTest, ThreeTiersFillEveryCacheAbove) {
  auto memory = make_memory_layer(1 << 20);
  auto middle = std::make_shared<FakeLayer>("middle", false, true);
  middle->add(digest_, content_, {3, 4});
  auto s = stack({memory, middle, bottom_});
  EXPECT_TRUE(read(*s, 0, content_.size()) == content_);
  // The middle cache served 3-4; memory got everything; the middle got the rest.
  EXPECT_EQ(middle->fills(), (std::vector<Call>{{0, 3}, {5, 5}}));
  EXPECT_EQ(memory->stats().snapshot().bytes_filled, content_.size());
  const auto before = bottom_->reads().size();
  EXPECT_TRUE(read(*s, 0, content_.size()) == content_);
  EXPECT_EQ(bottom_->reads().size(), before);
  EXPECT_EQ(memory->stats().snapshot().sectors_hit, 10u);
}

TEST_F(LayerStackTest, MemoryLayerNeverOverwritesAndKeepsItsBudget) {
  auto memory = make_memory_layer(3 * kSector);
  std::vector<std::byte> other(2 * kSector, std::byte{0x5a});
  ASSERT_TRUE(memory->write_no_overwrite(blob(), 0, slice(0, 2 * kSector)));
  ASSERT_TRUE(memory->write_no_overwrite(blob(), 0, other));  // ignored: held already
  std::vector<std::byte> out(2 * kSector);
  SectorMarker marker(0, 2);
  ASSERT_TRUE(memory->read(blob(), out, marker));
  EXPECT_TRUE(marker.all());
  EXPECT_TRUE(out == slice(0, 2 * kSector));
  ASSERT_TRUE(memory->write_no_overwrite(blob(), 4, slice(4 * kSector, 3 * kSector)));
  const auto stats = memory->stats().snapshot();
  EXPECT_LE(stats.bytes_cached, 3u * kSector);
  EXPECT_EQ(stats.evictions, 2u);
}

TEST_F(LayerStackTest, AFailingCacheFallsThrough) {
  auto faults = std::make_shared<FaultConfig>();
  auto memory = make_memory_layer(1 << 20);
  auto cache = make_fault_layer(memory, faults);
  auto s = stack({cache, bottom_});
  EXPECT_TRUE(read(*s, 0, content_.size()) == content_);
  faults->fail_reads = true;
  faults->fail_fills = true;
  EXPECT_TRUE(read(*s, 0, content_.size()) == content_);
  EXPECT_TRUE(read(*s, 100, 9000) == slice(100, 9000));
  const auto stats = cache->stats().snapshot();
  EXPECT_EQ(stats.errors, 2u);
  EXPECT_EQ(stats.fill_errors, 2u);
  faults->fail_reads = false;
  EXPECT_TRUE(read(*s, 0, content_.size()) == content_);
  EXPECT_EQ(cache->stats().snapshot().sectors_hit, 10u) << "filled by the first read";
}

TEST_F(LayerStackTest, BottomFailuresAreErrors) {
  auto faults = std::make_shared<FaultConfig>();
  auto s = stack({make_fault_layer(bottom_, faults)});
  faults->fail_reads = true;
  std::vector<std::byte> out(100);
  auto failed = s->read(blob(), 0, out);
  ASSERT_FALSE(failed);
  EXPECT_EQ(to_errno(failed.error()), EIO);
  faults->fail_reads = false;
  faults->short_reads = true;
  std::vector<std::byte> big(5 * kSector);
  auto partial = s->read(blob(), 0, big);
  ASSERT_FALSE(partial);
  EXPECT_NE(partial.error().message().find("no layer holds sectors 2..4"), std::string::npos)
      << partial.error().message();
  faults->short_reads = false;
  EXPECT_TRUE(s->read(blob(), 0, big));
}

TEST_F(LayerStackTest, BelowCachesNeitherReadsNorFillsTheCaches) {
  auto top = std::make_shared<FakeLayer>("top", false, true);
  std::vector<std::byte> junk(content_.size(), std::byte{0xee});
  top->add(digest_, junk, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  auto s = stack({top, bottom_});
  std::vector<std::byte> out(content_.size());
  ASSERT_TRUE(s->read(blob(), 0, out, LayerStack::ReadMode::below_caches));
  EXPECT_TRUE(out == content_);
  EXPECT_TRUE(top->reads().empty());
  EXPECT_TRUE(top->fills().empty());
  EXPECT_TRUE(read(*s, 0, kSector) == std::vector<std::byte>(kSector, std::byte{0xee})) << "a normal read uses it";
}

TEST_F(LayerStackTest, InvalidateDropsTheSectorsOfARangeFromEveryCache) {
  auto memory = make_memory_layer(1 << 20);
  auto middle = std::make_shared<FakeLayer>("middle", false, true);
  auto s = stack({memory, middle, bottom_});
  EXPECT_TRUE(read(*s, 0, content_.size()) == content_);
  s->invalidate(blob(), kSector + 100, kSector);  // overlaps sectors 1 and 2
  EXPECT_EQ(middle->invalidations(), (std::vector<Call>{{1, 2}}));
  EXPECT_EQ(bottom_->invalidations(), (std::vector<Call>{{1, 2}})) << "the store may drop handles";
  EXPECT_EQ(memory->stats().snapshot().sectors_invalidated, 2u);
  EXPECT_EQ(memory->stats().snapshot().bytes_cached, 8u * kSector - 42);
  EXPECT_FALSE(middle->present(digest_).contains(1));
  EXPECT_FALSE(middle->present(digest_).contains(2));
  EXPECT_TRUE(middle->present(digest_).contains(3));
  const size_t before = bottom_->reads().size();
  EXPECT_TRUE(read(*s, 0, content_.size()) == content_);
  ASSERT_EQ(bottom_->reads().size(), before + 1);
  EXPECT_EQ(bottom_->reads().back(), (Call{1, 2})) << "only the forgotten sectors come from below";
  s->invalidate(blob(), content_.size() - 1, 100);  // clamped to the blob
  EXPECT_EQ(middle->invalidations().back(), (Call{9, 1}));
}

TEST_F(LayerStackTest, FillStoresTheWholeSectorsOfVerifiedBytesOnly) {
  auto top = std::make_shared<FakeLayer>("top", false, true);
  auto s = stack({top, bottom_});
  // [100, 100 + 3 sectors) covers sectors 1 and 2 whole, 0 and 3 in part.
  s->fill(blob(), 100, slice(100, 3 * kSector));
  EXPECT_EQ(top->fills(), (std::vector<Call>{{1, 2}}));
  // Bytes that end the blob fill its short last sector too.
  s->fill(blob(), 8 * kSector + 5, slice(8 * kSector + 5, content_.size() - 8 * kSector - 5));
  EXPECT_EQ(top->fills().back(), (Call{9, 1}));
  s->fill(blob(), 10, slice(10, 100));  // no whole sector: nothing
  EXPECT_EQ(top->fills().size(), 2u);
  EXPECT_EQ(top->present(digest_), (std::set<uint64_t>{1, 2, 9}));
  const auto held = top->content(digest_);
  EXPECT_TRUE(std::equal(held.begin() + kSector, held.begin() + 3 * kSector, content_.begin() + kSector));
  EXPECT_TRUE(std::equal(held.begin() + 9 * kSector, held.end(), content_.begin() + 9 * kSector));
  EXPECT_TRUE(read(*s, kSector, 2 * kSector) == slice(kSector, 2 * kSector));
  EXPECT_TRUE(bottom_->reads().empty()) << "served by the filled cache";
}

TEST_F(LayerStackTest, BlobReaderWorksThroughTheStack) {
  const auto data = testing::compressible_bytes(300000);
  std::vector<std::byte> blob_file;
  auto input = memory_input_stream(data);
  auto output = memory_writable_file(&blob_file);
  BlobWriterOptions options;
  options.chunk_size = 16384;
  auto header = write_blob(*input, *output, options);
  ASSERT_TRUE(header);
  bottom_->add(header.value().header.digest, blob_file);
  auto memory = make_memory_layer(1 << 20);
  auto s = stack({memory, bottom_});
  auto file = open_blob_through(s, header.value().header.digest);
  ASSERT_TRUE(file) << file.error().message();
  auto reader = BlobReader::open(std::move(file).value());
  ASSERT_TRUE(reader) << reader.error().message();
  std::vector<std::byte> back(data.size());
  ASSERT_TRUE(reader.value()->read(0, back));
  EXPECT_TRUE(back == data);
  EXPECT_GT(memory->stats().snapshot().bytes_cached, 0u);
  EXPECT_FALSE(open_blob_through(s, Digest()));
}

}  // namespace
}  // namespace pagerfs
