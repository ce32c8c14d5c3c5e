#include "oci/docker_archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "oci/json_fields.h"
#include "oci/source_files.h"
#include "util/quoted.h"

namespace pagerfs::oci {
namespace {

// A reference as docker names it in full: "busybox" and "docker.io/busybox"
// are "docker.io/library/busybox:latest", "me/app:1" is "docker.io/me/app:1";
// a first component with a '.' or ':', or "localhost", is a registry.
std::string full_reference(std::string_view ref) {
  std::string out(ref);
  const size_t slash = out.find('/');
  const std::string_view first = slash == std::string::npos ? std::string_view() : std::string_view(out).substr(0, slash);
  const bool has_registry = !first.empty() && (first.find_first_of(".:") != std::string_view::npos || first == "localhost");
  if (!has_registry) out = "docker.io/" + out;
  // Docker Hub's official images live under library/.
  if (out.starts_with("docker.io/") && out.find('/', 10) == std::string::npos) out.insert(10, "library/");
  // A tag is a ':' after the last '/'; a digest ("@sha256:...") is not a tag.
  const size_t last_slash = out.rfind('/');
  if (out.find('@') == std::string::npos && out.find(':', last_slash) == std::string::npos) out += ":latest";
  return out;
}

// Whether RepoTags entry `tag` names what the user asked for: `docker save`
// writes "busybox:latest", `skopeo copy` "docker.io/library/busybox:latest".
bool same_reference(std::string_view tag, std::string_view ref) { return full_reference(tag) == full_reference(ref); }


// One pass over the archive, from its start: the member streams out of it.
class ArchivePass final : public InputStream {
 public:
  ~ArchivePass() override {
    if (archive_ != nullptr) archive_read_free(archive_);
  }

  static Result<std::unique_ptr<ArchivePass>> open(const std::string& file) {
    std::unique_ptr<ArchivePass> pass(new ArchivePass(file));
    pass->archive_ = archive_read_new();
    ::archive* a = pass->archive_;
    if (a == nullptr) return Error::from_errno(ENOMEM, pagerfs::quoted(file));
    if (archive_read_support_filter_none(a) != ARCHIVE_OK || archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
        archive_read_support_filter_zstd(a) != ARCHIVE_OK || archive_read_support_format_tar(a) != ARCHIVE_OK) {
      return Error(errc::unsupported_format, pagerfs::quoted(file) + ": libarchive lacks built-in gzip or zstd support");
    }
    if (archive_read_open_filename(a, file.c_str(), 64u << 10) != ARCHIVE_OK) return pass->error("open");
    return pass;
  }

  // Moves to the member called `member` (normalized); false if there is none.
  Result<bool> seek(const std::string& member) {
    for (;;) {
      ::archive_entry* e = nullptr;
      const int status = archive_read_next_header(archive_, &e);
      if (status == ARCHIVE_EOF) return false;
      if (status != ARCHIVE_OK && status != ARCHIVE_WARN) return error("read");
      const char* path = archive_entry_pathname(e);
      if (path == nullptr || archive_entry_filetype(e) != AE_IFREG) continue;
      auto normalized = normalize_entry_path(path);
      if (normalized && normalized.value() == member) {
        name_ = pagerfs::quoted(file_) + " member " + pagerfs::quoted(member);
        return true;
      }
    }
  }

  Result<size_t> read_some(std::span<std::byte> out) override {
    if (out.empty()) return size_t{0};
    const la_ssize_t n = archive_read_data(archive_, out.data(), out.size());
    if (n < 0) return error("read member");
    return static_cast<size_t>(n);
  }
  const std::string& name() const noexcept override { return name_; }

 private:
  explicit ArchivePass(std::string file) : file_(std::move(file)), name_(pagerfs::quoted(file_)) {}
  Error error(const std::string& what) const {
    const char* text = archive_error_string(archive_);
    return Error(errc::corrupt_blob, name_ + ": " + what + ": " + (text != nullptr ? text : "malformed archive"));
  }

  std::string file_;
  std::string name_;
  ::archive* archive_ = nullptr;
};

// A stream whose first bytes were read already (to see what it holds).
class PeekedStream final : public InputStream {
 public:
  PeekedStream(std::unique_ptr<InputStream> rest, std::vector<std::byte> head)
      : rest_(std::move(rest)), head_(std::move(head)) {}
  Result<size_t> read_some(std::span<std::byte> out) override {
    if (used_ < head_.size()) {
      const size_t n = std::min(out.size(), head_.size() - used_);
      std::memcpy(out.data(), head_.data() + used_, n);
      used_ += n;
      return n;
    }
    return rest_->read_some(out);
  }
  const std::string& name() const noexcept override { return rest_->name(); }

 private:
  std::unique_ptr<InputStream> rest_;
  std::vector<std::byte> head_;
  size_t used_ = 0;
};

// Whether `head` starts like a gzip or zstd stream.
bool looks_compressed(std::span<const std::byte> head) {
  auto starts = [&](std::initializer_list<uint8_t> magic) {
    if (head.size() < magic.size()) return false;
    size_t i = 0;
    for (uint8_t b : magic) {
      if (static_cast<uint8_t>(head[i++]) != b) return false;
    }
    return true;
  };
  return starts({0x1f, 0x8b}) || starts({0x28, 0xb5, 0x2f, 0xfd});
}

// The digest a member's name gives ("blobs/sha256/<hex>", "<hex>.json",
// "<hex>.tar", "<hex>/layer.tar" are not: the last is a v1 id).
std::optional<Digest> digest_of_name(std::string_view member, std::string_view suffix) {
  std::string_view hex = member;
  if (hex.starts_with("blobs/sha256/")) {
    hex.remove_prefix(13);
  } else if (!suffix.empty() && hex.ends_with(suffix)) {
    hex.remove_suffix(suffix.size());
  } else {
    return std::nullopt;
  }
  if (!Digest::is_canonical_hex(hex)) return std::nullopt;
  return Digest::parse(hex).value();
}

Result<std::vector<std::byte>> read_member(const std::string& file, const std::string& member) {
  PAGERFS_TRY(pass, ArchivePass::open(file));
  PAGERFS_TRY(found, pass->seek(member));
  if (!found) return Error(errc::corrupt_blob, pagerfs::quoted(file) + " has no member " + pagerfs::quoted(member));
  return read_bounded_stream(*pass, kMaxMetadataBytes, pass->name());
}

Result<std::string> normalized_member(const Json& value, const std::string& file, const std::string& what) {
  if (!value.is_string()) return Error(errc::corrupt_blob, file + ": " + what + " is not a string");
  auto path = normalize_entry_path(value.get<std::string>());
  if (!path || path.value().empty()) {
    return Error(errc::corrupt_blob, file + ": " + what + ": not a member path");
  }
  return path;
}

}  // namespace

Result<ImageSource> open_docker_archive(const std::string& file, const std::optional<std::string>& ref) {
  const std::string manifest_file = pagerfs::quoted(file) + " member 'manifest.json'";
  PAGERFS_TRY(manifest_bytes, read_member(file, "manifest.json"));
  PAGERFS_TRY(manifest, parse_json(manifest_bytes, manifest_file));
  if (!manifest.is_array() || manifest.empty()) {
    return Error(errc::corrupt_blob, manifest_file + ": not a non-empty array");
  }
  // The image: by RepoTags, or the only one.
  const Json* chosen = nullptr;
  std::string tags;
  for (size_t i = 0; i < manifest.size(); ++i) {
    const std::string what = "[" + std::to_string(i) + "]";
    PAGERFS_TRY(repo_tags, member(manifest[i], "RepoTags", Json::value_t::array, manifest_file, what, true));
    if (repo_tags == nullptr) continue;
    for (const Json& tag : *repo_tags) {
      if (!tag.is_string()) return Error(errc::corrupt_blob, manifest_file + ": " + what + ".RepoTags holds a non-string");
      const std::string t = tag.get<std::string>();
      tags += (tags.empty() ? "" : ", ") + t;
      if (ref && same_reference(t, *ref) && chosen == nullptr) chosen = &manifest[i];
    }
  }
  if (ref && chosen == nullptr) {
    return Error(std::make_error_code(std::errc::no_such_file_or_directory),
                 pagerfs::quoted(file) + " has no image tagged " + pagerfs::quoted(*ref) + " (tags: " + tags + ")");
  }
  if (!ref) {
    if (manifest.size() != 1) {
      return Error(errc::invalid_argument, pagerfs::quoted(file) + " holds " + std::to_string(manifest.size()) +
                                               " images; name one as docker-archive:FILE:REF (tags: " + tags + ")");
    }
    chosen = &manifest[0];
  }
  PAGERFS_TRY(config_value, member(*chosen, "Config", Json::value_t::string, manifest_file, "the image"));
  PAGERFS_TRY(config_member, normalized_member(*config_value, manifest_file, "Config"));
  PAGERFS_TRY(layers, member(*chosen, "Layers", Json::value_t::array, manifest_file, "the image"));

  ImageSource source;
  source.description = "docker-archive:" + file + (ref ? ":" + *ref : "");
  PAGERFS_TRY(config, read_member(file, config_member));
  const std::string config_file = pagerfs::quoted(file) + " member " + pagerfs::quoted(config_member);
  if (auto named = digest_of_name(config_member, ".json"); named && Sha256::of(config) != *named) {
    return Error(errc::digest_mismatch, config_file + ": its content does not match its name");
  }
  PAGERFS_TRY(diff_ids, config_diff_ids(config, config_file, layers->size()));
  source.config = std::move(config);
  for (size_t i = 0; i < layers->size(); ++i) {
    PAGERFS_TRY(layer_member, normalized_member((*layers)[i], manifest_file, "Layers[" + std::to_string(i) + "]"));
    LayerSource layer;
    layer.name = layer_name(i, diff_ids[i]);
    const Digest diff_id = diff_ids[i];
    const std::optional<Digest> named = digest_of_name(layer_member, "");
    layer.open = [file, layer_member, diff_id, named, name = layer.name]() -> Result<OpenedLayer> {
      PAGERFS_TRY(pass, ArchivePass::open(file));
      PAGERFS_TRY(found, pass->seek(layer_member));
      if (!found) return Error(errc::corrupt_blob, name + ": " + pagerfs::quoted(file) + " has no member " + pagerfs::quoted(layer_member));
      std::vector<std::byte> head(4);
      size_t got = 0;
      while (got < head.size()) {
        PAGERFS_TRY(n, pass->read_some(std::span(head).subspan(got)));
        if (n == 0) break;
        got += n;
      }
      head.resize(got);
      LayerExpectations expected;
      // docker save writes layers uncompressed: their digest is the diff_id.
      expected.digest = looks_compressed(head) ? named : std::optional<Digest>(diff_id);
      if (!looks_compressed(head) && named && *named != diff_id) {
        return Error(errc::digest_mismatch, name + ": member " + pagerfs::quoted(layer_member) +
                                                " is named by another digest than its diff_id");
      }
      return OpenedLayer{std::make_unique<PeekedStream>(std::move(pass), std::move(head)), expected};
    };
    source.layers.push_back(std::move(layer));
  }
  return source;
}

}  // namespace pagerfs::oci
