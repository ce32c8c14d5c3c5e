// libFuzzer target: the input is one OCI image layer, a tar archive plain or
// compressed with whatever libarchive detects (gzip, zstd).
//
// The layer goes through the API the importer uses: LayerReader::open with
// the digest and size of the input as expectations, next() until the end,
// every file's data read through data() (in uneven read sizes), and every
// entry applied to a LayerTree. The input is read twice, as layers 0 and 1
// of one tree, so that the second reading's whiteouts, opaque markers and
// replacements meet the entries the first one wrote.
//
// Besides "never crash, leak or hit UB", it checks what callers rely on:
//   - every error is one line (no control byte) starting with the layer's
//     name, whoever raised it (libarchive, the reader, the tree);
//   - an entry's path is normalized and inside the root;
//   - a file read to its end gave exactly the size its header declared
//     (sparse files included: holes are zeros, nothing past the size);
//   - the tree lists as many entries as it counts, and every hard link in
//     its listing names a listed file that is not itself a hard link.
//
// A plain tar header carries a checksum that random mutation rarely keeps
// right, so each input is also read with the checksums of its header chain
// recomputed ("fixed up"), which lets the fuzzer reach the field parsers.
// Seeds are layers made by GNU tar, zstd and gzip (see scripts/fuzz).
//
// A small input may declare a huge sparse file or decompress to a lot
// (gzip ~1000:1, zstd far more): the content read and the metadata kept per
// input are bounded here, so that one input costs bounded time and memory.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagerfs/oci/layer_entry.h"
#include "pagerfs/oci/layer_reader.h"
#include "pagerfs/oci/layer_tree.h"
#include "pagerfs/store/image_manifest.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "pagerfs/util/file.h"

namespace {

namespace oci = pagerfs::oci;
namespace image = pagerfs::image;

// Bounds on the work one reading of the input may cause.
constexpr uint64_t kMaxContentBytes = 8u << 20;    // file data read, holes included
constexpr uint64_t kMaxMetadataBytes = 32u << 20;  // paths, targets, xattrs given to the tree
constexpr uint64_t kMaxEntries = 20000;

constexpr size_t kBlock = 512;  // tar block

void check(bool condition, std::string_view what) {
  if (condition) return;
  std::fprintf(stderr, "oci_layer_fuzz: %.*s\n", static_cast<int>(what.size()), what.data());
  __builtin_trap();
}

std::string layer_name(uint32_t index) {
  return "layer " + std::to_string(index + 1) + " (sha256:0123456789ab...)";
}

void check_error(const pagerfs::Error& error, const std::string& name) {
  const std::string& message = error.message();
  check(message.starts_with(name + ": "), "an error that does not name the layer: " + message);
  const bool one_line = std::none_of(message.begin(), message.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7f;
  });
  check(one_line, "an error with a control byte: " + message);
}

void check_path(std::string_view path) {
  check(path.size() <= image::kMaxSymlinkLength, "a path too long");
  check(!path.starts_with('/') && !path.ends_with('/'), "a path not normalized");
  size_t start = 0;
  while (!path.empty() && start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view component = path.substr(start, end - start);
    check(!component.empty() && component != "." && component != "..", "a path component '', '.' or '..'");
    check(component.size() <= image::kMaxNameLength, "a path component too long");
    start = end + 1;
  }
}

uint64_t metadata_bytes(const oci::LayerEntry& e) {
  uint64_t n = e.path.size() + e.symlink_target.size() + e.hardlink_target.size();
  for (const image::Xattr& x : e.xattrs) n += x.name.size() + x.value.size();
  return n;
}

// Reads the file data() gives to its end, within `budget`. Returns the
// digest, or an empty one if the budget ran out first.
pagerfs::Result<pagerfs::Digest> read_content(oci::LayerReader& reader, const oci::LayerEntry& entry,
                                              uint64_t& budget) {
  // Uneven read sizes: a read may end inside a data block or a hole.
  static constexpr size_t kReadSizes[] = {7, 4096, 65536, 1};
  // One buffer for the whole run: a fresh one per file costs more (page
  // faults under ASan) than the rest of a small layer.
  static std::vector<std::byte> buffer(65536);
  pagerfs::Sha256 sha;
  uint64_t total = 0;
  for (size_t i = 0;; ++i) {
    if (budget == 0) return pagerfs::Digest();
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kReadSizes[i % std::size(kReadSizes)], budget));
    PAGERFS_TRY(n, reader.data().read_some(std::span(buffer).first(want)));
    check(n <= want, "read_some gave more than asked");
    if (n == 0) break;
    sha.update(std::span(buffer).first(n));
    total += n;
    budget -= n;
  }
  check(total == entry.size, "a file whose data is not its declared size");
  return sha.finish();
}

// Reads `bytes` as layer `index`, applying its entries to `tree`.
void read_layer(std::span<const std::byte> bytes, uint32_t index, oci::LayerTree& tree) {
  const std::string name = layer_name(index);
  const oci::LayerExpectations expected{pagerfs::Sha256::of(bytes), bytes.size()};
  auto opened = oci::LayerReader::open(pagerfs::memory_input_stream(bytes, "<fuzz>"), name, expected);
  if (!opened) return check_error(opened.error(), name);
  oci::LayerReader& reader = *opened.value();
  tree.begin_layer(index, name);
  uint64_t content_budget = kMaxContentBytes;
  uint64_t metadata = 0;
  for (uint64_t entries = 0; entries < kMaxEntries; ++entries) {
    auto next = reader.next();
    if (!next) return check_error(next.error(), name);
    if (!next.value()) {
      check(reader.raw_bytes() == bytes.size(), "the end of the layer before its last byte");
      return;
    }
    const oci::LayerEntry& entry = *next.value();
    check_path(entry.path);
    if (entry.kind == oci::EntryKind::hardlink) check_path(entry.hardlink_target);
    check(entry.symlink_target.size() <= image::kMaxSymlinkLength, "a symlink target too long");
    pagerfs::Digest content;
    if (entry.kind == oci::EntryKind::file) {
      auto read = read_content(reader, entry, content_budget);
      if (!read) return check_error(read.error(), name);
      content = read.value();
    }
    metadata += metadata_bytes(entry);
    if (metadata > kMaxMetadataBytes) return;
    if (auto applied = tree.apply(entry, content); !applied) check_error(applied.error(), name);
  }
}

void check_tree(const oci::LayerTree& tree) {
  const std::vector<image::EntrySpec> entries = tree.entries();
  check(entries.size() == tree.size(), "the tree lists a different number of entries than it counts");
  std::set<std::string_view> files;
  for (const image::EntrySpec& e : entries) {
    check_path(e.path);
    if (e.type != image::EntryType::hardlink && e.type != image::EntryType::directory) files.insert(e.path);
  }
  for (const image::EntrySpec& e : entries) {
    if (e.type != image::EntryType::hardlink) continue;
    check(files.contains(e.hardlink_target), "a hard link to no file");
  }
}

uint64_t parse_octal(const std::byte* field, size_t length) {
  uint64_t value = 0;
  size_t i = 0;
  while (i < length && static_cast<char>(field[i]) == ' ') ++i;
  for (; i < length; ++i) {
    const char c = static_cast<char>(field[i]);
    if (c < '0' || c > '7' || value > (UINT64_MAX >> 3)) break;
    value = value * 8 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

// The size field of a header: octal text, or base-256 (high bit set).
uint64_t header_size(const std::byte* header) {
  const std::byte* field = header + 124;
  if ((static_cast<uint8_t>(field[0]) & 0x80) == 0) return parse_octal(field, 12);
  uint64_t value = 0;
  for (size_t i = 4; i < 12; ++i) value = value << 8 | static_cast<uint8_t>(field[i]);
  return value;
}

// Recomputes the checksum of every header block along the chain of headers
// (each followed by its data, and old GNU sparse headers by their extension
// blocks). Returns whether anything changed.
bool fix_up_checksums(std::vector<std::byte>& tar) {
  bool changed = false;
  size_t offset = 0;
  while (offset + kBlock <= tar.size()) {
    std::byte* header = tar.data() + offset;
    offset += kBlock;
    if (std::all_of(header, header + kBlock, [](std::byte b) { return b == std::byte{0}; })) continue;
    unsigned sum = 0;
    for (size_t i = 0; i < kBlock; ++i) sum += i >= 148 && i < 156 ? ' ' : static_cast<uint8_t>(header[i]);
    char field[8];
    std::snprintf(field, sizeof field, "%06o", sum & 0777777);
    field[7] = ' ';
    if (std::memcmp(header + 148, field, sizeof field) != 0) {
      std::memcpy(header + 148, field, sizeof field);
      changed = true;
    }
    if (static_cast<char>(header[156]) == 'S' && header[482] != std::byte{0}) {
      // Old GNU sparse: extension blocks, each flagging whether another follows.
      while (offset + kBlock <= tar.size()) {
        const bool more = tar[offset + 504] != std::byte{0};
        offset += kBlock;
        if (!more) break;
      }
    }
    const uint64_t size = header_size(header);
    if (size > tar.size() - offset) break;
    offset += static_cast<size_t>((size + kBlock - 1) / kBlock * kBlock);
  }
  return changed;
}

void read_image(std::span<const std::byte> bytes) {
  oci::LayerTree tree;
  read_layer(bytes, 0, tree);
  read_layer(bytes, 1, tree);
  check_tree(tree);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  read_image(bytes);
  std::vector<std::byte> fixed(bytes.begin(), bytes.end());
  if (fix_up_checksums(fixed)) read_image(fixed);
  return 0;
}
