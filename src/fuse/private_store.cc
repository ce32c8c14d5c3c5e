#include "fuse/private_store.h"

#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "pagerfs/store/store.h"
#include "util/quoted.h"

namespace pagerfs {

Result<std::unique_ptr<PrivateStore>> PrivateStore::create(const std::string& cache_dir) {
  std::string parent = cache_dir;
  if (parent.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    parent = tmp != nullptr && tmp[0] == '/' ? tmp : "/tmp";
  }
  std::string root = parent + (cache_dir.empty() ? "/pagerfs-mount-XXXXXX" : "/mount-XXXXXX");
  if (::mkdtemp(root.data()) == nullptr) {
    return Error::from_errno(errno, "create the store's directory in " + pagerfs::quoted(parent));
  }
  std::unique_ptr<PrivateStore> made(new PrivateStore(root, cache_dir.empty() ? "" : cache_dir + "/manifests"));
  PAGERFS_TRYV(Store::create(root));
  return made;
}

PrivateStore::~PrivateStore() {
  std::error_code ignored;  // nothing to do about a failure at exit
  std::filesystem::remove_all(root_, ignored);
}

}  // namespace pagerfs
