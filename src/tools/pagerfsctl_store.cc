// pagerfsctl verify and images: a store's blobs and images, checked or listed.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string_view>

#include "pagerfs/store/image_catalog.h"
#include "pagerfs/store/inspection.h"
#include "pagerfs/store/store.h"
#include "pagerfs/store/verify.h"
#include "pagerfs/remote/remote_images.h"
#include "pagerfs/util/digest.h"
#include "pagerfs/util/units.h"
#include "tools/pagerfsctl.h"

namespace pagerfs::ctl {

namespace {

// One line on stdout for each blob or image checked ("ok       ...",
// "CORRUPT  ...", "ERROR    ..."), the reason on stderr.
enum class Verdict { ok, corrupt, unreadable };

template <class T>
Verdict verdict_of(const Result<T>& checked) {
  if (checked) return Verdict::ok;
  return is_corruption(checked.error().code()) ? Verdict::corrupt : Verdict::unreadable;
}

}  // namespace

int run_verify(const std::string& store_path, const std::vector<std::string>& digests, unsigned threads) {
  auto store = Store::open(store_path);
  if (!store) return print_error(store.error().message()), kExitUsage;
  StoreVerifier verifier(std::move(store).value(), threads);
  std::vector<Digest> targets;
  if (digests.empty()) {
    auto all = verifier.blobs();
    if (!all) return print_error(all.error().message()), kExitUsage;
    targets = std::move(all).value();
  } else {
    for (const std::string& text : digests) {
      auto d = Digest::parse(text);
      if (!d) return print_error(d.error().message()), kExitUsage;
      targets.push_back(d.value());
    }
  }
  size_t corrupt = 0, failed = 0;
  for (const Digest& digest : targets) {
    auto verified = verifier.verify_blob(digest);
    switch (verdict_of(verified)) {
      case Verdict::ok:
        std::printf("ok       %s\n", digest.str().c_str());
        break;
      case Verdict::corrupt:
        ++corrupt;
        std::printf("CORRUPT  %s\n", digest.str().c_str());
        std::fprintf(stderr, "pagerfsctl: corrupt blob %s: %s\n", digest.str().c_str(),
                     verified.error().message().c_str());
        break;
      case Verdict::unreadable:
        ++failed;
        std::printf("ERROR    %s\n", digest.str().c_str());
        std::fprintf(stderr, "pagerfsctl: cannot verify %s: %s\n", digest.str().c_str(),
                     verified.error().message().c_str());
        break;
    }
  }
  std::fflush(stdout);
  std::fprintf(stderr, "pagerfsctl: %zu blob(s) checked: %zu ok, %zu corrupt, %zu unreadable\n",
               targets.size(), targets.size() - corrupt - failed, corrupt, failed);

  // Images, when the whole store was checked (against the blobs found whole).
  if (digests.empty()) {
    auto names = verifier.images();
    if (!names) return print_error(names.error().message()), kExitUsage;
    size_t bad_images = 0;
    for (const std::string& name : names.value()) {
      const Result<void> checked = verifier.verify_image(name);
      const Verdict verdict = verdict_of(checked);
      if (verdict == Verdict::ok) {
        std::printf("ok       image %s\n", name.c_str());
        continue;
      }
      ++bad_images;
      std::printf("%s image %s\n", verdict == Verdict::corrupt ? "CORRUPT " : "ERROR   ", name.c_str());
      std::fprintf(stderr, "pagerfsctl: %s\n", checked.error().message().c_str());
      if (verdict == Verdict::corrupt) ++corrupt; else ++failed;
    }
    std::fflush(stdout);
    std::fprintf(stderr, "pagerfsctl: %zu image(s) checked: %zu ok, %zu bad\n", names.value().size(),
                 names.value().size() - bad_images, bad_images);
  }
  if (corrupt > 0) return kExitFailure;
  return failed > 0 ? kExitUsage : kExitOk;
}

// Lists the store's images, or the entries of one.
int run_images(const std::string& store_path, const std::optional<std::string>& name, bool json) {
  auto store = Store::open(store_path);
  if (!store) return print_error(store.error().message()), kExitFailure;
  const ImageCatalog catalog(std::move(store).value());
  if (name) {
    auto manifest = catalog.manifest(*name);
    if (!manifest) return print_error(manifest.error().message()), kExitFailure;
    const image::Manifest& m = manifest.value();
    // Checked whole first: the listing below then meets no malformed entry.
    if (auto checked = m.verify(); !checked) {
      return print_error("image '" + *name + "': " + checked.error().message()), kExitFailure;
    }
    nlohmann::json entries = nlohmann::json::array();
    image::EntryPaths paths(m);
    for (uint32_t i = 0; i < m.size(); ++i) {
      const image::Entry e = m.entry(i).value();
      const std::string& walked = paths.of(e);
      const std::string_view path = i == 0 ? std::string_view(".") : std::string_view(walked);
      const uint32_t target = m.resolve(i).value();
      const image::Content content =
          e.type == image::EntryType::file ? m.content(e).value() : image::Content{};
      std::string detail;
      if (e.type == image::EntryType::file) {
        detail = content.digest.str();
        if (content.packed()) detail += " in " + content.blob.str() + " at " + std::to_string(content.offset);
      }
      if (e.type == image::EntryType::symlink) detail = "-> " + std::string(m.symlink_target(e));
      if (e.type == image::EntryType::hardlink) detail = "=> " + m.path(target);
      if (json) {
        nlohmann::json j = {{"path", std::string(path)}, {"type", image::listing_type_name(e.type)}, {"mode", e.mode & 07777},
                            {"uid", e.uid}, {"gid", e.gid}, {"mtime_ns", e.mtime_sec * 1000000000 + e.mtime_nsec},
                            {"size", e.size}, {"nlink", m.entry(target).value().nlink}};
        if (e.type == image::EntryType::file) {
          j["digest"] = content.digest.str();
          if (content.packed()) {
            j["pack"] = content.blob.str();
            j["offset"] = content.offset;
          }
        }
        if (e.type == image::EntryType::symlink) j["target"] = std::string(m.symlink_target(e));
        if (e.type == image::EntryType::hardlink) j["target"] = m.path(target);
        nlohmann::json xattrs = nlohmann::json::object();
        for (const image::Xattr& x : m.xattrs(e)) xattrs[x.name] = x.value;
        if (!xattrs.empty()) j["xattrs"] = xattrs;
        entries.push_back(std::move(j));
        continue;
      }
      std::printf("%-8s %04o %5u %5u %12llu  %.*s%s%s\n", image::listing_type_name(e.type), e.mode & 07777, e.uid, e.gid,
                  static_cast<unsigned long long>(e.size), static_cast<int>(path.size()), path.data(),
                  detail.empty() ? "" : "  ",
                  detail.c_str());
    }
    if (json) std::cout << entries.dump(2) << '\n';
    return kExitOk;
  }
  auto names = catalog.names();
  if (!names) return print_error(names.error().message()), kExitFailure;
  nlohmann::json images = nlohmann::json::array();
  if (!json && !names.value().empty()) {
    std::printf("%-24s %10s %10s %12s  %s\n", "IMAGE", "ENTRIES", "FILES", "SIZE", "MANIFEST");
  }
  int status = kExitOk;
  for (const std::string& image_name : names.value()) {
    auto manifest = catalog.manifest(image_name);
    if (!manifest) {
      print_error(manifest.error().message());
      status = kExitFailure;
      continue;
    }
    auto summary = image::summarize(manifest.value());
    if (!summary) {
      print_error("image '" + image_name + "': " + summary.error().message());
      status = kExitFailure;
      continue;
    }
    // The digest that anchors the image on a host that reads it from a
    // remote (pagerfs -o image=NAME@sha256:HEX).
    auto digest = manifest_digest(catalog.store(), image_name);
    if (!digest) {
      print_error("image '" + image_name + "': " + digest.error().message());
      status = kExitFailure;
      continue;
    }
    const image::Summary& s = summary.value();
    if (json) {
      images.push_back({{"name", image_name}, {"entries", s.entries}, {"files", s.files}, {"bytes", s.bytes},
                        {"blobs", s.blobs}, {"manifest_digest", digest.value().str()}});
    } else {
      std::printf("%-24s %10u %10llu %12s  %s\n", image_name.c_str(), s.entries,
                  static_cast<unsigned long long>(s.files), format_size(s.bytes).c_str(), digest.value().str().c_str());
    }
  }
  if (json) std::cout << images.dump(2) << '\n';
  return status;
}

}  // namespace pagerfs::ctl
