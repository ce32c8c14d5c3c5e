// Reading one OCI image layer: a tar archive (pax, GNU or ustar), plain or
// compressed with gzip or zstd, streamed through libarchive, one entry at a
// time, with the data of each file as a stream.
//
// Nothing of a layer is held whole, in memory or on disk: the raw bytes are
// pulled from an InputStream as libarchive asks for them, and hashed on the
// way; at the end of the archive the rest of the stream (padding, the
// compressor's trailer) is read too, and the digest of every raw byte is
// checked against the one the image names (and the size against the
// descriptor's). A layer is hostile input: each entry is checked (its path
// normalized, see layer_entry.h; its type one an image can hold; its owner,
// mtime and xattrs in range) and a truncated or corrupt archive is an error.
// Every error is one line that names the layer, and the entry when known:
// "layer 2 (sha256:abcd1234...): entry 'etc/x': a '..' component".
//
// Only libarchive's built-in decoders are enabled (never an external
// program), and only the tar format.
//
// Thread safety: a LayerReader is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "pagerfs/oci/layer_entry.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "pagerfs/util/file.h"

// libarchive's handles (archive.h is not exposed to users of this header).
struct archive;
struct archive_entry;

namespace pagerfs::oci {

struct LayerExpectations {
  std::optional<Digest> digest;  // of the raw bytes, as stored (compressed)
  std::optional<uint64_t> size;  // of the raw bytes
};

class LayerReader {
 public:
  // Reads the layer `raw`; `name` ("layer 2 (sha256:abcd1234...)") starts
  // every error message.
  static Result<std::unique_ptr<LayerReader>> open(std::unique_ptr<InputStream> raw, std::string name,
                                                   LayerExpectations expected);
  ~LayerReader();
  LayerReader(const LayerReader&) = delete;
  LayerReader& operator=(const LayerReader&) = delete;

  // The next entry, or nullopt at the end of the layer, once the whole raw
  // stream was read and its digest and size checked. The data of a file not
  // read before the next call is skipped.
  Result<std::optional<LayerEntry>> next();

  // The data of the file entry next() returned last: exactly its size bytes
  // (a short archive is an error naming the entry). A sparse file's holes,
  // the one at its end included, read as zeros; a sparse map out of order or
  // past the size is an error. Valid until next().
  InputStream& data();

  const std::string& name() const noexcept { return name_; }
  uint64_t raw_bytes() const noexcept { return raw_bytes_; }

 private:
  class EntryData;
  struct Callbacks;
  LayerReader(std::unique_ptr<InputStream> raw, std::string name, LayerExpectations expected);
  Result<LayerEntry> convert(::archive_entry* e, const std::string& raw_path);
  Result<void> finish();
  Error archive_error(const std::string& what) const;
  Error entry_error(const std::string& path, const std::string& what) const;
  std::span<std::byte> buffer() noexcept;

  std::unique_ptr<InputStream> raw_;
  std::string name_;
  LayerExpectations expected_;
  ::archive* archive_ = nullptr;
  std::unique_ptr<std::byte[]> buffer_;  // the raw read block
  Sha256 sha_;
  uint64_t raw_bytes_ = 0;
  std::optional<Error> raw_error_;  // a failure of `raw_`, reported instead of libarchive's
  bool done_ = false;
  std::string current_path_;
  std::unique_ptr<EntryData> data_;
};

}  // namespace pagerfs::oci
