#include "pagerfs/store/stored_packs.h"

#include <unordered_map>

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
  // Every image's content table: O(contents of the store) per pack, fine
  // for thousands of images; a store-wide index of packed contents would be
  // the next step. An image that fails to load is skipped (verify reports
  // it), not an error for the pack; so is a record that does not fit its
  // pack, or a pack the store no longer holds whole.
  PAGERFS_TRY(names, store.list_images());
  StoredPacks packs;
  std::unordered_map<Digest, bool, DigestHash> usable;  // pack -> in the store, whole
  for (const std::string& name : names) {
    auto loaded = store.load_image(name);
    if (!loaded) continue;
    const image::Manifest& m = loaded.value();
    std::unordered_map<Digest, image::BlobRecord, DigestHash> blobs;
    for (uint32_t k = 0; k < m.blob_count(); ++k) {
      if (auto b = m.blob_at(k)) blobs.emplace(b.value().digest, b.value());
    }
    for (uint32_t k = 0; k < m.content_count(); ++k) {
      auto c = m.content_at(k);
      if (!c || !c.value().packed() || packs.find(c.value().digest)) continue;
      const image::Content& content = c.value();
      auto b = blobs.find(content.blob);
      if (b == blobs.end() || content.offset > b->second.byte_size || content.length > b->second.byte_size - content.offset) continue;
      auto [it, inserted] = usable.try_emplace(content.blob, false);
      if (inserted) it->second = store.has_blob(content.blob);
      if (it->second) packs.add(content.digest, {content.blob, content.offset}, b->second);
    }
  }
  return packs;
}

Result<image::BlobRecord> stored_blob_record(const Store& store, const Digest& digest) {
  PAGERFS_TRY(reader, BlobReader::open(store.blob_path(digest)));
  image::BlobRecord record;
  record.digest = reader->header().digest;
  record.byte_size = reader->byte_size();
  record.table_digest = reader->table_digest();
  return record;
}

}  // namespace pagerfs
