// Prefetch profiles: the text format both ways, what a hostile one gets, and
// how a run's reads become a profile.
#include "pagerfs/store/prefetch_profile.h"

#include <gtest/gtest.h>

#include <string>

namespace pagerfs::profile {
namespace {

Digest digest_of(char c) { return Sha256::of(std::as_bytes(std::span(&c, 1))); }

std::span<const std::byte> bytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

TEST(PrefetchProfile, EncodesAndParsesBack) {
  const Profile profile{{{digest_of('a'), 0, 131072}, {digest_of('b'), 4096, 1}, {digest_of('a'), 1 << 30, 7}}};
  const std::string text = encode(profile);
  EXPECT_TRUE(text.starts_with("pagerfs-profile 1\n" + digest_of('a').hex() + " 0 131072\n")) << text;
  auto parsed = parse(bytes(text));
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed.value(), profile);
  auto empty = parse(bytes("pagerfs-profile 1\n"));
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty.value().items.empty());
}

TEST(PrefetchProfile, MalformedProfilesAreOneLineErrors) {
  const std::string hex = digest_of('a').hex();
  for (const std::string& bad : std::vector<std::string>{
           "", "pagerfs-profile 2\n", "pagerfs-profile 1", "pagerfs-profile 1\n" + hex + " 0 10",
           "pagerfs-profile 1\n" + hex + " 0\n", "pagerfs-profile 1\n" + hex + " 0 0\n",
           "pagerfs-profile 1\n" + hex + " -1 10\n", "pagerfs-profile 1\n" + hex + " 18446744073709551615 2\n",
           "pagerfs-profile 1\n" + hex + " 0 99999999999999999999999\n", "pagerfs-profile 1\n" + hex + "  0 10\n",
           "pagerfs-profile 1\n" + hex + " 0 10 \n", "pagerfs-profile 1\n" + hex + " 00 10\n",
           "pagerfs-profile 1\n" + hex + " +1 10\n", "pagerfs-profile 1\n../../etc/passwd 0 10\n",
           "pagerfs-profile 1\nsha256:" + hex + " 0 10\n", "pagerfs-profile 1\n" + std::string(64, 'A') + " 0 10\n"}) {
    auto parsed = parse(bytes(bad));
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().code(), make_error_code(errc::corrupt_blob));
    EXPECT_EQ(parsed.error().message().find('\n'), std::string::npos);
  }
}

TEST(PrefetchProfile, ItsSizeAndItemCountAreBounded) {
  std::string big = "pagerfs-profile 1\n";
  const std::string line = digest_of('a').hex() + " 0 1\n";
  while (big.size() <= kMaxProfileBytes) big += line;
  EXPECT_FALSE(parse(bytes(big)));
  std::string many = "pagerfs-profile 1\n";
  for (size_t i = 0; i <= kMaxProfileItems; ++i) many += line;
  ASSERT_LE(many.size(), kMaxProfileBytes);
  auto parsed = parse(bytes(many));
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message().find("more than"), std::string::npos);
}

TEST(PrefetchProfile, ReadsBecomeEachByteOnceInFirstReadOrder) {
  const Digest a = digest_of('a'), b = digest_of('b');
  const std::vector<Item> reads = {
      {a, 0, 4096},      {a, 4096, 4096},  // contiguous: merged
      {b, 100, 50},                        // another blob
      {a, 0, 8192},                        // read again: nothing new
      {a, 6000, 4192},                     // overlaps the end: only its new part
      {b, 0, 200},                         // around what was read: the parts before and after
      {a, 20000, 0},                       // empty: dropped
  };
  const Profile p = coalesce(reads);
  const std::vector<Item> expected = {{a, 0, 8192}, {b, 100, 50}, {a, 8192, 2000}, {b, 0, 100}, {b, 150, 50}};
  EXPECT_EQ(p.items, expected);
}

TEST(PrefetchProfile, CoalescingIsBoundedToo) {
  std::vector<Item> reads;
  for (size_t i = 0; i < kMaxProfileItems + 10; ++i) reads.push_back({digest_of('a'), i * 8192, 4096});
  EXPECT_EQ(coalesce(reads).items.size(), kMaxProfileItems);
}

}  // namespace
}  // namespace pagerfs::profile
