// A pagerfs store: a directory of content-addressed blob files.
//
//   STORE/blobs/sha256/<64 lowercase hex>   one blob, named by the SHA-256 of
//                                           its decompressed content
//   STORE/images/<name>                     one image manifest (optional; see
//                                           pagerfs/store/image_manifest.h)
//   STORE/configs/<name>                    the OCI image config (JSON) of an
//                                           image imported from a container
//                                           image (optional; pagerfs-store(5))
//
// Blobs are immutable once written. They are written under a temporary name
// in the same directory, fsync'd, and rename()d into place, so a crash never
// leaves a partial file under a blob's name; leftover temporaries (names
// starting with ".tmp-") are ignored by readers. Image manifests are written
// the same way, after the blobs they name are on disk.
//
// Blob files and manifests are 0400 and the store's directories (blobs/,
// blobs/sha256/, images/) are created 0700: a blob may hold a file that was
// private in a packed tree. Every file and directory inside is opened without
// blocking and without following a symbolic link, and refused unless it is a
// regular file (a directory): a FIFO under a blob's name cannot hang a reader.
//
// Thread safety: a Store is immutable after open(); all methods may be called
// concurrently (pack() of the same content twice is safe: rename is atomic).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/format/blob_format.h"
#include "pagerfs/format/blob_writer.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "pagerfs/util/file.h"
#include "pagerfs/store/image_manifest.h"
#include "pagerfs/store/prefetch_profile.h"

namespace pagerfs {

class Store {
 public:
  // Opens an existing store; errc::not_a_store if `root` has no blobs/sha256.
  static Result<Store> open(const std::string& root);
  // Opens a store, creating its directories if they are missing.
  static Result<Store> create(const std::string& root);

  const std::string& root() const noexcept { return root_; }
  std::string blobs_dir() const;
  std::string blob_path(const Digest& digest) const;
  // "blobs/sha256/HEX": where a blob lives relative to any copy of a store,
  // on disk or published by a web server.
  static std::string blob_relative_path(const Digest& digest);

  // The store's directories that grant any access to group or others (mode &
  // 077), which expose the content of every blob: for a warning. Never
  // changed by pagerfs: a store may be shared on purpose.
  std::vector<std::string> loose_directories() const;

  // Every blob in the store, sorted by digest.
  Result<std::vector<Digest>> list_blobs() const;

  // Whether a blob is present and whole: its file exists and its header and
  // seek table are valid (a blob torn by a crash before it was synced is not).
  bool has_blob(const Digest& digest) const;

  std::string images_dir() const;
  std::string image_path(std::string_view name) const;
  // The names of the store's images, sorted (none if there is no images/).
  Result<std::vector<std::string>> list_images() const;
  // Reads and validates image `name` (not its blobs).
  Result<image::Manifest> load_image(std::string_view name) const;
  // Writes (or atomically replaces) image `name`, durably.
  Result<void> write_image(std::string_view name, std::span<const std::byte> manifest) const;

  // The OCI image config of image `name` (entrypoint, cmd, env, ...), kept
  // beside its manifest by `pagerfsctl import`. Read whole, at most
  // kMaxImageConfigBytes; a missing config is ENOENT with a bare message.
  static constexpr uint64_t kMaxImageConfigBytes = 4u << 20;
  std::string configs_dir() const;
  std::string image_config_path(std::string_view name) const;
  Result<std::vector<std::byte>> load_image_config(std::string_view name) const;
  // Writes (or atomically replaces) it, durably; remove: none is left (a
  // missing one is not an error).
  Result<void> write_image_config(std::string_view name, std::span<const std::byte> config) const;
  Result<void> remove_image_config(std::string_view name) const;

  // The prefetch profile of image `name` (prefetch_profile.h), kept beside
  // its manifest: nullopt if it has none; a malformed one is an error.
  std::string profiles_dir() const;
  std::string profile_path(std::string_view name) const;
  Result<std::optional<profile::Profile>> load_profile(std::string_view name) const;
  // Writes (or atomically replaces) it, durably; remove: none is left (a
  // missing one is not an error).
  Result<void> write_profile(std::string_view name, const profile::Profile& profile) const;
  Result<void> remove_profile(std::string_view name) const;

  // How a blob reaches the disk: `each` fsyncs every blob before publishing
  // it; `deferred` leaves that to one sync() by the caller (packing a tree of
  // many small files), before anything that names the blobs is written.
  enum class Durability { each, deferred };
  // Flushes everything written to the store's file system (syncfs).
  Result<void> sync() const;

  struct PackResult {
    format::BlobHeader header;  // header.digest names the blob
    Digest table_digest;        // format::table_digest of the blob in the store (the
                                // kept one when already_present: it may be v1)
    uint64_t file_size = 0;     // of the blob file
    bool already_present = false;  // the store had it; nothing was written
  };
  // Writes `input` as a blob (atomically, durably); keeps an existing blob.
  Result<PackResult> pack(InputStream& input, const BlobWriterOptions& options,
                          Durability durability = Durability::each) const;

 private:
  explicit Store(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

}  // namespace pagerfs
