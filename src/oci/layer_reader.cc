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

// The data of the current entry, read through archive_read_data.
class LayerReader::EntryData final : public InputStream {
 public:
  explicit EntryData(LayerReader& reader) : reader_(reader) {}
  Result<size_t> read_some(std::span<std::byte> out) override {
    if (out.empty()) return size_t{0};
    const la_ssize_t n = archive_read_data(reader_.archive_, out.data(), out.size());
    if (n < 0) return reader_.archive_error("entry " + quoted(reader_.current_path_) + ": read");
    return static_cast<size_t>(n);
  }
  const std::string& name() const noexcept override { return reader_.current_path_; }

 private:
  LayerReader& reader_;
};

// libarchive's callbacks, with the LayerReader as client data.
struct LayerReader::Callbacks {
  static la_ssize_t read(::archive* a, void* client, const void** block) {
    auto* self = static_cast<LayerReader*>(client);
    auto n = self->raw_->read_some(self->buffer_);
    if (!n) {
      self->raw_error_ = n.error();
      archive_set_error(a, EIO, "%s", n.error().message().c_str());
      return -1;
    }
    const auto got = std::span(self->buffer_).first(n.value());
    self->sha_.update(got);
    self->raw_bytes_ += got.size();
    if (self->expected_.size && self->raw_bytes_ > *self->expected_.size) {
      self->raw_error_ = Error(errc::digest_mismatch, "more than the " + std::to_string(*self->expected_.size) +
                                                          " bytes its descriptor says");
      archive_set_error(a, EIO, "too long");
      return -1;
    }
    *block = self->buffer_.data();
    return static_cast<la_ssize_t>(got.size());
  }
};

LayerReader::LayerReader(std::unique_ptr<InputStream> raw, std::string name, LayerExpectations expected)
    : raw_(std::move(raw)), name_(std::move(name)), expected_(expected), buffer_(kReadBlock) {}

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
  return Error(errc::corrupt_blob,
               name_ + ": " + what + ": " + (text != nullptr ? text : "malformed archive"));
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
    auto n = raw_->read_some(buffer_);
    if (!n) return Error(n.error().code(), name_ + ": " + n.error().message());
    if (n.value() == 0) break;
    sha_.update(std::span(buffer_).first(n.value()));
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
