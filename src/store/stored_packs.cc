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
  // there is nothing to reuse yet. After the merge, with Part B's API:
  //   PAGERFS_TRY(names, store.list_images());
  //   for each name: auto m = store.load_image(name); if (!m) continue;
  //     std::map<Digest, image::BlobRecord> blobs;  // m->blob_at(k), k < m->blob_count()
  //     for k < m->content_count(): auto c = m->content_at(k);
  //       if (!c || !c->packed()) continue;
  //       keep it if blobs has c->blob, c->offset + c->length <= its byte_size
  //       and store.has_blob(c->blob): add(c->digest, {c->blob, c->offset}, that record).
  // An image that fails to load is skipped (verify reports it), not an error
  // for the pack. This reads every image's content table: O(contents of the
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
  // TODO(merge with Part A, blob v2): record.table_digest = reader->table_digest().
  return record;
}

}  // namespace pagerfs
