// What a server must hand to its successor on the same FUSE connection, kept
// in a memory file (memfd) that the supervisor holds for the life of the
// mount, so that it survives the server (kill -9, crash, upgrade):
//
//   - the INIT request the kernel sent when the connection was made: the
//     successor replays it to its own libfuse session (session_io.h);
//   - which image has which number: image entry inodes are
//     (image number + 1) << 32 | entry, and the number is the order in which
//     the server first loaded the image;
//   - which blob inode names which digest (inodes are derived from digests,
//     but only one way);
//   - what the first server negotiated beyond the INIT request (the kernel
//     applied its reply, which the successor's libfuse never sees):
//     passthrough;
//   - which inode is in passthrough mode with which backing file
//     (passthrough_opens.h): a successor must answer every open of it with
//     that file while the opens its predecessors made are live (the kernel
//     fails any other answer), and cannot know when they end.
//
// The kernel keeps using the node ids and file handles it was given;
// everything else a server holds is rebuilt or re-read by the successor.
//
// Layout (host byte order: the file never leaves this machine or this
// mount): bytes [0, 4096) a header, "PGFSTKOV", u32 version, u32 INIT
// length, the INIT bytes; at 2048 a u32 length and the path of the binary a
// live upgrade was asked for; at 4080 u32 flags of what was negotiated
// (bit 0: passthrough; a journal of an older server has 0 there); at 4084
// the u32 generation + 1 of the last
// server that retired; at 4088 the u32 count of failed upgrades; at
// 4092 the u32 generation of the last server that started serving. From 4096 on, records appended one after the
// other: u32 type, u32 payload length, the payload, u64 XXH3-64 of the
// three. Types: 1 an image (u32 number, u64 checksum, the name), 2 a blob
// inode (u64 inode, the digest, u8 packed, and if packed the content's
// blob, offset, length and table digest), 3 an inode's backing file (u64
// inode, i32 backing id; 0: dropped), 28 bytes for each time an inode
// enters or leaves passthrough mode. A record is written before the reply that hands its inode to the
// kernel, so a record torn by a crash names nothing the kernel holds: the
// reader stops at the first record that does not check.
//
// Thread safety: record_*() may be called concurrently (appends are
// serialised); the others are for one thread at start.
#pragma once

#include <fuse_lowlevel.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pagerfs/store/image_manifest.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/error.h"
#include "util/mutex.h"
#include "util/unique_fd.h"

namespace pagerfs {

class TakeoverJournal {
 public:
  struct ImageRecord {
    uint32_t number = 0;    // the image's place: inodes (number + 1) << 32 | entry
    std::string name;
    uint64_t checksum = 0;  // image::Manifest::checksum() of what was loaded
  };
  struct BlobRecord {
    fuse_ino_t ino = 0;
    Digest digest;
    std::optional<image::Content> packed;  // a content inside a pack
  };
  struct Contents {
    std::vector<std::byte> init;  // empty: not recorded yet
    bool passthrough = false;     // the kernel was told to allow passthrough opens
    std::vector<ImageRecord> images;
    std::vector<BlobRecord> blobs;
    // Inodes in passthrough mode (the last record of each, if not a drop).
    std::unordered_map<fuse_ino_t, int32_t> backings;
    uint64_t end = 0;  // the offset after the last record that checks
  };

  // A new, empty journal (an anonymous memory file, close-on-exec).
  static Result<TakeoverJournal> create();
  // The journal in `fd` (inherited from the supervisor); reads what it holds.
  static Result<TakeoverJournal> adopt(UniqueFd fd);

  TakeoverJournal(TakeoverJournal&& other) noexcept;
  TakeoverJournal& operator=(TakeoverJournal&&) = delete;

  int fd() const noexcept { return fd_.get(); }
  // What the journal held when it was adopted (empty for a new one).
  const Contents& inherited() const noexcept { return inherited_; }

  // Once per connection, by its first server.
  Result<void> record_init(std::span<const std::byte> request);
  // Once per connection, by its first server, before the INIT reply that
  // asks the kernel for passthrough.
  Result<void> record_passthrough();
  // Server number `generation` is about to serve (it started up): the
  // supervisor tells a crash loop (servers that die starting) from servers
  // killed while serving.
  void mark_serving(uint32_t generation) noexcept;
  // Server number `generation` has stopped reading requests and answered
  // those it had (a live upgrade): its successor may take over while it
  // tears down.
  void mark_retired(uint32_t generation) noexcept;
  static bool retired(int fd, uint32_t generation) noexcept;
  // The last generation that marked itself serving, read from `fd`.
  static uint32_t serving_generation(int fd) noexcept;
  // A live upgrade to `binary` asked for (by a control command, for the
  // supervisor), and taken by the supervisor (empty: none asked for).
  static Result<void> request_upgrade(int fd, std::string_view binary);
  static std::string take_upgrade_request(int fd);
  // Upgrades that failed (the new server did not get ready; the old one
  // went on), counted by the supervisor, for `pagerfsctl upgrade` to know.
  static void count_failed_upgrade(int fd) noexcept;
  static uint32_t failed_upgrades(int fd) noexcept;
  // Reads the records again (a successor that waited for its predecessor
  // to retire: what it handed out meanwhile); one thread, before serving.
  Result<void> reload() EXCLUDES(mu_);
  void record_image(const ImageRecord& image) EXCLUDES(mu_);
  void record_blob(const BlobRecord& blob) EXCLUDES(mu_);
  // Inode `ino` is in passthrough mode with backing file `backing_id` from
  // now on (0: no longer).
  void record_backing(fuse_ino_t ino, int32_t backing_id) EXCLUDES(mu_);

  // Records that could not be written (out of memory): the successor will
  // not know those inodes (ESTALE to whoever holds them).
  uint64_t write_errors() const noexcept { return write_errors_.load(std::memory_order_relaxed); }

  // Reads every record of `fd` (exposed for tests).
  static Result<Contents> read(int fd);

 private:
  TakeoverJournal(UniqueFd fd, uint64_t end, Contents inherited);
  void append(uint32_t type, std::span<const std::byte> payload) EXCLUDES(mu_);

  UniqueFd fd_;
  Contents inherited_;
  Mutex mu_;
  uint64_t end_ GUARDED_BY(mu_);  // where the next record goes
  std::atomic<uint64_t> write_errors_{0};
};

}  // namespace pagerfs
