// What a store already holds for the packer to reuse: the contents that sit
// in packs other images name (content digest -> pack and offset), with the
// BlobRecord of each such pack; and the BlobRecord of a whole blob.
//
// Thread safety: StoredPacks is a value (const methods may be called
// concurrently); stored_packs() and stored_blob_record() only read the store.
#pragma once

#include <optional>
#include <unordered_map>

#include "pagerfs/store/image_manifest.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"

namespace pagerfs {

class StoredPacks {
 public:
  // Records that content `content` sits at `ref` in pack `pack` (pack.digest
  // == ref.blob). The first place recorded for a content is kept.
  void add(const Digest& content, const image::PackedRef& ref, const image::BlobRecord& pack);

  std::optional<image::PackedRef> find(const Digest& content) const;
  // The record of a pack added (by its digest).
  std::optional<image::BlobRecord> pack(const Digest& blob) const;
  size_t size() const noexcept { return contents_.size(); }

 private:
  std::unordered_map<Digest, image::PackedRef, DigestHash> contents_;
  std::unordered_map<Digest, image::BlobRecord, DigestHash> packs_;
};

// The packed contents named by the images of `store` whose packs the store
// holds (a pack that is missing or torn is not reused).
Result<StoredPacks> stored_packs(const Store& store);

// The BlobRecord of blob `digest` of `store`, read from its header and seek
// table; an error if it is missing or malformed.
Result<image::BlobRecord> stored_blob_record(const Store& store, const Digest& digest);

}  // namespace pagerfs
