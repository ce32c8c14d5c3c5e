// The control commands a mount answers (see fuse/control_commands.h): its
// counters as JSON, a dump of its state, prewarm and drop-caches.
#include <cstring>

#include "fuse/filesystem.h"

#include <unistd.h>
#include "pagerfs/remote/remote_layer.h"

namespace pagerfs {
namespace {

const char* op_name(Filesystem::Op op) {
  static constexpr const char* kNames[] = {"lookup",   "getattr", "readlink",    "open",
                                           "read",     "release", "opendir",     "readdir",
                                           "readdirplus", "statfs", "getxattr", "listxattr", "forget",
                                           "releasedir", "ioctl", "denied"};
  return kNames[static_cast<size_t>(op)];
}

nlohmann::json histogram_json(const LatencyHistogram::Snapshot& h) {
  return {{"count", h.count}, {"mean_us", h.mean_us()}, {"p50_us", h.quantile_us(0.5)},
          {"p99_us", h.quantile_us(0.99)}};
}

// A remote layer's own counters: each mirror's (its URL without
// credentials), and the outage state (remote_layer.h).
nlohmann::json remote_json(const RemoteStats& remote) {
  nlohmann::json mirrors = nlohmann::json::array();
  for (const RemoteMirrorStats& m : remote.mirrors) {
    mirrors.push_back({{"url", m.url},
                       {"requests", m.requests},
                       {"bytes", m.bytes},
                       {"errors", m.errors},
                       {"retries", m.retries},
                       {"failovers", m.failovers},
                       {"cooling_down", m.cooling_down},
                       {"latency", histogram_json(m.latency)}});
  }
  return {{"mirrors", mirrors}, {"outage", remote.outage}, {"failed_fast", remote.failed_fast}};
}

}  // namespace

nlohmann::json Filesystem::stats_json() const {
  nlohmann::json fuse;
  for (size_t i = 0; i < ops_.size(); ++i) {
    const OpStats& s = ops_[i];
    fuse[op_name(static_cast<Op>(i))] = {{"calls", s.calls.load()}, {"errors", s.errors.load()},
                                         {"latency", histogram_json(s.latency.snapshot())}};
  }
  const PageCacheSupplier::Stats supplied = supplier_.stats();
  fuse["notify_store"] = {{"calls", supplied.stored}, {"bytes", supplied.bytes},
                          {"dropped", supplied.dropped}, {"failures", supplied.failed},
                          {"out_of_memory", supplied.out_of_memory}};
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& layer : stack_->layers()) {
    const LayerStats::Snapshot s = layer->stats().snapshot();
    layers.push_back({{"type", std::string(layer->type())},
                      {"reads", s.reads},
                      {"sectors_hit", s.sectors_hit},
                      {"sectors_missed", s.sectors_missed},
                      {"bytes_read", s.bytes_read},
                      {"fills", s.fills},
                      {"bytes_filled", s.bytes_filled},
                      {"evictions", s.evictions},
                      {"bytes_evicted", s.bytes_evicted},
                      {"errors", s.errors},
                      {"fill_errors", s.fill_errors},
                      {"bytes_cached", s.bytes_cached},
                      {"sectors_invalidated", s.sectors_invalidated},
                      {"blobs_cached", s.blobs_cached},
                      {"requests", s.requests},
                      {"retries", s.retries},
                      {"failovers", s.failovers},
                      {"read_latency", histogram_json(s.read_latency)}});
    if (const auto remote = remote_stats(*layer)) layers.back().update(remote_json(*remote));
  }
  const PagerStats p = pager_->stats();
  nlohmann::json failures = nlohmann::json::object();
  for (const auto& [err, n] : p.failures) failures[std::strerror(err)] = n;
  nlohmann::json pager = {{"faults", p.faults},
                          {"bytes_requested", p.bytes_requested},
                          {"bytes_supplied", p.bytes_supplied},
                          {"chunks_decoded", p.chunks_decoded},
                          {"readahead_chunks", p.readahead_chunks},
                          {"random_faults", p.random_faults},
                          {"chunk_cache_hits", p.chunk_cache_hits},
                          {"chunk_cache_misses", p.chunk_cache_misses},
                          {"coalesced_waits", p.coalesced_waits},
                          {"fetches", p.fetches},
                          {"bytes_fetched", p.bytes_fetched},
                          {"chunk_cache_bytes", p.chunk_cache_bytes},
                          {"open_blobs", p.open_blobs},
                          {"kept_blobs", p.kept_blobs},
                          {"integrity_retries", p.integrity_retries},
                          {"integrity_repairs", p.integrity_repairs},
                          {"after_reply_failures", p.after_reply_failures},
                          {"anchor_mismatches", p.anchor_mismatches},
                          {"failures", failures},
                          {"decode_latency", histogram_json(p.decode_latency)},
                          {"fault_latency", histogram_json(p.fault_latency)}};
  const ImageCatalog::Stats images = catalog_.stats();
  const Prefetcher::Stats f = prefetcher_ ? prefetcher_->stats() : Prefetcher::Stats{};
  nlohmann::json prefetch = {{"mode", prefetch_mode_ == PrefetchMode::all       ? "all"
                                      : prefetch_mode_ == PrefetchMode::profile ? "profile"
                                                                                : "none"},
                             {"images", f.images},
                             {"ranges_done", f.ranges_done},
                             {"bytes_done", f.bytes_done},
                             {"ranges_failed", f.ranges_failed},
                             {"ranges_queued", f.ranges_queued},
                             {"recorded_reads_dropped", recorder_.dropped()}};
  return {{"store", store_.root()},
          {"blob_inodes", view_.blob_inode_count()},
          {"blob_header_reads", blob_header_reads_.load()},
          {"images", view_.image_count()},
          {"image_entry_errors", view_.image_entry_errors()},
          {"images_failed", images.images_failed},
          {"image_load_failures", images.image_load_failures},
          {"fuse", fuse},
          {"pager", pager},
          {"prefetch", prefetch},
          {"passthrough", passthrough_json()},
          {"layers", layers},
          {"takeover", {{"supervised", journal_ != nullptr},
                        {"generation", generation_},
                        {"pid", ::getpid()},
                        {"inherited_handles", inherited_handles_.load()},
                        {"journal_write_errors", journal_ ? journal_->write_errors() : 0},
                        {"upgrades_failed", journal_ ? TakeoverJournal::failed_upgrades(journal_->fd()) : 0}}}};
}

std::string Filesystem::dump() const {
  std::string out = "pagerfs: store " + store_.root() + ", " + std::to_string(view_.blob_inode_count()) + " blob inode(s) held, " +
                    std::to_string(view_.image_count()) + " image(s)\n";
  out += pager_->dump();
  for (const auto& layer : stack_->layers()) {
    const auto s = layer->stats().snapshot();
    out += "layer " + std::string(layer->type()) + ": " + std::to_string(s.reads) + " reads, " +
           std::to_string(s.errors) + " errors, " + std::to_string(s.bytes_cached) + " bytes cached\n";
  }
  return out;
}

Result<void> Filesystem::prewarm(const std::string& path, uint64_t offset, uint64_t length) {
  // A blob needs no inode (the view knows only those the kernel holds).
  constexpr std::string_view kBlobPrefix = "blobs/sha256/";
  std::optional<Digest> digest;
  std::optional<image::Content> content;  // where an image file's bytes are
  if (path.starts_with(kBlobPrefix) && Digest::is_canonical_hex(std::string_view(path).substr(kBlobPrefix.size()))) {
    digest = Digest::parse(std::string_view(path).substr(kBlobPrefix.size())).value();
    if (!stack_->blob_size(*digest)) {
      PAGERFS_TRY(packed, view_.find_packed(*digest));  // a content inside a pack
      content = packed;
    }
  } else {
    // Images load on first use: a prewarm may be the first.
    constexpr std::string_view kImagesPrefix = "images/";
    if (path.starts_with(kImagesPrefix)) {
      const std::string_view rest = std::string_view(path).substr(kImagesPrefix.size());
      const std::string_view name = rest.substr(0, rest.find('/'));
      auto known = view_.lookup(MountView::kImagesDir, name);
      if (!name.empty() && known && !known.value()) (void)load_late_image(name);
    }
    PAGERFS_TRY(ino, view_.resolve(path));
    if (ino) {
      PAGERFS_TRY(node, view_.node(*ino));
      if (node.kind == MountView::Node::Kind::image_file) {
        digest = node.digest;
        content = node.content;
      }
    }
  }
  if (!digest) return Error(errc::invalid_argument, "'" + path + "' is not a file in this mount");
  // A packed file: its range of the pack.
  const uint64_t base = content ? content->offset : 0;
  PAGERFS_TRY(blob, content ? pager_->open(content->blob, content->anchor()) : pager_->open(*digest));
  const uint64_t size = content ? content->length : blob->byte_size();
  const uint64_t end = std::min(range::saturating_add(offset, length), size);
  if (offset >= end) return ok();
  return pager_->prewarm(*blob, {{base + offset, std::min(base + end, blob->byte_size())}});
}

void Filesystem::start_recording() { recorder_.start(); }

Result<std::string> Filesystem::stop_recording(const std::string& image, bool save) {
  auto reads = recorder_.stop();
  if (!reads) return Error(errc::invalid_argument, "no recording was started");
  auto known = view_.lookup(MountView::kImagesDir, image);
  if (!known || !known.value()) return Error::from_errno(ENOENT, "image '" + image + "' is not in this mount");
  PAGERFS_TRY(blobs, view_.image_blobs(image));
  std::erase_if(reads.value(), [&](const profile::Item& read) { return !blobs.contains(read.blob); });
  const profile::Profile recorded = profile::coalesce(reads.value());
  if (save && remote_only_) {
    return Error(errc::invalid_argument, "this mount has no store of its own to save the profile in: give --output");
  }
  if (save) PAGERFS_TRYV(store_.write_profile(image, recorded));
  return profile::encode(recorded);
}

Result<void> Filesystem::drop_caches() {
  pager_->drop_chunk_cache();
  return stack_->drop_caches();
}

}  // namespace pagerfs
