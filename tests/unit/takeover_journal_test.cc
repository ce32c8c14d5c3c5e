// The takeover journal (what a successor server needs) and the mount view
// rebuilt from it, without a mount.
#include "fuse/takeover_journal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "fuse/mount_view.h"
#include "pagerfs/util/file.h"
#include "support/manifest_specs.h"

namespace pagerfs {
namespace {

Digest digest_of(const std::string& content) { return Sha256::of(bytes_of(content)); }

image::Manifest manifest(const std::string& file_content) {
  image::EntrySpec root;
  root.path = "";
  root.type = image::EntryType::directory;
  root.mode = S_IFDIR | 0755;
  image::EntrySpec file;
  file.path = "f";
  file.type = image::EntryType::file;
  file.mode = S_IFREG | 0644;
  file.size = file_content.size();
  file.digest = digest_of(file_content);
  auto bytes = image::specs::encode({root, file});
  EXPECT_TRUE(bytes) << bytes.error().message();
  auto m = image::Manifest::parse(std::move(bytes).value());
  EXPECT_TRUE(m) << m.error().message();
  return std::move(m).value();
}

std::vector<std::byte> init_request() {
  std::vector<std::byte> init(104);
  for (size_t k = 0; k < init.size(); ++k) init[k] = static_cast<std::byte>(k * 7);
  return init;
}

TEST(TakeoverJournalTest, RecordsComeBackInOrder) {
  auto journal = TakeoverJournal::create();
  ASSERT_TRUE(journal) << journal.error().message();
  ASSERT_TRUE(journal.value().record_init(init_request()));
  image::Content packed;
  packed.digest = digest_of("small");
  packed.blob = digest_of("pack");
  packed.offset = 4096;
  packed.length = 5;
  packed.table_digest = digest_of("table");
  journal.value().record_image({0, "base", 0x1234});
  journal.value().record_blob({MountView::kBlobBit | 99, digest_of("a"), std::nullopt});
  journal.value().record_blob({MountView::kBlobBit | 100, packed.digest, packed});
  journal.value().record_image({1, "app", 0x5678});
  journal.value().mark_serving(3);

  auto read = TakeoverJournal::read(journal.value().fd());
  ASSERT_TRUE(read) << read.error().message();
  EXPECT_EQ(read.value().init, init_request());
  ASSERT_EQ(read.value().images.size(), 2u);
  EXPECT_EQ(read.value().images[1].name, "app");
  EXPECT_EQ(read.value().images[1].number, 1u);
  EXPECT_EQ(read.value().images[1].checksum, 0x5678u);
  ASSERT_EQ(read.value().blobs.size(), 2u);
  EXPECT_EQ(read.value().blobs[0].digest, digest_of("a"));
  EXPECT_FALSE(read.value().blobs[0].packed);
  ASSERT_TRUE(read.value().blobs[1].packed);
  EXPECT_EQ(read.value().blobs[1].packed->blob, packed.blob);
  EXPECT_EQ(read.value().blobs[1].packed->offset, 4096u);
  EXPECT_EQ(read.value().blobs[1].packed->table_digest, packed.table_digest);
  EXPECT_EQ(TakeoverJournal::serving_generation(journal.value().fd()), 3u);
}

TEST(TakeoverJournalTest, ATornRecordEndsTheJournalAndIsWrittenOver) {
  auto journal = TakeoverJournal::create();
  ASSERT_TRUE(journal);
  journal.value().record_image({0, "base", 1});
  auto before = TakeoverJournal::read(journal.value().fd());
  ASSERT_TRUE(before);
  // A crash in the middle of the next record: its header, half its payload.
  const uint32_t torn[4] = {2, 48, 0xdead, 0xbeef};
  ASSERT_EQ(::pwrite(journal.value().fd(), torn, sizeof torn, static_cast<off_t>(before.value().end)),
            static_cast<ssize_t>(sizeof torn));
  auto after = TakeoverJournal::read(journal.value().fd());
  ASSERT_TRUE(after);
  EXPECT_EQ(after.value().images.size(), 1u);
  EXPECT_TRUE(after.value().blobs.empty());
  // A successor appends where the good records end.
  auto adopted = TakeoverJournal::adopt(UniqueFd(::dup(journal.value().fd())));
  ASSERT_TRUE(adopted) << adopted.error().message();
  adopted.value().record_blob({MountView::kBlobBit | 5, digest_of("b"), std::nullopt});
  auto last = TakeoverJournal::read(adopted.value().fd());
  ASSERT_TRUE(last);
  ASSERT_EQ(last.value().blobs.size(), 1u);
  EXPECT_EQ(last.value().blobs[0].digest, digest_of("b"));
}

TEST(TakeoverJournalTest, PassthroughIsHandedOnWithoutDisturbingTheRest) {
  auto journal = TakeoverJournal::create();
  ASSERT_TRUE(journal);
  ASSERT_TRUE(journal.value().record_init(init_request()));
  auto before = TakeoverJournal::read(journal.value().fd());
  ASSERT_TRUE(before);
  EXPECT_FALSE(before.value().passthrough);  // not asked for: an older server's journal reads the same
  ASSERT_TRUE(journal.value().record_passthrough());
  // The fields beside it keep their values, and it keeps its own.
  journal.value().mark_retired(6);
  journal.value().mark_serving(7);
  TakeoverJournal::count_failed_upgrade(journal.value().fd());
  const std::string longest(4096 - 16 - 2048 - 4, 'x');
  ASSERT_TRUE(TakeoverJournal::request_upgrade(journal.value().fd(), "/" + longest.substr(1)));
  EXPECT_FALSE(TakeoverJournal::request_upgrade(journal.value().fd(), longest + "x"));
  auto adopted = TakeoverJournal::adopt(UniqueFd(::dup(journal.value().fd())));
  ASSERT_TRUE(adopted) << adopted.error().message();
  EXPECT_TRUE(adopted.value().inherited().passthrough);
  EXPECT_EQ(adopted.value().inherited().init, init_request());
  EXPECT_TRUE(TakeoverJournal::retired(journal.value().fd(), 6));
  EXPECT_EQ(TakeoverJournal::serving_generation(journal.value().fd()), 7u);
  EXPECT_EQ(TakeoverJournal::failed_upgrades(journal.value().fd()), 1u);
  EXPECT_EQ(TakeoverJournal::take_upgrade_request(journal.value().fd()).size(), longest.size());
}

TEST(TakeoverJournalTest, TheLastBackingRecordOfAnInodeCounts) {
  auto journal = TakeoverJournal::create();
  ASSERT_TRUE(journal);
  const fuse_ino_t a = MountView::kBlobBit | 1;
  const fuse_ino_t b = (fuse_ino_t{1} << 32) | 5;
  journal.value().record_backing(a, 3);
  journal.value().record_blob({MountView::kBlobBit | 2, digest_of("x"), std::nullopt});
  journal.value().record_backing(b, 4);
  journal.value().record_backing(a, 0);  // a left passthrough mode
  journal.value().record_backing(a, 9);  // and entered it again, with another file
  journal.value().record_backing(b, 0);
  auto read = TakeoverJournal::read(journal.value().fd());
  ASSERT_TRUE(read) << read.error().message();
  const std::unordered_map<fuse_ino_t, int32_t> expected = {{a, 9}};
  EXPECT_EQ(read.value().backings, expected);
  EXPECT_EQ(read.value().blobs.size(), 1u);
}

TEST(TakeoverJournalTest, AGarbageJournalIsRefused) {
  auto journal = TakeoverJournal::create();
  ASSERT_TRUE(journal);
  ASSERT_EQ(::pwrite(journal.value().fd(), "NOTAJRNL", 8, 0), 8);
  EXPECT_FALSE(TakeoverJournal::read(journal.value().fd()));
  auto big = TakeoverJournal::create();
  ASSERT_TRUE(big);
  EXPECT_FALSE(big.value().record_init(std::vector<std::byte>(8192)));
}

TEST(TakeoverJournalTest, ASuccessorsViewGivesTheSameInodesTheSameMeaning) {
  auto journal = TakeoverJournal::create();
  ASSERT_TRUE(journal);
  MountView first;
  first.set_journal(&journal.value());
  const fuse_ino_t one = first.add_image("one", manifest("1"));
  const fuse_ino_t two = first.add_image("two", manifest("2"));
  const fuse_ino_t blob = first.hold_blob(digest_of("blob"));
  const auto one_file = first.lookup(one, "f");
  ASSERT_TRUE(one_file && one_file.value());

  auto contents = TakeoverJournal::read(journal.value().fd());
  ASSERT_TRUE(contents);
  MountView second;
  // "two" was repacked while no server ran: its old inodes must not name the new one's entries.
  const auto restored = second.restore(contents.value(), [](std::string_view name) -> Result<std::optional<image::Manifest>> {
    return std::optional<image::Manifest>(manifest(name == "one" ? "1" : "2, repacked"));
  });
  EXPECT_EQ(restored.images, 1u);
  EXPECT_EQ(restored.stale_images, 1u);
  EXPECT_EQ(restored.blobs, 1u);
  auto node = second.node(*one_file.value());
  ASSERT_TRUE(node) << node.error().message();
  EXPECT_EQ(node.value().digest, digest_of("1"));
  EXPECT_FALSE(second.node(two));
  EXPECT_EQ(second.node(blob).value().digest, digest_of("blob"));
  // The kernel's counts are unknown: an inherited blob inode is never forgotten.
  second.forget(blob, 1'000'000);
  EXPECT_TRUE(second.node(blob));
  // A new image gets a new number, never a stale one; "two" can come back under one.
  const fuse_ino_t again = second.add_image("two", manifest("2, repacked"));
  EXPECT_NE(again, two);
  EXPECT_TRUE(second.node(again));
  EXPECT_EQ(second.image_count(), 2u);
}

}  // namespace
}  // namespace pagerfs
