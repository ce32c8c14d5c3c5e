#include "pagerfs/store/verify.h"

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/format/chunk_stream.h"

namespace pagerfs {

Result<format::BlobHeader> verify_blob(const std::string& path,
                                       const std::optional<Digest>& expected_name,
                                       unsigned threads) {
  // Opened as a store file: a FIFO or a symlink under the name is refused
  // at once (errc::not_a_regular_file), never waited on or followed.
  PAGERFS_TRY(reader, BlobReader::open(path));
  const format::BlobHeader& header = reader->header();
  Sha256 sha;
  PAGERFS_TRYV(stream_chunks(*reader, 0, reader->chunk_count(), threads,
                             [&](uint64_t, std::span<const std::byte> data) -> Result<void> {
                               sha.update(data);
                               return ok();
                             }));
  const Digest actual = sha.finish();
  if (actual != header.digest) {
    return Error(errc::digest_mismatch, "'" + path + "': content is " + actual.str() +
                                            ", header says " + header.digest.str());
  }
  if (expected_name && *expected_name != actual) {
    return Error(errc::digest_mismatch,
                 "'" + path + "': content is " + actual.str() + ", file name says " +
                     expected_name->str());
  }
  return header;
}

Result<format::BlobHeader> StoreVerifier::verify_blob(const Digest& digest) {
  auto verified = pagerfs::verify_blob(catalog_.store().blob_path(digest), digest, threads_);
  if (!verified) return verified;
  // Its table digest, for the images that record it (the header and seek
  // table only: the content was just checked).
  auto reader = BlobReader::open(catalog_.store().blob_path(digest));
  if (!reader) return reader.error();
  whole_[digest] = verified.value().byte_size;
  anchors_[digest] = reader.value()->table_digest();
  return verified;
}

bool is_corruption(const std::error_code& code) noexcept {
  // A FIFO, device or symlink under a blob's or an image's name is damage to
  // the store like a torn file, not a failure to read it.
  return code == errc::corrupt_blob || code == errc::checksum_mismatch ||
         code == errc::digest_mismatch || code == errc::unsupported_format ||
         code == errc::not_a_regular_file;
}

}  // namespace pagerfs
