#include "pagerfs/oci/layer_reader.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <climits>

#include "util/quoted.h"

namespace pagerfs::oci {
namespace {

constexpr size_t kReadBlock = 256u << 10;
// xattrs an entry may carry (Linux file systems hold far fewer): more is a
// hostile header.
constexpr size_t kMaxXattrs = 1024;

}  // namespace

// The data of the current entry, exactly its size bytes, from libarchive's
// data blocks. Not archive_read_data: it stops at the last data block, so a
// sparse file that ends in a hole (or is all hole) reads short, and it lets a
// block past the entry's size through. Here each block must lie after the
// bytes already given and inside the size; the gaps between blocks (holes)
// and after the last one read as zeros up to the size.
class LayerReader::EntryData final : public InputStream {
 public:
  explicit EntryData(LayerReader& reader) : reader_(reader) {}

  // Starts the entry next() returned, of `size` bytes.
  void reset(uint64_t size) {
    size_ = size;
    position_ = 0;
    block_ = {};
    block_offset_ = 0;
    end_ = false;
  }

  Result<size_t> read_some(std::span<std::byte> out) override {
    if (out.empty()) return size_t{0};
    while (block_.empty() && !end_ && block_offset_ <= position_) PAGERFS_TRYV(next_block());
    if (block_offset_ > position_ || end_) {
      // A hole before the next block, or after the last one.
      const uint64_t hole_end = end_ ? size_ : block_offset_;
      const size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), hole_end - position_));
      std::fill_n(out.begin(), n, std::byte{0});
      position_ += n;
      return n;
    }
    const size_t n = std::min(out.size(), block_.size());
    std::copy_n(block_.begin(), n, out.begin());
    block_ = block_.subspan(n);
    block_offset_ += n;
    position_ += n;
    return n;
  }
  const std::string& name() const noexcept override { return reader_.current_path_; }

 private:
  // Fetches the next data block, or notes the end of the entry's data.
  Result<void> next_block() {
    const void* data = nullptr;
    size_t length = 0;
    la_int64_t offset = 0;
    const int status = archive_read_data_block(reader_.archive_, &data, &length, &offset);
    if (status == ARCHIVE_EOF) {
      end_ = true;
      return ok();
    }
    const std::string& path = reader_.current_path_;
    if (status != ARCHIVE_OK) return reader_.archive_error("entry " + quoted(path) + ": read");
    if (offset < 0 || static_cast<uint64_t>(offset) < position_) {
      return reader_.entry_error(path, "a data block at offset " + std::to_string(offset) +
                                           ", before the " + std::to_string(position_) +
                                           " bytes already read (a sparse map out of order)");
    }
    if (length > size_ || static_cast<uint64_t>(offset) > size_ - length) {
      return reader_.entry_error(path, std::to_string(length) + " bytes of data at offset " +
                                           std::to_string(offset) + ", past its size " +
                                           std::to_string(size_) + " (a sparse map past the end)");
    }
    block_ = std::span(static_cast<const std::byte*>(data), length);
    block_offset_ = static_cast<uint64_t>(offset);
    return ok();
  }

  LayerReader& reader_;
  uint64_t size_ = 0;
  uint64_t position_ = 0;             // bytes given out
  std::span<const std::byte> block_;  // the unread rest of the current block
  uint64_t block_offset_ = 0;         // where block_ starts in the file
  bool end_ = false;                  // libarchive has no more blocks
};

// libarchive's callbacks, with the LayerReader as client data.
struct LayerReader::Callbacks {
  static la_ssize_t read(::archive* a, void* client, const void** block) {
    auto* self = static_cast<LayerReader*>(client);
    auto n = self->raw_->read_some(self->buffer());
    if (!n) {
      self->raw_error_ = n.error();
      archive_set_error(a, EIO, "%s", n.error().message().c_str());
      return -1;
    }
    const auto got = self->buffer().first(n.value());
    self->sha_.update(got);
    self->raw_bytes_ += got.size();
    if (self->expected_.size && self->raw_bytes_ > *self->expected_.size) {
      self->raw_error_ = Error(errc::digest_mismatch, "more than the " + std::to_string(*self->expected_.size) +
                                                          " bytes its descriptor says");
      archive_set_error(a, EIO, "too long");
      return -1;
    }
    *block = got.data();
    return static_cast<la_ssize_t>(got.size());
  }
};

LayerReader::LayerReader(std::unique_ptr<InputStream> raw, std::string name, LayerExpectations expected)
    : raw_(std::move(raw)), name_(std::move(name)), expected_(expected),
      // Not zeroed: raw_ writes what is read back, and a small layer never
      // touches most of the block.
      buffer_(std::make_unique_for_overwrite<std::byte[]>(kReadBlock)) {}

std::span<std::byte> LayerReader::buffer() noexcept { return {buffer_.get(), kReadBlock}; }

LayerReader::~LayerReader() {
  if (archive_ != nullptr) archive_read_free(archive_);
}

Result<std::unique_ptr<LayerReader>> LayerReader::open(std::unique_ptr<InputStream> raw, std::string name,
                                                       LayerExpectations expected) {
  std::unique_ptr<LayerReader> reader(new LayerReader(std::move(raw), std::move(name), expected));
  reader->archive_ = archive_read_new();
  if (reader->archive_ == nullptr) return Error::from_errno(ENOMEM, reader->name_);
  ::archive* a = reader->archive_;
  // ARCHIVE_WARN would mean an external program: refused.
  if (archive_read_support_filter_none(a) != ARCHIVE_OK || archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
      archive_read_support_filter_zstd(a) != ARCHIVE_OK || archive_read_support_format_tar(a) != ARCHIVE_OK) {
    return Error(errc::unsupported_format, reader->name_ + ": libarchive lacks built-in gzip or zstd support");
  }
  if (archive_read_open(a, reader.get(), nullptr, &Callbacks::read, nullptr) != ARCHIVE_OK) {
    return reader->archive_error("open");
  }
  reader->data_ = std::make_unique<EntryData>(*reader);
  return reader;
}

Error LayerReader::archive_error(const std::string& what) const {
  if (raw_error_) return Error(raw_error_->code(), name_ + ": " + what + ": " + raw_error_->message());
  const char* text = archive_error_string(archive_);
  // libarchive's text may quote header fields: kept on one line.
  return Error(errc::corrupt_blob,
               name_ + ": " + what + ": " + (text != nullptr ? escaped(text) : "malformed archive"));
}

Error LayerReader::entry_error(const std::string& path, const std::string& what) const {
  return Error(errc::corrupt_blob, name_ + ": entry " + quoted(path) + ": " + what);
}

Result<std::optional<LayerEntry>> LayerReader::next() {
  if (done_) return std::optional<LayerEntry>();
  ::archive_entry* e = nullptr;
  const std::string where = current_path_.empty() ? "read" : "after entry " + quoted(current_path_);
  const int status = archive_read_next_header(archive_, &e);
  if (status == ARCHIVE_EOF) {
    PAGERFS_TRYV(finish());
    return std::optional<LayerEntry>();
  }
  if (status != ARCHIVE_OK && status != ARCHIVE_WARN) return archive_error(where);
  const char* raw_path = archive_entry_pathname(e);
  if (raw_path == nullptr) return archive_error(where + ": an entry without a readable path");
  current_path_ = raw_path;
  PAGERFS_TRY(entry, convert(e, current_path_));
  data_->reset(entry.kind == EntryKind::file ? entry.size : 0);
  return std::optional<LayerEntry>(std::move(entry));
}

Result<LayerEntry> LayerReader::convert(::archive_entry* e, const std::string& raw_path) {
  LayerEntry out;
  auto path = normalize_entry_path(raw_path);
  if (!path) return entry_error(raw_path, path.error().message());
  out.path = std::move(path.value());
  const char* hardlink = archive_entry_hardlink(e);
  if (hardlink != nullptr) {
    out.kind = EntryKind::hardlink;
    auto target = normalize_entry_path(hardlink);
    if (!target) return entry_error(raw_path, "hard link target " + quoted(hardlink) + ": " + target.error().message());
    out.hardlink_target = std::move(target.value());
  } else {
    switch (archive_entry_filetype(e)) {
      case AE_IFREG: out.kind = EntryKind::file; break;
      case AE_IFDIR: out.kind = EntryKind::directory; break;
      case AE_IFLNK: out.kind = EntryKind::symlink; break;
      case AE_IFCHR: out.kind = EntryKind::char_device; break;
      case AE_IFBLK: out.kind = EntryKind::block_device; break;
      case AE_IFIFO: out.kind = EntryKind::fifo; break;
      default: return entry_error(raw_path, "a type an image cannot hold (socket or unknown)");
    }
  }
  out.permissions = static_cast<uint32_t>(archive_entry_perm(e)) & 07777;
  const la_int64_t uid = archive_entry_uid(e);
  const la_int64_t gid = archive_entry_gid(e);
  if (uid < 0 || uid >= UINT32_MAX || gid < 0 || gid >= UINT32_MAX) {
    return entry_error(raw_path, "owner " + std::to_string(uid) + ":" + std::to_string(gid) + " out of range");
  }
  out.uid = static_cast<uint32_t>(uid);
  out.gid = static_cast<uint32_t>(gid);
  out.mtime_sec = archive_entry_mtime(e);
  const long nsec = archive_entry_mtime_nsec(e);
  if (nsec < 0 || nsec >= 1000000000) return entry_error(raw_path, "mtime nanoseconds out of range");
  out.mtime_nsec = static_cast<uint32_t>(nsec);
  if (out.kind == EntryKind::file) {
    const la_int64_t size = archive_entry_size(e);
    if (size < 0) return entry_error(raw_path, "a negative size");
    out.size = static_cast<uint64_t>(size);
  }
  if (out.kind == EntryKind::symlink) {
    const char* target = archive_entry_symlink(e);
    if (target == nullptr || *target == '\0') return entry_error(raw_path, "a symlink without a target");
    out.symlink_target = target;
    if (out.symlink_target.size() > image::kMaxSymlinkLength) {
      return entry_error(raw_path, "a symlink target longer than 4095 bytes");
    }
  }
  if (out.kind == EntryKind::char_device || out.kind == EntryKind::block_device) {
    out.rdev = static_cast<uint64_t>(archive_entry_rdev(e));
  }
  archive_entry_xattr_reset(e);
  const char* xname = nullptr;
  const void* value = nullptr;
  size_t value_size = 0;
  while (archive_entry_xattr_next(e, &xname, &value, &value_size) == ARCHIVE_OK) {
    if (xname == nullptr || !keep_xattr(xname)) continue;
    if (out.xattrs.size() == kMaxXattrs) return entry_error(raw_path, "more than 1024 xattrs");
    const std::string_view n(xname);
    if (n.size() > image::kMaxNameLength || value_size > image::kMaxXattrValue) {
      return entry_error(raw_path, "xattr " + quoted(n.substr(0, 64)) + " too large");
    }
    // A pax header may carry one xattr twice (LIBARCHIVE.xattr.* and
    // SCHILY.xattr.*): the last one counts.
    std::string v(static_cast<const char*>(value), value_size);
    const auto same = std::find_if(out.xattrs.begin(), out.xattrs.end(), [&](const image::Xattr& x) { return x.name == n; });
    if (same != out.xattrs.end()) {
      same->value = std::move(v);
    } else {
      out.xattrs.push_back({std::string(n), std::move(v)});
    }
  }
  return out;
}

InputStream& LayerReader::data() { return *data_; }

Result<void> LayerReader::finish() {
  done_ = true;
  // The rest of the raw stream: what libarchive did not need to ask for.
  for (;;) {
    auto n = raw_->read_some(buffer());
    if (!n) return Error(n.error().code(), name_ + ": " + n.error().message());
    if (n.value() == 0) break;
    sha_.update(buffer().first(n.value()));
    raw_bytes_ += n.value();
  }
  if (expected_.size && raw_bytes_ != *expected_.size) {
    return Error(errc::digest_mismatch, name_ + ": " + std::to_string(raw_bytes_) + " bytes, but its descriptor says " +
                                            std::to_string(*expected_.size));
  }
  const Digest got = sha_.finish();
  if (expected_.digest && got != *expected_.digest) {
    return Error(errc::digest_mismatch, name_ + ": its content is " + got.str() + ", not the digest the image names");
  }
  return ok();
}

}  // namespace pagerfs::oci
