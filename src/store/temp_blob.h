// Writing a store file under a temporary name and publishing it: what
// Store::pack, the manifest and config writers, and BlobStaging share.
//
// A file is written as DIR/.tmp-pack-XXXXXX (readers ignore names starting
// with ".tmp-"), then made read-only and owner-only and renamed into place;
// one that is never published is unlinked. write_temp_blob() writes a whole
// blob that way; existing_blob() says whether a whole blob is already at a
// path (a torn one, left by a crash before a deferred sync, is not).
//
// Thread safety: a TempFile is used by one thread; the functions are
// stateless.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "pagerfs/format/blob_writer.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/error.h"
#include "pagerfs/util/file.h"

namespace pagerfs {

// Store files are immutable and owner-only.
inline constexpr mode_t kStoreFileMode = 0400;

Result<void> fsync_dir(const std::string& path);

// A temporary file that is unlinked unless it was renamed into place.
class TempFile {
 public:
  TempFile() = default;
  TempFile(TempFile&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TempFile& operator=(TempFile&&) = delete;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile();

  // Creates DIR/.tmp-pack-XXXXXX; returns its fd (the caller owns it).
  Result<int> create(const std::string& dir);
  const std::string& path() const noexcept { return path_; }

  // Publishes the file written through `fd` (still open) as `final_path`,
  // read-only and owner-only. `durable`: the data and the rename are on disk
  // before this returns; otherwise a later sync makes them so.
  Result<void> install(int fd, const std::string& final_path, bool durable);

 private:
  std::string path_;
};

// A blob written to a temporary file, not yet published.
struct TempBlob {
  TempFile file;
  std::unique_ptr<WritableFile> output;  // owns the fd
  int fd = -1;
  Store::PackResult result;  // already_present is false
};
Result<TempBlob> write_temp_blob(const std::string& dir, InputStream& input, const BlobWriterOptions& options);

// The PackResult (already_present = true) of the whole blob at `path`, if
// there is one.
std::optional<Store::PackResult> existing_blob(const std::string& path);

}  // namespace pagerfs
