#include "pagerfs/oci/importer.h"

#include <algorithm>

#include "oci/content_placer.h"
#include "pagerfs/oci/layer_reader.h"
#include "pagerfs/oci/layer_tree.h"
#include "pagerfs/store/blob_staging.h"
#include "pagerfs/store/stored_packs.h"
#include "store/pack_planner.h"
#include "util/quoted.h"

namespace pagerfs::oci {
namespace {

// Reads every layer into `tree`, placing file content with `placer`.
Result<uint64_t> read_layers(const ImageSource& source, LayerTree& tree, ContentPlacer& placer,
                             const ImportOptions& options) {
  uint64_t entries = 0;
  ImportProgress progress;
  progress.layers = source.layers.size();
  for (size_t i = 0; i < source.layers.size(); ++i) {
    const LayerSource& layer = source.layers[i];
    PAGERFS_TRY(opened, layer.open());
    PAGERFS_TRY(reader, LayerReader::open(std::move(opened.raw), layer.name, opened.expected));
    tree.begin_layer(static_cast<uint32_t>(i), layer.name);
    progress.layer = i;
    for (;;) {
      PAGERFS_TRY(next, reader->next());
      if (!next) break;
      const LayerEntry& entry = *next;
      Digest content;
      if (entry.kind == EntryKind::file && !is_whiteout(entry.path)) {
        const std::string what = layer.name + ": entry " + pagerfs::quoted(entry.path);
        PAGERFS_TRY(digest, placer.add(reader->data(), entry.size, what));
        content = digest;
      }
      PAGERFS_TRYV(tree.apply(entry, content));
      ++entries;
      if (options.on_progress) {
        progress.raw_bytes = reader->raw_bytes();
        progress.entries = entries;
        options.on_progress(progress);
      }
    }
  }
  return entries;
}

}  // namespace

Result<ImportResult> import_image(const Store& store, const std::string& name, const ImageSource& source,
                                  const ImportOptions& options) {
  PAGERFS_TRYV(image::validate_image_name(name));
  PAGERFS_TRYV(validate(options.blob));
  PAGERFS_TRYV(validate(PackPlanOptions{options.pack_threshold, options.pack_max}));
  const std::string context = "import " + source.description;

  // Staging directories of imports that died.
  if (auto removed = BlobStaging::remove_stale(store); !removed) return removed.error().with_context(context);
  PAGERFS_TRY(known, stored_packs(store));
  PAGERFS_TRY(staging, BlobStaging::create(store));
  ContentPlacer placer(store, *staging, known, {options.blob, options.pack_threshold, options.pack_max});
  LayerTree tree;
  ImportResult result;
  result.layers = source.layers.size();
  PAGERFS_TRY(layer_entries, read_layers(source, tree, placer, options));
  result.layer_entries = layer_entries;
  PAGERFS_TRYV(placer.finish());

  std::vector<image::EntrySpec> entries = tree.entries();
  PAGERFS_TRY(blobs, placer.place(entries));
  for (const image::EntrySpec& e : entries) {
    if (e.type != image::EntryType::file) continue;
    ++result.files;
    result.content_bytes += e.size;
  }
  result.entries = entries.size();
  auto manifest = image::encode(entries, blobs);
  if (!manifest) return manifest.error().with_context(context);

  std::vector<Digest> named;
  for (const image::BlobRecord& r : blobs) {
    if (staging->staged(r.digest)) named.push_back(r.digest);
  }
  PAGERFS_TRY(dropped, staging->commit(named));
  result.new_blobs = named.size() - dropped.size();
  result.new_packs = placer.new_packs();
  if (!dropped.empty()) {
    // The store got some of them from someone else meanwhile: the manifest
    // anchors the blobs the store holds.
    for (image::BlobRecord& r : blobs) {
      if (std::find(dropped.begin(), dropped.end(), r.digest) == dropped.end()) continue;
      PAGERFS_TRY(record, stored_blob_record(store, r.digest));
      r = record;
    }
    manifest = image::encode(std::move(entries), std::move(blobs));
    if (!manifest) return manifest.error().with_context(context);
  }
  result.manifest_bytes = manifest.value().size();
  PAGERFS_TRYV(store.write_image_config(name, source.config));
  PAGERFS_TRYV(store.write_image(name, manifest.value()));
  return result;
}

}  // namespace pagerfs::oci
