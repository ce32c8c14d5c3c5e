#include "fuse/takeover_journal.h"

#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstring>

namespace pagerfs {
namespace {

constexpr char kMagic[8] = {'P', 'G', 'F', 'S', 'T', 'K', 'O', 'V'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kHeaderSize = 4096;
constexpr uint64_t kServingOffset = kHeaderSize - 4;
constexpr uint64_t kFailedUpgradesOffset = kHeaderSize - 8;
constexpr uint64_t kRetiredOffset = kHeaderSize - 12;
constexpr uint64_t kNegotiatedOffset = kHeaderSize - 16;
constexpr uint32_t kNegotiatedPassthrough = 1;
constexpr uint64_t kUpgradeOffset = 2048;  // u32 length, then the path
constexpr uint64_t kMaxUpgradePath = kNegotiatedOffset - kUpgradeOffset - 4;
constexpr uint64_t kMaxInit = kUpgradeOffset - 16;
constexpr uint32_t kImage = 1;
constexpr uint32_t kBlob = 2;
constexpr uint32_t kBacking = 3;
constexpr uint32_t kMaxPayload = 1024;

class Writer {
 public:
  template <typename T>
  void put(const T& value) {
    const auto* p = reinterpret_cast<const std::byte*>(&value);
    bytes.insert(bytes.end(), p, p + sizeof value);
  }
  void put(const Digest& d) { put(d.bytes()); }
  void put(std::string_view s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    bytes.insert(bytes.end(), p, p + s.size());
  }
  std::vector<std::byte> bytes;
};

class Reader {
 public:
  explicit Reader(std::span<const std::byte> b) : bytes_(b) {}
  template <typename T>
  bool get(T& value) {
    if (bytes_.size() < sizeof value) return false;
    std::memcpy(&value, bytes_.data(), sizeof value);
    bytes_ = bytes_.subspan(sizeof value);
    return true;
  }
  bool get(Digest& d) {
    std::array<uint8_t, Digest::kSize> raw{};
    if (!get(raw)) return false;
    d = Digest(raw);
    return true;
  }
  std::string rest() {
    std::string s(reinterpret_cast<const char*>(bytes_.data()), bytes_.size());
    bytes_ = {};
    return s;
  }
  bool done() const noexcept { return bytes_.empty(); }

 private:
  std::span<const std::byte> bytes_;
};

Result<void> pwrite_all(int fd, const void* data, size_t size, uint64_t offset) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno(errno, "takeover journal: write");
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return ok();
}

// Reads up to `size` bytes at `offset`; fewer only at the end of the file.
Result<std::vector<std::byte>> pread_some(int fd, size_t size, uint64_t offset) {
  std::vector<std::byte> out(size);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, out.data() + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno(errno, "takeover journal: read");
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

// Over the record's type, length and payload, which lie one after the other.
uint64_t record_checksum(std::span<const std::byte> head_and_payload) {
  return XXH3_64bits(head_and_payload.data(), head_and_payload.size());
}

std::optional<TakeoverJournal::BlobRecord> decode_blob(std::span<const std::byte> payload) {
  Reader r(payload);
  TakeoverJournal::BlobRecord blob;
  uint64_t ino = 0;
  uint8_t packed = 0;
  if (!r.get(ino) || !r.get(blob.digest) || !r.get(packed)) return std::nullopt;
  blob.ino = ino;
  if (packed != 0) {
    image::Content c;
    c.digest = blob.digest;
    if (!r.get(c.blob) || !r.get(c.offset) || !r.get(c.length) || !r.get(c.table_digest)) return std::nullopt;
    blob.packed = c;
  }
  if (!r.done()) return std::nullopt;
  return blob;
}

std::optional<TakeoverJournal::ImageRecord> decode_image(std::span<const std::byte> payload) {
  Reader r(payload);
  TakeoverJournal::ImageRecord image;
  if (!r.get(image.number) || !r.get(image.checksum)) return std::nullopt;
  image.name = r.rest();
  if (image.name.empty()) return std::nullopt;
  return image;
}

}  // namespace

TakeoverJournal::TakeoverJournal(UniqueFd fd, uint64_t end, Contents inherited)
    : fd_(std::move(fd)), inherited_(std::move(inherited)), end_(end) {}

TakeoverJournal::TakeoverJournal(TakeoverJournal&& other) noexcept
    : fd_(std::move(other.fd_)), inherited_(std::move(other.inherited_)) {
  MutexLock lock(other.mu_);
  MutexLock mine(mu_);
  end_ = other.end_;
}

Result<TakeoverJournal> TakeoverJournal::create() {
  UniqueFd fd(::memfd_create("pagerfs-takeover", MFD_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "takeover journal: memfd_create");
  std::array<std::byte, 16> header{};
  std::memcpy(header.data(), kMagic, sizeof kMagic);
  std::memcpy(header.data() + 8, &kVersion, sizeof kVersion);
  PAGERFS_TRYV(pwrite_all(fd.get(), header.data(), header.size(), 0));
  return TakeoverJournal(std::move(fd), kHeaderSize, Contents{});
}

Result<TakeoverJournal::Contents> TakeoverJournal::read(int fd) {
  Contents contents;
  PAGERFS_TRY(header, pread_some(fd, kHeaderSize, 0));
  uint32_t version = 0;
  uint32_t init_length = 0;
  if (header.size() < 16 || std::memcmp(header.data(), kMagic, sizeof kMagic) != 0) {
    return Error(errc::corrupt_blob, "takeover journal: not a journal");
  }
  std::memcpy(&version, header.data() + 8, sizeof version);
  std::memcpy(&init_length, header.data() + 12, sizeof init_length);
  if (version != kVersion) return Error(errc::corrupt_blob, "takeover journal: version " + std::to_string(version));
  if (init_length > kMaxInit || 16 + init_length > header.size()) {
    return Error(errc::corrupt_blob, "takeover journal: INIT of " + std::to_string(init_length) + " bytes");
  }
  contents.init.assign(header.begin() + 16, header.begin() + 16 + init_length);
  uint32_t negotiated = 0;
  if (header.size() >= kNegotiatedOffset + sizeof negotiated) {
    std::memcpy(&negotiated, header.data() + kNegotiatedOffset, sizeof negotiated);
  }
  contents.passthrough = (negotiated & kNegotiatedPassthrough) != 0;
  uint64_t at = kHeaderSize;
  for (;;) {
    PAGERFS_TRY(head, pread_some(fd, 8, at));
    if (head.size() < 8) break;
    uint32_t type = 0;
    uint32_t length = 0;
    std::memcpy(&type, head.data(), 4);
    std::memcpy(&length, head.data() + 4, 4);
    if (type == 0 || length > kMaxPayload) break;  // the end, or a torn record
    PAGERFS_TRY(record, pread_some(fd, 8 + length + 8u, at));
    if (record.size() < 8 + length + 8u) break;
    const std::span<const std::byte> payload(record.data() + 8, length);
    uint64_t sum = 0;
    std::memcpy(&sum, record.data() + 8 + length, 8);
    if (sum != record_checksum({record.data(), 8 + length})) break;
    if (type == kImage) {
      auto image = decode_image(payload);
      if (!image) break;
      contents.images.push_back(std::move(*image));
    } else if (type == kBlob) {
      auto blob = decode_blob(payload);
      if (!blob) break;
      contents.blobs.push_back(std::move(*blob));
    } else if (type == kBacking) {
      Reader r(payload);
      uint64_t ino = 0;
      int32_t id = 0;
      if (!r.get(ino) || !r.get(id) || !r.done()) break;
      if (id > 0) {
        contents.backings[ino] = id;
      } else {
        contents.backings.erase(ino);
      }
    }  // an unknown type (a newer server): skipped
    at += 8 + length + 8;
  }
  contents.end = at;
  return contents;
}

Result<TakeoverJournal> TakeoverJournal::adopt(UniqueFd fd) {
  PAGERFS_TRY(contents, read(fd.get()));
  // Appends go after the last record that checks (over a torn one).
  const uint64_t end = contents.end;
  return TakeoverJournal(std::move(fd), end, std::move(contents));
}

Result<void> TakeoverJournal::record_init(std::span<const std::byte> request) {
  if (request.size() > kMaxInit) {
    return Error(errc::invalid_argument, "takeover journal: INIT of " + std::to_string(request.size()) + " bytes");
  }
  PAGERFS_TRYV(pwrite_all(fd_.get(), request.data(), request.size(), 16));
  const uint32_t length = static_cast<uint32_t>(request.size());
  return pwrite_all(fd_.get(), &length, sizeof length, 12);
}

Result<void> TakeoverJournal::record_passthrough() {
  return pwrite_all(fd_.get(), &kNegotiatedPassthrough, sizeof kNegotiatedPassthrough, kNegotiatedOffset);
}

Result<void> TakeoverJournal::request_upgrade(int fd, std::string_view binary) {
  if (binary.size() > kMaxUpgradePath) {
    return Error(errc::invalid_argument, "upgrade: binary path longer than " + std::to_string(kMaxUpgradePath));
  }
  PAGERFS_TRYV(pwrite_all(fd, binary.data(), binary.size(), kUpgradeOffset + 4));
  const uint32_t length = static_cast<uint32_t>(binary.size());
  return pwrite_all(fd, &length, sizeof length, kUpgradeOffset);
}

std::string TakeoverJournal::take_upgrade_request(int fd) {
  uint32_t length = 0;
  if (::pread(fd, &length, sizeof length, kUpgradeOffset) != sizeof length || length == 0 ||
      length > kMaxUpgradePath) {
    return {};
  }
  std::string binary(length, '\0');
  if (::pread(fd, binary.data(), length, kUpgradeOffset + 4) != static_cast<ssize_t>(length)) return {};
  const uint32_t none = 0;
  (void)pwrite_all(fd, &none, sizeof none, kUpgradeOffset);
  return binary;
}

uint32_t TakeoverJournal::failed_upgrades(int fd) noexcept {
  uint32_t n = 0;
  if (::pread(fd, &n, sizeof n, kFailedUpgradesOffset) != sizeof n) return 0;
  return n;
}

void TakeoverJournal::count_failed_upgrade(int fd) noexcept {
  const uint32_t n = failed_upgrades(fd) + 1;
  (void)pwrite_all(fd, &n, sizeof n, kFailedUpgradesOffset);
}

Result<void> TakeoverJournal::reload() {
  PAGERFS_TRY(contents, read(fd_.get()));
  MutexLock lock(mu_);
  end_ = contents.end;
  inherited_ = std::move(contents);
  return ok();
}

void TakeoverJournal::mark_serving(uint32_t generation) noexcept {
  (void)pwrite_all(fd_.get(), &generation, sizeof generation, kServingOffset);
}

void TakeoverJournal::mark_retired(uint32_t generation) noexcept {
  const uint32_t mark = generation + 1;  // 0: none yet
  (void)pwrite_all(fd_.get(), &mark, sizeof mark, kRetiredOffset);
}

bool TakeoverJournal::retired(int fd, uint32_t generation) noexcept {
  uint32_t mark = 0;
  return ::pread(fd, &mark, sizeof mark, kRetiredOffset) == sizeof mark && mark == generation + 1;
}

uint32_t TakeoverJournal::serving_generation(int fd) noexcept {
  uint32_t generation = 0;
  if (::pread(fd, &generation, sizeof generation, kServingOffset) != sizeof generation) return 0;
  return generation;
}

void TakeoverJournal::record_image(const ImageRecord& image) {
  Writer w;
  w.put(image.number);
  w.put(image.checksum);
  w.put(std::string_view(image.name));
  append(kImage, w.bytes);
}

void TakeoverJournal::record_blob(const BlobRecord& blob) {
  Writer w;
  w.put(static_cast<uint64_t>(blob.ino));
  w.put(blob.digest);
  w.put(static_cast<uint8_t>(blob.packed ? 1 : 0));
  if (blob.packed) {
    w.put(blob.packed->blob);
    w.put(blob.packed->offset);
    w.put(blob.packed->length);
    w.put(blob.packed->table_digest);
  }
  append(kBlob, w.bytes);
}

void TakeoverJournal::record_backing(fuse_ino_t ino, int32_t backing_id) {
  Writer w;
  w.put(static_cast<uint64_t>(ino));
  w.put(backing_id);
  append(kBacking, w.bytes);
}

void TakeoverJournal::append(uint32_t type, std::span<const std::byte> payload) {
  Writer w;
  w.put(type);
  w.put(static_cast<uint32_t>(payload.size()));
  w.bytes.insert(w.bytes.end(), payload.begin(), payload.end());
  w.put(record_checksum(w.bytes));
  MutexLock lock(mu_);
  if (!pwrite_all(fd_.get(), w.bytes.data(), w.bytes.size(), end_)) {
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  end_ += w.bytes.size();
}

}  // namespace pagerfs
