#include "pagerfs/store/inspection.h"

#include <algorithm>
#include <utility>

namespace pagerfs {

BlobLayout blob_layout(const BlobReader& r) {
  const format::BlobHeader& h = r.header();
  BlobLayout out;
  for (const format::ChunkEntry& e : r.chunks()) {
    out.frames_min = out.frames_total == 0 ? e.compressed_size : std::min<uint64_t>(out.frames_min, e.compressed_size);
    out.frames_max = std::max<uint64_t>(out.frames_max, e.compressed_size);
    out.frames_total += e.compressed_size;
  }
  out.ratio = r.file_size() == 0 ? 0.0 : static_cast<double>(h.byte_size) / static_cast<double>(r.file_size());
  out.frames_mean = h.chunk_count == 0 ? 0 : out.frames_total / h.chunk_count;
  out.last_chunk_size = h.chunk_count == 0 ? 0 : h.chunk_length(h.chunk_count - 1);
  return out;
}

namespace image {

const char* listing_type_name(EntryType type) noexcept {
  switch (type) {
    case EntryType::directory: return "dir";
    case EntryType::file: return "file";
    case EntryType::symlink: return "symlink";
    case EntryType::hardlink: return "hardlink";
    case EntryType::special: return "special";
  }
  return "?";
}

Result<Summary> summarize(const Manifest& m) {
  Summary s;
  s.entries = m.size();
  s.blobs = m.blob_count();
  s.contents = m.content_count();
  for (uint32_t i = 0; i < m.size(); ++i) {
    PAGERFS_TRY(e, m.entry(i));
    if (e.type != EntryType::file) continue;
    ++s.files;
    s.bytes += e.size;
  }
  return s;
}

const std::string& EntryPaths::of(const Entry& e) {
  if (e.index == 0) {
    path_.clear();
  } else {
    if (e.parent != parent_) dirs_.erase(std::exchange(parent_, e.parent));
    auto it = dirs_.find(e.parent);
    if (it == dirs_.end()) it = dirs_.emplace(e.parent, m_.path(e.parent)).first;  // not in order
    path_ = it->second;
    if (!path_.empty()) path_ += '/';
    path_ += e.name;
  }
  if (e.type == EntryType::directory) dirs_[e.index] = path_;
  return path_;
}

}  // namespace image
}  // namespace pagerfs
