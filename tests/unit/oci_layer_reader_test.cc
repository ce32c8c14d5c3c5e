// LayerReader: entries and data out of plain, gzip and zstd layer tars
// (written with libarchive in the test), the digest and size checks over
// the raw bytes, and one-line errors naming the layer and the entry for
// truncated archives and hostile paths (errors stay one line whatever bytes
// a name holds); GNU sparse members read to exactly their size, holes as
// zeros, and refused when their map is out of order or past the size.
#include "pagerfs/oci/layer_reader.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "support/gnu_sparse_tar.h"
#include "support/layer_tar.h"
#include "support/test_data.h"

namespace pagerfs::oci {
namespace {

using testing::make_gnu_sparse_tar;
using testing::make_layer_tar;
using testing::SparseBlock;
using testing::TarCompression;
using testing::TarEntry;

constexpr const char* kName = "layer 1 (sha256:0123456789ab...)";

std::unique_ptr<LayerReader> open_layer(const std::vector<std::byte>& raw, LayerExpectations expected = {}) {
  auto reader = LayerReader::open(memory_input_stream(raw), kName, expected);
  EXPECT_TRUE(reader) << reader.error().message();
  return std::move(reader.value());
}

struct Read {
  std::vector<LayerEntry> entries;
  std::vector<std::string> data;
};

Result<Read> read_all(LayerReader& reader) {
  Read out;
  for (;;) {
    PAGERFS_TRY(next, reader.next());
    if (!next) return out;
    std::string data;
    if (next->kind == EntryKind::file) {
      std::vector<std::byte> block(7);  // small reads: many calls
      for (;;) {
        PAGERFS_TRY(n, reader.data().read_some(block));
        if (n == 0) break;
        data.append(reinterpret_cast<const char*>(block.data()), n);
      }
    }
    out.entries.push_back(std::move(*next));
    out.data.push_back(std::move(data));
  }
}

std::vector<TarEntry> sample() {
  std::vector<TarEntry> entries;
  entries.push_back({.path = "./", .type = AE_IFDIR, .perm = 0755});
  entries.push_back({.path = "./bin/", .type = AE_IFDIR, .perm = 0755, .uid = 1, .gid = 2});
  entries.push_back({.path = "./bin/tool", .perm = 04755, .mtime_nsec = 123456789, .data = "#!/bin/sh\necho\n",
                     .xattrs = {{"user.note", "hello"}, {"system.posix_acl_access", "x"}}});
  entries.push_back({.path = "bin//alias", .hardlink = "./bin/tool"});
  entries.push_back({.path = "link", .type = AE_IFLNK, .perm = 0777, .symlink = "bin/tool"});
  entries.push_back({.path = "pipe", .type = AE_IFIFO, .perm = 0600});
  entries.push_back({.path = "big", .data = testing::to_string(testing::random_bytes(300000))});
  return entries;
}

class LayerReaderCompression : public ::testing::TestWithParam<TarCompression> {};

TEST_P(LayerReaderCompression, YieldsEveryEntryAndItsData) {
  const auto raw = make_layer_tar(sample(), GetParam());
  auto reader = open_layer(raw, {Sha256::of(raw), raw.size()});
  auto read = read_all(*reader);
  ASSERT_TRUE(read) << read.error().message();
  const auto& e = read.value().entries;
  ASSERT_EQ(e.size(), 7u);
  EXPECT_EQ(e[0].path, "");
  EXPECT_EQ(e[1].path, "bin");
  EXPECT_EQ(e[1].uid, 1u);
  EXPECT_EQ(e[1].gid, 2u);
  EXPECT_EQ(e[2].path, "bin/tool");
  EXPECT_EQ(e[2].permissions, 04755u);
  EXPECT_EQ(e[2].mtime_sec, 1700000000);
  EXPECT_EQ(e[2].mtime_nsec, 123456789u);
  EXPECT_EQ(read.value().data[2], "#!/bin/sh\necho\n");
  ASSERT_EQ(e[2].xattrs.size(), 1u);  // system.* dropped
  EXPECT_EQ(e[2].xattrs[0].name, "user.note");
  EXPECT_EQ(e[2].xattrs[0].value, "hello");
  EXPECT_EQ(e[3].kind, EntryKind::hardlink);
  EXPECT_EQ(e[3].path, "bin/alias");
  EXPECT_EQ(e[3].hardlink_target, "bin/tool");
  EXPECT_EQ(e[4].kind, EntryKind::symlink);
  EXPECT_EQ(e[4].symlink_target, "bin/tool");
  EXPECT_EQ(e[5].kind, EntryKind::fifo);
  EXPECT_EQ(read.value().data[6], testing::to_string(testing::random_bytes(300000)));
  EXPECT_EQ(reader->raw_bytes(), raw.size());
}

INSTANTIATE_TEST_SUITE_P(All, LayerReaderCompression,
                         ::testing::Values(TarCompression::none, TarCompression::gzip, TarCompression::zstd));

TEST(LayerReader, UnreadDataIsSkippedAndTheDigestStillCoversEveryByte) {
  auto raw = make_layer_tar(sample(), TarCompression::gzip);
  auto reader = open_layer(raw, {Sha256::of(raw), raw.size()});
  for (;;) {
    auto next = reader->next();
    ASSERT_TRUE(next) << next.error().message();
    if (!next.value()) break;
  }
}

TEST(LayerReader, DigestMismatchNamesTheLayer) {
  const auto raw = make_layer_tar(sample(), TarCompression::gzip);
  auto reader = open_layer(raw, {Sha256::of(bytes_of(std::string("other"))), std::nullopt});
  auto read = read_all(*reader);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code(), make_error_code(errc::digest_mismatch));
  EXPECT_NE(read.error().message().find(kName), std::string::npos) << read.error().message();
}

TEST(LayerReader, TrailingBytesAreHashedAndSizeIsChecked) {
  auto raw = make_layer_tar(sample());
  raw.resize(raw.size() + 4096);  // zero padding past the end-of-archive blocks
  EXPECT_TRUE(read_all(*open_layer(raw, {Sha256::of(raw), raw.size()})));
  auto shorter = read_all(*open_layer(raw, {std::nullopt, raw.size() - 1}));
  ASSERT_FALSE(shorter);
  EXPECT_NE(shorter.error().message().find("descriptor"), std::string::npos) << shorter.error().message();
  auto longer = read_all(*open_layer(raw, {std::nullopt, raw.size() + 1}));
  ASSERT_FALSE(longer);
}

TEST(LayerReader, TruncatedGzipIsAnErrorNamingTheLayer) {
  auto raw = make_layer_tar(sample(), TarCompression::gzip);
  raw.resize(raw.size() / 2);
  auto read = read_all(*open_layer(raw));
  ASSERT_FALSE(read);
  EXPECT_TRUE(read.error().message().starts_with(kName)) << read.error().message();
  EXPECT_EQ(read.error().message().find('\n'), std::string::npos);
}

TEST(LayerReader, TruncatedTarInsideAFileIsAnError) {
  auto raw = make_layer_tar(sample());
  raw.resize(raw.size() - 200000);  // inside "big"
  auto read = read_all(*open_layer(raw));
  ASSERT_FALSE(read);
  EXPECT_TRUE(read.error().message().starts_with(kName)) << read.error().message();
}

TEST(LayerReader, HostilePathsAreRefusedNamingTheEntry) {
  struct Case {
    TarEntry entry;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{.path = "../escape", .data = "x"}, "entry '../escape': a '..' component"},
      {{.path = "a/../../b", .data = "x"}, "entry 'a/../../b': a '..' component"},
      {{.path = "/etc/passwd", .data = "x"}, "entry '/etc/passwd': an absolute path"},
      {{.path = "ok", .hardlink = "../../etc/shadow"}, "hard link target '../../etc/shadow': a '..' component"},
      {{.path = std::string(300, 'n'), .data = "x"}, "a component longer than 255 bytes"},
  };
  for (const Case& c : cases) {
    auto read = read_all(*open_layer(make_layer_tar({c.entry}, TarCompression::gzip)));
    ASSERT_FALSE(read) << c.entry.path;
    EXPECT_TRUE(read.error().message().starts_with(std::string(kName) + ": ")) << read.error().message();
    EXPECT_NE(read.error().message().find(c.want), std::string::npos) << read.error().message();
  }
}

TEST(LayerReader, ErrorsAboutNamesWithControlBytesStayOneLine) {
  struct Case {
    std::string path;
    std::string want;  // how the message shows the name
  };
  const std::vector<Case> cases = {
      {"evil\nline/../x", "'evil\\x0aline/../x'"},
      {"tab\there/../x", "'tab\\x09here/../x'"},
      {"\x1b[2Jclear/../x", "'\\x1b[2Jclear/../x'"},
      {"back\\slash\r/../x", "'back\\\\slash\\x0d/../x'"},
  };
  for (const Case& c : cases) {
    auto read = read_all(*open_layer(make_layer_tar({{.path = c.path, .data = "x"}})));
    ASSERT_FALSE(read) << c.path;
    const std::string& message = read.error().message();
    EXPECT_NE(message.find("entry " + c.want + ": a '..' component"), std::string::npos) << message;
    for (const char ch : message) {
      EXPECT_FALSE(static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) << message;
    }
  }
}

// GNU sparse members, as `tar --sparse --format=gnu` writes them. libarchive's
// own archive_read_data stops at the last data block (an all-hole file reads
// empty) and passes blocks past the size.
TEST(LayerReader, AllHoleSparseFileReadsAsZerosOfItsSize) {
  // GNU tar's map of an all-hole file is one empty block at the end; an
  // empty map says the same.
  for (const auto& map : {std::vector<SparseBlock>{{262144, 0}}, std::vector<SparseBlock>{}}) {
    auto read = read_all(*open_layer(make_gnu_sparse_tar("holes", 262144, map, "")));
    ASSERT_TRUE(read) << read.error().message();
    ASSERT_EQ(read.value().entries.size(), 1u);
    EXPECT_EQ(read.value().entries[0].kind, EntryKind::file);
    EXPECT_EQ(read.value().entries[0].size, 262144u);
    EXPECT_EQ(read.value().data[0].size(), 262144u);
    EXPECT_TRUE(read.value().data[0] == std::string(262144, '\0'));  // no 256 KiB diff on failure
  }
}

TEST(LayerReader, SparseFileReadsDataBetweenHolesAndItsTrailingHole) {
  const std::string first = testing::to_string(testing::random_bytes(5000));
  const uint64_t size = 1 << 20;
  const auto raw = make_gnu_sparse_tar("sparse", size, {{4096, 5000}, {65536, 3}, {size, 0}}, first + "abc");
  auto read = read_all(*open_layer(raw, {Sha256::of(raw), raw.size()}));
  ASSERT_TRUE(read) << read.error().message();
  ASSERT_EQ(read.value().entries.size(), 1u);
  EXPECT_EQ(read.value().entries[0].size, size);
  std::string want(size, '\0');
  want.replace(4096, first.size(), first);
  want.replace(65536, 3, "abc");
  EXPECT_TRUE(read.value().data[0] == want);  // not EXPECT_EQ: no 1 MiB diff on failure
}

TEST(LayerReader, SparseMapPastTheSizeIsAnErrorNamingTheEntry) {
  const std::string data(1024, 'd');
  // A block that starts inside the size and ends past it; one that starts past it.
  const std::vector<std::vector<SparseBlock>> maps = {{{0, 512}, {900, 512}}, {{2000, 1024}}};
  for (const auto& map : maps) {
    auto read = read_all(*open_layer(make_gnu_sparse_tar("sparse", 1000, map, data)));
    ASSERT_FALSE(read);
    const std::string& message = read.error().message();
    EXPECT_TRUE(message.starts_with(std::string(kName) + ": entry 'sparse': ")) << message;
    EXPECT_NE(message.find("past its size 1000"), std::string::npos) << message;
    EXPECT_EQ(read.error().code(), make_error_code(errc::corrupt_blob));
  }
}

TEST(LayerReader, SparseMapOutOfOrderIsAnError) {
  const auto raw = make_gnu_sparse_tar("sparse", 8192, {{4096, 512}, {0, 512}}, std::string(1024, 'd'));
  auto read = read_all(*open_layer(raw));
  ASSERT_FALSE(read);
  EXPECT_NE(read.error().message().find("entry 'sparse': "), std::string::npos) << read.error().message();
  EXPECT_NE(read.error().message().find("out of order"), std::string::npos) << read.error().message();
}

TEST(LayerReader, NotATarIsAnError) {
  const auto junk = testing::random_bytes(10000);
  auto reader = LayerReader::open(memory_input_stream(junk), kName, {});
  if (!reader) return;  // refused at open: fine
  auto read = read_all(*reader.value());
  EXPECT_FALSE(read);
}

}  // namespace
}  // namespace pagerfs::oci
