#include "oci/source_files.h"

#include <fcntl.h>

#include "util/quoted.h"
#include "util/safe_open.h"
#include "util/unique_fd.h"

namespace pagerfs::oci {
namespace {

class OwnedFileStream final : public InputStream {
 public:
  OwnedFileStream(UniqueFd fd, const std::string& path) : fd_(std::move(fd)), stream_(fd_input_stream(fd_.get(), path)) {}
  Result<size_t> read_some(std::span<std::byte> out) override { return stream_->read_some(out); }
  const std::string& name() const noexcept override { return stream_->name(); }

 private:
  UniqueFd fd_;
  std::unique_ptr<InputStream> stream_;
};

}  // namespace

Result<std::vector<std::byte>> read_bounded_stream(InputStream& input, uint64_t max_bytes, const std::string& what) {
  std::vector<std::byte> out;
  std::vector<std::byte> block(64u << 10);
  for (;;) {
    PAGERFS_TRY(n, input.read_some(block));
    if (n == 0) return out;
    if (out.size() + n > max_bytes) {
      return Error(errc::corrupt_blob, what + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
    out.insert(out.end(), block.begin(), block.begin() + static_cast<std::ptrdiff_t>(n));
  }
}

Result<std::unique_ptr<InputStream>> open_file_stream(const std::string& path) {
  PAGERFS_TRY(fd, open_regular_file(path, O_RDONLY));
  return std::unique_ptr<InputStream>(new OwnedFileStream(std::move(fd), path));
}

Result<std::vector<std::byte>> read_bounded_file(const std::string& path, uint64_t max_bytes) {
  PAGERFS_TRY(stream, open_file_stream(path));
  return read_bounded_stream(*stream, max_bytes, quoted(path));
}

std::string layer_name(size_t index, const std::optional<Digest>& digest) {
  std::string name = "layer " + std::to_string(index + 1);
  if (digest) name += " (sha256:" + digest->hex().substr(0, 12) + "...)";
  return name;
}

}  // namespace pagerfs::oci
