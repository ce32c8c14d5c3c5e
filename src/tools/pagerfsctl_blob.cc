// pagerfsctl inspect and cat: a blob file's layout, and its content.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <span>

#include "pagerfs/format/blob_reader.h"
#include "pagerfs/format/chunk_stream.h"
#include "pagerfs/store/inspection.h"
#include "pagerfs/util/units.h"
#include "tools/pagerfsctl.h"

namespace pagerfs::ctl {

int run_inspect(const std::string& path, bool json) {
  // The user's own path: a symlink of theirs is followed; a FIFO or device
  // is refused at once.
  auto reader = BlobReader::open(path, Symlinks::follow);
  if (!reader) return print_error(reader.error().message()), kExitFailure;
  const BlobReader& r = *reader.value();
  const format::BlobHeader& h = r.header();
  const BlobLayout layout = blob_layout(r);
  if (json) {
    nlohmann::json out = {
        {"path", path},
        {"format_version", h.version},
        {"table_digest", "sha256:" + r.table_digest().hex()},
        {"codec", "zstd"},
        {"digest", h.digest.str()},
        {"byte_size", h.byte_size},
        {"file_size", r.file_size()},
        {"ratio", layout.ratio},
        {"chunk_size", h.chunk_size},
        {"chunk_count", h.chunk_count},
        {"last_chunk_size", layout.last_chunk_size},
        {"seek_table_offset", h.seek_table_offset},
        {"seek_table_size", h.seek_table_size()},
        {"frames",
         {{"total", layout.frames_total}, {"min", layout.frames_min}, {"mean", layout.frames_mean},
          {"max", layout.frames_max}}},
    };
    std::cout << out.dump(2) << '\n';
    return kExitOk;
  }
  std::printf("blob        %s\n", path.c_str());
  std::printf("digest      %s\n", h.digest.str().c_str());
  std::printf("format      pagerfs blob v%u, zstd%s\n", unsigned{h.version},
              h.has_chunk_sha256() ? ", chunks checked by XXH3-64 and SHA-256" : ", chunks checked by XXH3-64");
  std::printf("table       sha256:%s (table digest: the anchor an image records)\n",
              r.table_digest().hex().c_str());
  std::printf("size        %llu bytes (%s)\n", static_cast<unsigned long long>(h.byte_size),
              format_size(h.byte_size).c_str());
  std::printf("stored      %llu bytes (%s), ratio %.2f\n",
              static_cast<unsigned long long>(r.file_size()), format_size(r.file_size()).c_str(), layout.ratio);
  std::printf("chunks      %llu x %s (last %llu bytes)\n", static_cast<unsigned long long>(h.chunk_count),
              format_size(h.chunk_size).c_str(), static_cast<unsigned long long>(layout.last_chunk_size));
  std::printf("frames      min %llu, mean %llu, max %llu bytes\n",
              static_cast<unsigned long long>(layout.frames_min), static_cast<unsigned long long>(layout.frames_mean),
              static_cast<unsigned long long>(layout.frames_max));
  std::printf("seek table  %llu bytes at offset %llu\n",
              static_cast<unsigned long long>(h.seek_table_size()),
              static_cast<unsigned long long>(h.seek_table_offset));
  return kExitOk;
}

namespace {

Result<void> write_all(int fd, std::span<const std::byte> data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "write to standard output");
    }
    data = data.subspan(static_cast<size_t>(n));
  }
  return ok();
}

}  // namespace

int run_cat(const std::string& path, const std::string& offset_text,
            const std::optional<std::string>& length_text, unsigned threads) {
  auto offset = size_option("--offset", offset_text);
  if (!offset) return print_error(offset.error().message()), kExitUsage;
  std::optional<uint64_t> length;
  if (length_text) {
    auto parsed = size_option("--length", *length_text);
    if (!parsed) return print_error(parsed.error().message()), kExitUsage;
    length = parsed.value();
  }
  auto reader = BlobReader::open(path, Symlinks::follow);
  if (!reader) return print_error(reader.error().message()), kExitFailure;
  const BlobReader& r = *reader.value();
  const uint64_t begin = std::min(offset.value(), r.byte_size());
  const uint64_t end = begin + std::min(length.value_or(UINT64_MAX), r.byte_size() - begin);
  if (begin == end) return kExitOk;
  const uint64_t chunk_size = r.chunk_size();
  auto sink = [&](uint64_t index, std::span<const std::byte> data) -> Result<void> {
    const uint64_t chunk_start = index * chunk_size;
    const uint64_t from = std::max(begin, chunk_start) - chunk_start;
    const uint64_t to = std::min(end, chunk_start + data.size()) - chunk_start;
    return write_all(STDOUT_FILENO, data.subspan(from, to - from));
  };
  if (auto streamed = stream_chunks(r, begin / chunk_size, (end - 1) / chunk_size + 1, threads, sink);
      !streamed) {
    return print_error(streamed.error().message()), kExitFailure;
  }
  return kExitOk;
}

}  // namespace pagerfs::ctl
