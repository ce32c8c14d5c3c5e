#include "pagerfs/verify.h"

#include "pagerfs/blob_reader.h"
#include "pagerfs/chunk_stream.h"

namespace pagerfs {

Result<format::BlobHeader> verify_blob(const std::string& path,
                                       const std::optional<Digest>& expected_name,
                                       unsigned threads) {
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

bool is_corruption(const std::error_code& code) noexcept {
  return code == errc::corrupt_blob || code == errc::checksum_mismatch ||
         code == errc::digest_mismatch || code == errc::unsupported_format;
}

}  // namespace pagerfs
