// Building image manifests in tests: EntrySpecs of every type in one call
// each, encode and parse that fail the test on an error, and a sample tree
// with every entry type. Shared by the image_manifest*_test.cc files.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <array>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pagerfs/store/image_manifest.h"

namespace pagerfs::image::specs {

using Bytes = std::vector<std::byte>;

inline Digest digest_of(uint8_t seed) {
  std::array<uint8_t, Digest::kSize> raw{};
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(seed * 31 + i * 7);
  return Digest(raw);
}

inline EntrySpec dir(std::string path, uint32_t perm = 0755) {
  EntrySpec e;
  e.path = std::move(path);
  e.type = EntryType::directory;
  e.mode = S_IFDIR | perm;
  return e;
}

inline EntrySpec file(std::string path, uint8_t content, uint64_t size = 100) {
  EntrySpec e;
  e.path = std::move(path);
  e.type = EntryType::file;
  e.mode = S_IFREG | 0644;
  e.size = size;
  e.digest = digest_of(content);
  return e;
}

inline EntrySpec symlink(std::string path, std::string target) {
  EntrySpec e;
  e.path = std::move(path);
  e.type = EntryType::symlink;
  e.mode = S_IFLNK | 0777;
  e.symlink_target = std::move(target);
  return e;
}

inline EntrySpec hardlink(std::string path, std::string target) {
  EntrySpec e;
  e.path = std::move(path);
  e.type = EntryType::hardlink;
  e.hardlink_target = std::move(target);
  return e;
}

inline EntrySpec special(std::string path, uint32_t mode, uint64_t rdev = 0) {
  EntrySpec e;
  e.path = std::move(path);
  e.type = EntryType::special;
  e.mode = mode;
  e.rdev = rdev;
  return e;
}

inline Bytes encode_ok(std::vector<EntrySpec> specs) {
  auto bytes = encode(std::move(specs));
  EXPECT_TRUE(bytes) << bytes.error().message();
  return bytes ? std::move(bytes).value() : Bytes{};
}

inline Manifest parse_ok(Bytes bytes) {
  auto m = Manifest::parse(std::move(bytes));
  if (!m) ADD_FAILURE() << m.error().message();
  return std::move(m).value();
}


inline uint32_t at(const Manifest& m, std::string_view path) {
  const auto index = m.find(path);
  EXPECT_TRUE(index) << path;
  return index.value_or(0);
}

// Every entry type, xattrs, two hard links to one file, a shared digest.
inline std::vector<EntrySpec> every_type() {
  std::vector<EntrySpec> specs;
  EntrySpec root = dir("", 0750);
  root.uid = 1000;
  root.gid = 100;
  root.mtime_sec = 1700000000;
  root.mtime_nsec = 123456789;
  root.xattrs = {{"user.z", "last"}, {"user.a", "first"}};
  specs.push_back(root);
  specs.push_back(dir("usr"));
  specs.push_back(dir("usr/lib"));
  specs.push_back(dir("usr/share", 0700));
  EntrySpec libc = file("usr/lib/libc.so.6", 1, 2'000'000);
  libc.mtime_sec = -5;  // before the epoch
  libc.mtime_nsec = 999'999'999;
  libc.xattrs = {{"security.capability", std::string("\x01\x00\x00\x02", 4)}, {"user.empty", ""}};
  specs.push_back(libc);
  specs.push_back(file("usr/lib/empty", 2, 0));
  specs.push_back(file("usr/share/copy-of-libc", 1, 2'000'000));
  specs.push_back(symlink("usr/lib/libc.so", "libc.so.6"));
  specs.push_back(hardlink("usr/libc-link", "usr/lib/libc.so.6"));
  specs.push_back(hardlink("libc-link2", "usr/lib/libc.so.6"));
  specs.push_back(special("dev-null", S_IFCHR | 0666, 0x0103));
  specs.push_back(special("disk", S_IFBLK | 0660, 0x0800));
  specs.push_back(special("fifo", S_IFIFO | 0600));
  specs.push_back(special("sock", S_IFSOCK | 0755));
  specs.push_back(dir("empty-dir"));
  return specs;
}

// The name of a parameterised case: its `name`, with every character but
// letters and digits made '_' (what gtest accepts).
template <class Case>
std::string param_name(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.name;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

}  // namespace pagerfs::image::specs
