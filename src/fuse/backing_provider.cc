#include "fuse/backing_provider.h"

#include <fcntl.h>

#include "util/safe_open.h"

namespace pagerfs {
namespace {

class DirectoryBackingProvider final : public BackingProvider {
 public:
  explicit DirectoryBackingProvider(std::string dir) : dir_(std::move(dir)) {}

  std::optional<UniqueFd> backing_for(const OpenFile& file) override {
    auto fd = open_regular_file(dir_ + "/" + file.content.hex(), O_RDONLY);
    if (!fd) return std::nullopt;
    return std::move(fd).value();
  }

 private:
  const std::string dir_;
};

}  // namespace

std::shared_ptr<BackingProvider> make_directory_backing_provider(std::string dir) {
  return std::make_shared<DirectoryBackingProvider>(std::move(dir));
}

}  // namespace pagerfs
