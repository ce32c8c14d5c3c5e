#include "oci/content_placer.h"

#include <map>

#include "oci/source_files.h"
#include "store/temp_blob.h"

namespace pagerfs::oci {

ContentPlacer::ContentPlacer(const Store& store, BlobStaging& staging, const StoredPacks& known,
                             ContentOptions options)
    : store_(store), staging_(staging), known_(known), options_(std::move(options)) {}

Result<Digest> ContentPlacer::add(InputStream& data, uint64_t size, const std::string& what) {
  if (size > 0 && size < options_.pack_threshold) return add_small(data, size, what);
  return add_whole(data, size, what);
}

void ContentPlacer::record_whole(const Store::PackResult& packed) {
  const Digest& digest = packed.header.digest;
  places_.try_emplace(digest, Place{});
  whole_.try_emplace(digest, image::BlobRecord{digest, packed.table_digest, packed.header.byte_size});
}

Result<Digest> ContentPlacer::add_whole(InputStream& data, uint64_t size, const std::string& what) {
  PAGERFS_TRY(packed, staging_.pack(data, options_.blob));
  if (packed.header.byte_size != size) {
    return Error(errc::corrupt_blob, what + ": " + std::to_string(packed.header.byte_size) +
                                         " bytes of data, but its header says " + std::to_string(size));
  }
  record_whole(packed);
  return packed.header.digest;
}

Result<Digest> ContentPlacer::add_small(InputStream& data, uint64_t size, const std::string& what) {
  PAGERFS_TRY(bytes, read_bounded_stream(data, size, what));
  if (bytes.size() != size) {
    return Error(errc::corrupt_blob, what + ": " + std::to_string(bytes.size()) +
                                         " bytes of data, but its header says " + std::to_string(size));
  }
  const Digest digest = Sha256::of(bytes);
  if (places_.contains(digest)) return digest;
  if (auto stored = existing_blob(store_.blob_path(digest))) {
    record_whole(*stored);
    return digest;
  }
  if (auto ref = known_.find(digest)) {
    places_.emplace(digest, Place{Place::Kind::reused, 0, 0, *ref});
    return digest;
  }
  if (packs_.empty() || packs_.back().record || pack_buffer_.size() + size > options_.pack_max) {
    PAGERFS_TRYV(flush());
    packs_.emplace_back();
  }
  places_.emplace(digest, Place{Place::Kind::new_pack, packs_.size() - 1, pack_buffer_.size(), {}});
  packs_.back().members.push_back(digest);
  pack_buffer_.insert(pack_buffer_.end(), bytes.begin(), bytes.end());
  return digest;
}

Result<void> ContentPlacer::flush() {
  if (packs_.empty() || packs_.back().record) return ok();
  PendingPack& pack = packs_.back();
  auto input = memory_input_stream(pack_buffer_, "pack");
  PAGERFS_TRY(packed, staging_.pack(*input, options_.blob));
  pack_buffer_.clear();
  pack.record = image::BlobRecord{packed.header.digest, packed.table_digest, packed.header.byte_size};
  if (pack.members.size() == 1) {
    // A pack of one content is that content's own blob.
    places_[pack.members.front()] = Place{};
    record_whole(packed);
  } else if (!packed.already_present) {
    ++new_packs_;
  }
  return ok();
}

Result<void> ContentPlacer::finish() { return flush(); }

Result<std::vector<image::BlobRecord>> ContentPlacer::place(std::vector<image::EntrySpec>& entries) const {
  std::map<Digest, image::BlobRecord> named;
  for (image::EntrySpec& e : entries) {
    if (e.type != image::EntryType::file) continue;
    const auto it = places_.find(e.digest);
    if (it == places_.end()) return Error(errc::invalid_argument, "file " + e.path + ": its content was not placed");
    const Place& place = it->second;
    switch (place.kind) {
      case Place::Kind::whole:
        named.emplace(e.digest, whole_.at(e.digest));
        break;
      case Place::Kind::new_pack: {
        const image::BlobRecord& record = packs_.at(place.pack).record.value();
        e.packed = image::PackedRef{record.digest, place.offset};
        named.emplace(record.digest, record);
        break;
      }
      case Place::Kind::reused: {
        e.packed = place.reused;
        auto record = known_.pack(place.reused.blob);
        if (!record) return Error(errc::invalid_argument, "file " + e.path + ": no record of its pack");
        named.emplace(record->digest, *record);
        break;
      }
    }
  }
  std::vector<image::BlobRecord> out;
  out.reserve(named.size());
  for (auto& [digest, record] : named) out.push_back(record);
  return out;
}

}  // namespace pagerfs::oci
