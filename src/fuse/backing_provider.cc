#include "fuse/backing_provider.h"

#include "fuse/materializer.h"

namespace pagerfs {
namespace {

class MaterializedBackingProvider final : public BackingProvider {
 public:
  explicit MaterializedBackingProvider(std::shared_ptr<Materializer> materializer)
      : materializer_(std::move(materializer)) {}

  std::optional<UniqueFd> backing_for(const OpenFile& file) override {
    auto backing = materializer_->backing_for_open(file.content, {file.blob, file.offset, file.length});
    if (!backing) return std::nullopt;
    return UniqueFd(backing->release());
  }

  void read_whole(const OpenFile& file) override {
    materializer_->read_whole(file.content, {file.blob, file.offset, file.length});
  }

  nlohmann::json stats() const override {
    const Materializer::Stats m = materializer_->stats();
    const MaterializedFilesStats f = materializer_->file_stats();
    return {{"materialized_files", f.files},
            {"materialized_bytes", f.bytes},
            {"budget_bytes", f.budget_bytes},
            {"made_at_open", m.materialized_on_open},
            {"made_after_whole_read", m.materialized_in_background},
            {"make_failures", m.failures},
            {"queued", m.queued},
            {"making", m.making},
            {"dropped", m.dropped},
            {"found", f.hits},
            {"evictions", f.evictions},
            {"damaged_found", f.verification_failures},
            {"bytes_verified", f.bytes_verified}};
  }

 private:
  const std::shared_ptr<Materializer> materializer_;
};

}  // namespace

std::shared_ptr<BackingProvider> make_materialized_backing_provider(std::shared_ptr<Materializer> materializer) {
  return std::make_shared<MaterializedBackingProvider>(std::move(materializer));
}

}  // namespace pagerfs
