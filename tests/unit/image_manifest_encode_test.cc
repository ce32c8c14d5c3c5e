// Image manifest v1: every error encode() reports, one case each, on a
// small valid tree changed in one place.
#include "pagerfs/store/image_manifest.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <functional>
#include <stdexcept>

#include "support/manifest_specs.h"

namespace pagerfs::image {
namespace {

using namespace specs;  // dir(), file(), encode_ok(), ...: the tests' vocabulary

struct EncodeCase {
  const char* name;
  std::function<void(std::vector<EntrySpec>&)> mutate;
  const char* message;  // a substring of the expected message
};

std::vector<EntrySpec> small_specs() {
  return {dir(""),
          dir("a"),
          file("a/f", 1),
          symlink("a/l", "f"),
          hardlink("h", "a/f"),
          special("p", S_IFIFO | 0644)};
}

EntrySpec& spec(std::vector<EntrySpec>& specs, std::string_view path) {
  for (EntrySpec& e : specs) {
    if (e.path == path) return e;
  }
  throw std::logic_error("no spec");
}

class EncodeErrorTest : public ::testing::TestWithParam<EncodeCase> {};

TEST_P(EncodeErrorTest, IsRejected) {
  std::vector<EntrySpec> specs = small_specs();
  ASSERT_TRUE(encode(specs)) << "the sample must be valid";
  GetParam().mutate(specs);
  auto bytes = encode(specs);
  ASSERT_FALSE(bytes) << GetParam().name;
  EXPECT_EQ(bytes.error().code(), errc::invalid_argument);
  EXPECT_NE(bytes.error().message().find(GetParam().message), std::string::npos)
      << bytes.error().message();
  EXPECT_EQ(bytes.error().message().find('\n'), std::string::npos) << "one line";
}

const EncodeCase kEncodeCases[] = {
    {"dotdot", [](auto& s) { s.push_back(file("a/../b", 1)); },
     "image: 'a/../b': bad path component '..'"},
    {"dot", [](auto& s) { s.push_back(file("a/./b", 1)); },
     "image: 'a/./b': bad path component '.'"},
    {"empty component", [](auto& s) { s.push_back(file("a//b", 1)); },
     "'a//b': empty path component"},
    {"leading slash", [](auto& s) { s.push_back(file("/b", 1)); }, "'/b': path starts with '/'"},
    {"trailing slash", [](auto& s) { s.push_back(dir("b/")); }, "'b/': path ends with '/'"},
    {"nul", [](auto& s) { s.push_back(file(std::string("a/b\0c", 5), 1)); }, "(contains NUL)"},
    {"long name", [](auto& s) { s.push_back(file("a/" + std::string(256, 'x'), 1)); },
     "longer than 255 bytes"},
    {"duplicate", [](auto& s) { s.push_back(file("a/f", 2)); }, "image: 'a/f': duplicate path"},
    {"duplicate root", [](auto& s) { s.push_back(dir("")); }, "image: '': duplicate path"},
    {"missing parent", [](auto& s) { s.push_back(file("b/c/d", 1)); },
     "'b/c/d': parent 'b/c' is missing"},
    {"parent not dir", [](auto& s) { s.push_back(file("a/f/g", 1)); },
     "'a/f/g': parent 'a/f' is not a directory"},
    {"missing root", [](auto& s) { s.erase(s.begin()); }, "no root entry"},
    {"root not dir", [](auto& s) { s[0] = file("", 1); }, "the root is not a directory"},
    {"no entries", [](auto& s) { s.clear(); }, "no root entry"},
    {"hardlink missing", [](auto& s) { spec(s, "h").hardlink_target = "a/nope"; },
     "'h': hardlink target 'a/nope' does not exist"},
    {"hardlink to dir", [](auto& s) { spec(s, "h").hardlink_target = "a"; },
     "'h': hardlink target 'a' is a directory"},
    {"hardlink to hardlink", [](auto& s) { s.push_back(hardlink("h2", "h")); },
     "'h2': hardlink target 'h' is a hardlink"},
    {"hardlink to itself", [](auto& s) { spec(s, "h").hardlink_target = "h"; },
     "hardlink target 'h' is a hardlink"},
    {"hardlink without target", [](auto& s) { spec(s, "h").hardlink_target = ""; },
     "a hardlink without a target"},
    {"hardlink mode", [](auto& s) { spec(s, "h").mode = S_IFREG | 0644; },
     "a hardlink's mode must be 0"},
    {"hardlink uid", [](auto& s) { spec(s, "h").uid = 1; }, "'h': an owner is set on a hardlink"},
    {"hardlink mtime", [](auto& s) { spec(s, "h").mtime_sec = 1; },
     "an mtime is set on a hardlink"},
    {"hardlink xattr",
     [](auto& s) {
       spec(s, "h").xattrs = {{"user.a", "b"}};
     },
     "an xattr is set on a hardlink"},
    {"mode extra bits", [](auto& s) { spec(s, "a/f").mode |= 0200000; },
     "'a/f': mode 0300644: has bits outside"},
    {"mode type dir", [](auto& s) { spec(s, "a").mode = S_IFREG | 0755; },
     "'a': mode 0100755: type bits are not S_IFDIR"},
    {"mode type file", [](auto& s) { spec(s, "a/f").mode = 0644; }, "type bits are not S_IFREG"},
    {"mode type symlink", [](auto& s) { spec(s, "a/l").mode = S_IFREG | 0777; },
     "type bits are not S_IFLNK"},
    {"mode type special", [](auto& s) { spec(s, "p").mode = S_IFDIR | 0755; },
     "not S_IFCHR, S_IFBLK, S_IFIFO or S_IFSOCK"},
    {"nsec", [](auto& s) { spec(s, "a/f").mtime_nsec = 1'000'000'000; },
     "'a/f': mtime nanoseconds 1000000000"},
    {"symlink empty", [](auto& s) { spec(s, "a/l").symlink_target = ""; },
     "'a/l': symlink target '' is empty"},
    {"symlink long", [](auto& s) { spec(s, "a/l").symlink_target = std::string(4096, 'x'); },
     "longer than 4095"},
    {"symlink nul", [](auto& s) { spec(s, "a/l").symlink_target = std::string("x\0y", 3); },
     "contains NUL"},
    {"symlink size", [](auto& s) { spec(s, "a/l").size = 7; },
     "size 7 is not the symlink target's length 1"},
    {"xattr empty name",
     [](auto& s) {
       spec(s, "a/f").xattrs = {{"", "v"}};
     },
     "xattr '' has an empty name"},
    {"xattr nul",
     [](auto& s) {
       spec(s, "a/f").xattrs = {{std::string("u\0x", 3), "v"}};
     },
     "containing NUL"},
    {"xattr long name",
     [](auto& s) {
       spec(s, "a/f").xattrs = {{std::string(256, 'n'), "v"}};
     },
     "name longer than 255"},
    {"xattr value",
     [](auto& s) {
       spec(s, "a/f").xattrs = {{"user.big", std::string(65537, 'v')}};
     },
     "value longer than 65536"},
    {"xattr duplicate",
     [](auto& s) {
       spec(s, "a/f").xattrs = {{"user.b", "1"}, {"user.a", ""}, {"user.b", "2"}};
     },
     "'a/f': duplicate xattr 'user.b'"},
    {"dir size", [](auto& s) { spec(s, "a").size = uint64_t{1} << 63; }, "'a': size 9223372036854775808 is not below 2^63"},
    {"special size", [](auto& s) { spec(s, "p").size = 1; }, "a size is set on a special"},
    {"rdev on file", [](auto& s) { spec(s, "a/f").rdev = 1; }, "rdev is set on a file"},
    {"digest on dir", [](auto& s) { spec(s, "a").digest = digest_of(3); },
     "a digest is set on a directory"},
    {"target on file", [](auto& s) { spec(s, "a/f").symlink_target = "x"; },
     "a symlink target is set on a file"},
    {"unknown type", [](auto& s) { spec(s, "a/f").type = static_cast<EntryType>(9); },
     "unknown entry type 9"},
};

INSTANTIATE_TEST_SUITE_P(All, EncodeErrorTest, ::testing::ValuesIn(kEncodeCases),
                         param_name<EncodeCase>);


}  // namespace
}  // namespace pagerfs::image
