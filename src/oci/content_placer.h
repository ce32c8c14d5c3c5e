// Where the content of each file of an imported image goes, decided as the
// layers stream by: the store's own blob, a pack another image names, a
// place in a new pack blob, or a new whole blob. Everything new is written
// into the import's BlobStaging, never into the store itself.
//
// The rules are the packer's (store/pack_planner.h), applied in one pass
// because a layer can be read only once: a file below `pack_threshold` bytes
// is read into memory and hashed; if the store, a pack of another image or
// this import already has its content, that is reused; otherwise it is
// appended to the current pack (kept in memory, at most `pack_max` bytes,
// written when full and at the end; a pack of one file is that file's own
// blob). A larger file, or an empty one, is streamed from the layer straight
// into a staged blob. Equal content is stored once.
//
// Thread safety: a ContentPlacer is used by one thread at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "pagerfs/format/blob_writer.h"
#include "pagerfs/store/blob_staging.h"
#include "pagerfs/store/image_manifest.h"
#include "pagerfs/store/store.h"
#include "pagerfs/store/stored_packs.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "pagerfs/util/file.h"

namespace pagerfs::oci {

struct ContentOptions {
  BlobWriterOptions blob;
  uint64_t pack_threshold = 0;
  uint64_t pack_max = 0;
};

class ContentPlacer {
 public:
  ContentPlacer(const Store& store, BlobStaging& staging, const StoredPacks& known, ContentOptions options);

  // Places the `size` bytes of `data` (a file of a layer; `what` names it);
  // returns the digest of that content.
  Result<Digest> add(InputStream& data, uint64_t size, const std::string& what);
  // Writes the last pack.
  Result<void> finish();

  // Points the files of `entries` at their content (sets `packed` where it
  // is in a pack) and returns the record of every blob they name, sorted by
  // digest. After finish().
  Result<std::vector<image::BlobRecord>> place(std::vector<image::EntrySpec>& entries) const;

  uint64_t new_packs() const noexcept { return new_packs_; }

 private:
  struct Place {
    enum class Kind : uint8_t { whole, new_pack, reused } kind = Kind::whole;
    size_t pack = 0;          // new_pack: index into packs_
    uint64_t offset = 0;      // new_pack: in that pack
    image::PackedRef reused;  // reused
  };
  struct PendingPack {
    std::vector<Digest> members;
    std::optional<image::BlobRecord> record;  // once written
  };
  Result<void> flush();
  Result<Digest> add_small(InputStream& data, uint64_t size, const std::string& what);
  Result<Digest> add_whole(InputStream& data, uint64_t size, const std::string& what);
  void record_whole(const Store::PackResult& packed);

  const Store& store_;
  BlobStaging& staging_;
  const StoredPacks& known_;
  ContentOptions options_;
  std::unordered_map<Digest, Place, DigestHash> places_;
  std::unordered_map<Digest, image::BlobRecord, DigestHash> whole_;  // records of whole blobs named
  std::vector<PendingPack> packs_;
  std::vector<std::byte> pack_buffer_;  // the content of packs_.back() while it is open
  uint64_t new_packs_ = 0;
};

}  // namespace pagerfs::oci
