#include "remote/manifest_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/temp_blob.h"
#include "util/posix_io.h"
#include "util/quoted.h"
#include "util/safe_open.h"
#include "util/unique_fd.h"

namespace pagerfs {
namespace {

Result<void> make_private_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return Error::from_errno(errno, "create " + quoted(path));
  return ok();
}

}  // namespace

Result<ManifestCache> ManifestCache::open(const std::string& dir) {
  PAGERFS_TRYV(make_private_dir(dir));
  PAGERFS_TRYV(make_private_dir(dir + "/sha256"));
  return ManifestCache(dir + "/sha256");
}

std::optional<std::vector<std::byte>> ManifestCache::get(const Digest& digest, uint64_t max_bytes) const {
  const std::string file = path(digest);
  auto fd = open_regular_file(file, O_RDONLY);
  if (!fd) return std::nullopt;
  std::vector<std::byte> bytes;
  std::vector<std::byte> buffer(1 << 20);
  for (;;) {
    auto n = pread_some(fd.value().get(), buffer, bytes.size(), file);
    if (!n) return std::nullopt;
    if (n.value() == 0) break;
    if (bytes.size() + n.value() > max_bytes) return std::nullopt;
    bytes.insert(bytes.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n.value()));
  }
  if (Sha256::of(bytes) != digest) {
    ::unlink(file.c_str());  // damaged on disk: fetched again
    return std::nullopt;
  }
  return bytes;
}

Result<void> ManifestCache::put(const Digest& digest, std::span<const std::byte> bytes) const {
  const std::string target = path(digest);
  if (::access(target.c_str(), F_OK) == 0) return ok();
  TempFile temp;
  PAGERFS_TRY(raw_fd, temp.create(dir_));
  const UniqueFd fd(raw_fd);
  PAGERFS_TRYV(pwrite_all(fd.get(), bytes, 0, temp.path()));
  return temp.install(fd.get(), target, /*durable=*/false);
}

}  // namespace pagerfs
