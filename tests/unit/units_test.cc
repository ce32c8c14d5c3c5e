#include "pagerfs/util/units.h"

#include <gtest/gtest.h>

#include "pagerfs/control/control.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "pagerfs/util/file.h"

namespace pagerfs {
namespace {

TEST(ParseSize, AcceptsBytesAndBinarySuffixes) {
  const std::pair<const char*, uint64_t> cases[] = {
      {"0", 0}, {"4096", 4096}, {"1K", 1024}, {"64k", 65536}, {"128KiB", 131072},
      {"1M", 1 << 20}, {"4MB", 4 << 20}, {"2G", 2ull << 30}, {"1t", 1ull << 40},
      {"16777215T", 16777215ull << 40}, {"18446744073709551615", 18446744073709551615ull},
  };
  for (const auto& [text, value] : cases) {
    auto parsed = parse_size(text);
    ASSERT_TRUE(parsed) << text << ": " << parsed.error().message();
    EXPECT_EQ(parsed.value(), value) << text;
  }
}

TEST(ParseSize, RejectsJunkAndOverflow) {
  for (const char* text : {"", "K", "-1", "1.5M", "12Q", "1KK", "1 K", "0x10", "16777216T",
                           "18446744073709551616", "99999999999999999999999"}) {
    auto parsed = parse_size(text);
    ASSERT_FALSE(parsed) << text;
    EXPECT_EQ(parsed.error().code(), errc::invalid_argument);
    EXPECT_NE(parsed.error().message().find(std::string("'") + text + "'"), std::string::npos);
  }
}

TEST(PrewarmItem, PathWithOptionalRange) {
  auto plain = control::parse_prewarm_item("blobs/sha256/ab");
  EXPECT_EQ(plain.path, "blobs/sha256/ab");
  EXPECT_EQ(plain.offset, 0u);
  EXPECT_EQ(plain.length, UINT64_MAX);
  EXPECT_EQ(plain.range, "");
  auto ranged = control::parse_prewarm_item("dir/file:1M:64K");
  EXPECT_EQ(ranged.path, "dir/file");
  EXPECT_EQ(ranged.offset, 1u << 20);
  EXPECT_EQ(ranged.length, 64u << 10);
  EXPECT_EQ(ranged.range, ":1M:64K");
  // Colons that are not a range belong to the path.
  EXPECT_EQ(control::parse_prewarm_item("a:b:c").path, "a:b:c");
  EXPECT_EQ(control::parse_prewarm_item("a:5").path, "a:5");
  EXPECT_EQ(control::parse_prewarm_item(":1:2").path, ":1:2");
}

TEST(FormatSize, IsReadable) {
  EXPECT_EQ(format_size(0), "0 B");
  EXPECT_EQ(format_size(1023), "1023 B");
  EXPECT_EQ(format_size(1536), "1.5 KiB");
  EXPECT_EQ(format_size(128 << 20), "128.0 MiB");
}

TEST(Digest, KnownVectorAndHexRoundTrip) {
  const std::string abc = "abc";
  const Digest d = Sha256::of(bytes_of(abc));
  EXPECT_EQ(d.hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(d.str(), "sha256:" + d.hex());
  EXPECT_EQ(Digest::parse(d.str()).value(), d);
  EXPECT_EQ(Digest::parse(d.hex()).value(), d);
  std::string upper = d.hex();
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(Digest::parse(upper).value(), d);
  EXPECT_TRUE(Digest::is_canonical_hex(d.hex()));
  EXPECT_FALSE(Digest::is_canonical_hex(upper));
  EXPECT_FALSE(Digest::is_canonical_hex(d.hex().substr(1)));
}

TEST(Digest, StreamingEqualsOneShot) {
  Sha256 h;
  const std::string a = "hello ", b = "world";
  h.update(bytes_of(a));
  h.update(bytes_of(b));
  EXPECT_EQ(h.finish(), Sha256::of(bytes_of(std::string("hello world"))));
  EXPECT_EQ(h.finish(), Sha256::of({}));  // finish() resets
}

TEST(Digest, RejectsMalformed) {
  for (const char* text : {"", "sha256:", "abc", "sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                           "zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}) {
    EXPECT_FALSE(Digest::parse(text)) << text;
  }
}

TEST(ErrorModel, ErrnoTable) {
  EXPECT_EQ(to_errno(make_error_code(errc::corrupt_blob)), EIO);
  EXPECT_EQ(to_errno(make_error_code(errc::checksum_mismatch)), EIO);
  EXPECT_EQ(to_errno(make_error_code(errc::digest_mismatch)), EIO);
  EXPECT_EQ(to_errno(make_error_code(errc::unsupported_format)), EIO);
  EXPECT_EQ(to_errno(make_error_code(errc::invalid_argument)), EINVAL);
  EXPECT_EQ(to_errno(make_error_code(errc::shutting_down)), ESHUTDOWN);
  EXPECT_EQ(to_errno(Error::from_errno(ENOSPC, "write")), ENOSPC);
  EXPECT_EQ(to_errno(std::error_code()), 0);
  const Error e = Error::from_errno(ENOENT, "open 'x'");
  EXPECT_EQ(e.message(), "open 'x': No such file or directory");
  EXPECT_EQ(e.with_context("store").message(), "store: open 'x': No such file or directory");
  EXPECT_EQ(e.with_context("store").code(), e.code());
}

TEST(ErrorModel, ValueOfAFailedResultThrowsWithTheMessage) {
  Result<int> r = Error(errc::corrupt_blob, "chunk 3: bad");
  try {
    (void)r.value();
    FAIL() << "value() must throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), errc::corrupt_blob);
    EXPECT_NE(std::string(e.what()).find("chunk 3: bad"), std::string::npos);
  }
}

}  // namespace
}  // namespace pagerfs
