// Makes the synthetic stores of scripts/bench-scale: a store of N distinct
// small blobs, and/or an image of M entries over K distinct blobs, to measure
// what a mount costs as the store and its images grow.
//
//   make_synthetic_store STORE [--blobs N] [--image NAME --entries M [--distinct K]]
//
// Blobs are written on every core, each in one buffered write (no temp file,
// no fsync: a generated store is rebuilt, not recovered) and synced once at
// the end. The image is a tree of directories of 1000 entries each, its files
// naming the K blobs in turn (files of 1..4 KiB of text).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pagerfs/format/blob_writer.h"
#include "pagerfs/store/image_manifest.h"
#include "pagerfs/store/store.h"
#include "pagerfs/util/file.h"

using namespace pagerfs;

namespace {

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "make_synthetic_store: %s\n", message.c_str());
  std::exit(1);
}

std::string content_of(const char* kind, uint64_t i) {
  // 1..4 KiB of text, distinct per (kind, i).
  std::string line = std::string(kind) + " " + std::to_string(i) + " of a synthetic store\n";
  std::string out;
  const size_t lines = 1 + (i * 2654435761u) % 100;
  for (size_t n = 0; n < lines; ++n) out += line;
  return out;
}

// Writes blob `content` into `store` unless it is there; returns its record.
image::BlobRecord write_one(const Store& store, const std::string& content) {
  std::vector<std::byte> bytes;
  auto out = memory_writable_file(&bytes);
  auto in = memory_input_stream(bytes_of(content));
  BlobWriterOptions options;
  options.threads = 1;
  auto written = write_blob(*in, *out, options);
  if (!written) die(written.error().message());
  const std::string path = store.blob_path(written.value().header.digest);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
  if (fd >= 0) {
    const auto* p = reinterpret_cast<const char*>(bytes.data());
    size_t left = bytes.size();
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n <= 0) die("write " + path + ": " + std::strerror(errno));
      p += n;
      left -= static_cast<size_t>(n);
    }
    ::close(fd);
  } else if (errno != EEXIST) {
    die("create " + path + ": " + std::strerror(errno));
  }
  return {written.value().header.digest, written.value().table_digest, written.value().header.byte_size};
}

// Writes blobs kind#0 .. kind#(count-1) on every core; returns their records by index.
std::vector<image::BlobRecord> write_blobs(const Store& store, const char* kind, uint64_t count) {
  std::vector<image::BlobRecord> records(count);
  std::atomic<uint64_t> next{0};
  std::vector<std::thread> workers;
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (uint64_t i; (i = next.fetch_add(1)) < count;) {
        records[i] = write_one(store, content_of(kind, i));
        if (i % 100000 == 99999) std::fprintf(stderr, "  %s: %llu\n", kind, static_cast<unsigned long long>(i + 1));
      }
    });
  }
  for (auto& w : workers) w.join();
  return records;
}

void write_image(const Store& store, const std::string& name, uint64_t entries, uint64_t distinct) {
  const std::vector<image::BlobRecord> blobs = write_blobs(store, "file", distinct);
  constexpr uint64_t kFanout = 1000;
  std::vector<image::EntrySpec> specs;
  specs.reserve(entries);
  auto add = [&](std::string path, image::EntryType type, uint32_t mode) -> image::EntrySpec& {
    image::EntrySpec& e = specs.emplace_back();
    e.path = std::move(path);
    e.type = type;
    e.mode = mode;
    e.mtime_sec = 1700000000;
    return e;
  };
  add("", image::EntryType::directory, 040755);
  // Directories d0000.. under the root, each with up to kFanout - 1 files.
  uint64_t file = 0;
  for (uint64_t d = 0; specs.size() < entries; ++d) {
    char dir[32];
    std::snprintf(dir, sizeof dir, "d%05llu", static_cast<unsigned long long>(d));
    add(dir, image::EntryType::directory, 040755);
    for (uint64_t f = 0; f + 1 < kFanout && specs.size() < entries; ++f, ++file) {
      char leaf[48];
      std::snprintf(leaf, sizeof leaf, "%s/f%06llu.txt", dir, static_cast<unsigned long long>(f));
      image::EntrySpec& e = add(leaf, image::EntryType::file, 0100644);
      const image::BlobRecord& blob = blobs[file % distinct];
      e.digest = blob.digest;
      e.size = blob.byte_size;
    }
  }
  auto bytes = image::encode(std::move(specs), blobs);
  if (!bytes) die(bytes.error().message());
  if (auto w = store.write_image(name, bytes.value()); !w) die(w.error().message());
}

uint64_t number(const char* text) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0') die(std::string("not a number: ") + text);
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: make_synthetic_store STORE [--blobs N] [--image NAME --entries M [--distinct K]]");
  const std::string root = argv[1];
  uint64_t blobs = 0, entries = 0, distinct = 10000;
  std::string image;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) die("missing value after " + arg);
    if (arg == "--blobs") blobs = number(argv[++i]);
    else if (arg == "--image") image = argv[++i];
    else if (arg == "--entries") entries = number(argv[++i]);
    else if (arg == "--distinct") distinct = number(argv[++i]);
    else die("unknown option " + arg);
  }
  if (!image.empty() && (entries < 2 || distinct < 1)) die("--image needs --entries >= 2 and --distinct >= 1");
  auto store = Store::create(root);
  if (!store) die(store.error().message());
  if (blobs > 0) write_blobs(store.value(), "blob", blobs);
  if (!image.empty()) write_image(store.value(), image, entries, distinct);
  if (auto s = store.value().sync(); !s) die(s.error().message());
  return 0;
}
