#include "pagerfs/store/stored_packs.h"

#include "pagerfs/format/blob_reader.h"

namespace pagerfs {

void StoredPacks::add(const Digest& content, const image::PackedRef& ref,
                      const image::BlobRecord& pack) {
  contents_.emplace(content, ref);
  packs_.emplace(pack.digest, pack);
}

std::optional<image::PackedRef> StoredPacks::find(const Digest& content) const {
  const auto it = contents_.find(content);
  if (it == contents_.end()) return std::nullopt;
  return it->second;
}

std::optional<image::BlobRecord> StoredPacks::pack(const Digest& blob) const {
  const auto it = packs_.find(blob);
  if (it == packs_.end()) return std::nullopt;
  return it->second;
}

Result<StoredPacks> stored_packs(const Store& store) {
  // TODO(merge with Part B, manifest v2): v1 manifests cannot name a pack, so
  // there is nothing to reuse yet. After the merge: for each image of
  // store.list_images(), load it and add every content of its content table
  // whose blob is not its own digest (Content{digest, blob, offset}), with
  // the BlobRecord of that blob from the manifest's blob table, if
  // store.has_blob(blob) and offset + length <= the blob's byte_size. An
  // image that fails to load is skipped (verify reports it), not an error for
  // the pack. This reads every image's content table: O(contents of the
  // store) per pack, fine for thousands of images; a store-wide index of
  // packed contents would be the next step.
  (void)store;
  return StoredPacks{};
}

Result<image::BlobRecord> stored_blob_record(const Store& store, const Digest& digest) {
  PAGERFS_TRY(reader, BlobReader::open(store.blob_path(digest)));
  image::BlobRecord record;
  record.digest = reader->header().digest;
  record.byte_size = reader->byte_size();
  // TODO(merge with Part A, blob v2): record.table_digest = reader->table_digest();
  return record;
}

}  // namespace pagerfs
