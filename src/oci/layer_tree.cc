#include "pagerfs/oci/layer_tree.h"

#include <sys/stat.h>

#include <algorithm>
#include <unordered_map>

#include "store/pack_planner.h"
#include "util/quoted.h"

namespace pagerfs::oci {
namespace {

// What a directory reports as its size (as ext4 does for a small one).
constexpr uint64_t kDirectorySize = 4096;

uint32_t type_bits(EntryKind kind) noexcept {
  switch (kind) {
    case EntryKind::file: return S_IFREG;
    case EntryKind::directory: return S_IFDIR;
    case EntryKind::symlink: return S_IFLNK;
    case EntryKind::char_device: return S_IFCHR;
    case EntryKind::block_device: return S_IFBLK;
    case EntryKind::fifo: return S_IFIFO;
    case EntryKind::hardlink: break;
  }
  return 0;
}

std::string_view parent_path(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}

std::string_view leaf_name(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

bool is_whiteout(std::string_view path) noexcept { return leaf_name(path).starts_with(kWhiteoutPrefix); }

struct LayerTree::Inode {
  EntryKind kind = EntryKind::directory;
  uint32_t permissions = 0755;
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint64_t size = 0;
  Digest content;
  std::string symlink_target;
  uint64_t rdev = 0;
  std::vector<image::Xattr> xattrs;
};

struct LayerTree::Node {
  std::shared_ptr<Inode> inode;
  uint32_t layer = 0;  // the layer that wrote this path
  std::map<std::string, std::unique_ptr<Node>, std::less<>> children;  // directories only
  bool is_directory() const noexcept { return inode->kind == EntryKind::directory; }
};

LayerTree::LayerTree() : root_(std::make_unique<Node>()) { root_->inode = std::make_shared<Inode>(); }

LayerTree::~LayerTree() = default;

void LayerTree::begin_layer(uint32_t index, std::string name) {
  layer_ = index;
  layer_name_ = std::move(name);
}

Error LayerTree::error(std::string_view path, const std::string& what) const {
  return Error(errc::corrupt_blob, layer_name_ + ": entry " + quoted(path) + ": " + what);
}

LayerTree::Node* LayerTree::find(std::string_view path) const {
  Node* node = root_.get();
  size_t start = 0;
  while (!path.empty() && start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (!node->is_directory()) return nullptr;
    const auto it = node->children.find(path.substr(start, end - start));
    if (it == node->children.end()) return nullptr;
    node = it->second.get();
    start = end + 1;
  }
  return node;
}

Result<LayerTree::Node*> LayerTree::parent_of(std::string_view path, std::string_view& leaf) {
  leaf = leaf_name(path);
  const std::string_view parents = parent_path(path);
  Node* node = root_.get();
  size_t start = 0;
  while (!parents.empty() && start <= parents.size()) {
    size_t end = parents.find('/', start);
    if (end == std::string_view::npos) end = parents.size();
    const std::string_view name = parents.substr(start, end - start);
    const std::string_view so_far = parents.substr(0, end);
    start = end + 1;
    auto it = node->children.find(name);
    if (it == node->children.end()) {
      if (name.starts_with(kWhiteoutPrefix)) return error(path, "a whiteout " + quoted(so_far) + " used as a directory");
      auto made = std::make_unique<Node>();
      made->inode = std::make_shared<Inode>();  // 0755, root, mtime 0
      made->layer = layer_;
      it = node->children.emplace(std::string(name), std::move(made)).first;
      ++paths_;
    }
    Node* child = it->second.get();
    if (!child->is_directory()) {
      return error(path, "parent " + quoted(so_far) + " is a " + kind_name(child->inode->kind) +
                             ", not a directory");
    }
    node = child;
  }
  return node;
}

void LayerTree::count_removed(const Node& node) {
  --paths_;
  for (const auto& [name, child] : node.children) count_removed(*child);
}

void LayerTree::remove_lower(Node& dir) {
  for (auto it = dir.children.begin(); it != dir.children.end();) {
    Node& child = *it->second;
    // Lower layers' entries under a directory this layer rewrote are hidden too.
    if (child.is_directory()) remove_lower(child);
    if (child.layer < layer_ && child.children.empty()) {
      count_removed(child);
      it = dir.children.erase(it);
    } else {
      ++it;
    }
  }
}

Result<void> LayerTree::apply(const LayerEntry& entry, const Digest& content) {
  const std::string& path = entry.path;
  if (path.empty()) {
    if (entry.kind != EntryKind::directory) return error(path, "the root is a " + std::string(kind_name(entry.kind)));
  }
  const std::string_view leaf = leaf_name(path);
  if (leaf.starts_with(kWhiteoutPrefix)) {
    // A whiteout removes what is there; under a missing parent, or one that
    // is not a directory, there is nothing to remove.
    Node* dir = find(parent_path(path));
    if (leaf == kOpaqueWhiteout) {
      if (dir != nullptr && dir->is_directory()) remove_lower(*dir);
      return ok();
    }
    const std::string_view name = leaf.substr(kWhiteoutPrefix.size());
    if (name.empty() || name == "." || name == "..") return error(path, "a whiteout escapes its directory");
    if (dir == nullptr || !dir->is_directory()) return ok();
    const auto it = dir->children.find(name);
    if (it != dir->children.end() && it->second->layer < layer_) {
      count_removed(*it->second);
      dir->children.erase(it);
    }
    return ok();
  }

  std::shared_ptr<Inode> inode;
  if (entry.kind == EntryKind::hardlink) {
    if (entry.hardlink_target == path) {
      if (Node* self = find(path); self != nullptr && !self->is_directory()) return ok();
    }
    Node* target = find(entry.hardlink_target);
    if (target == nullptr) return error(path, "hard link to missing target " + quoted(entry.hardlink_target));
    if (target->is_directory()) return error(path, "hard link to a directory " + quoted(entry.hardlink_target));
    inode = target->inode;
  } else {
    inode = std::make_shared<Inode>();
    inode->kind = entry.kind;
    inode->permissions = entry.permissions & 07777;
    inode->uid = entry.uid;
    inode->gid = entry.gid;
    inode->mtime_sec = entry.mtime_sec;
    inode->mtime_nsec = entry.mtime_nsec;
    inode->xattrs = entry.xattrs;
    if (entry.kind == EntryKind::file) {
      inode->size = entry.size;
      inode->content = content;
    } else if (entry.kind == EntryKind::symlink) {
      inode->symlink_target = entry.symlink_target;
      inode->size = entry.symlink_target.size();
    } else if (entry.kind == EntryKind::char_device || entry.kind == EntryKind::block_device) {
      inode->rdev = entry.rdev;
    } else if (entry.kind == EntryKind::directory) {
      inode->size = kDirectorySize;
    }
  }

  if (path.empty()) {
    root_->inode = std::move(inode);
    root_->layer = layer_;
    return ok();
  }
  std::string_view name;
  PAGERFS_TRY(dir, parent_of(path, name));
  auto it = dir->children.find(name);
  if (it != dir->children.end()) {
    Node& existing = *it->second;
    if (existing.is_directory() && inode->kind == EntryKind::directory) {
      existing.inode = std::move(inode);
      existing.layer = layer_;
      return ok();
    }
    count_removed(existing);
    dir->children.erase(it);
  }
  if (paths_ >= image::kMaxEntries) return error(path, "more entries than an image may have");
  auto node = std::make_unique<Node>();
  node->inode = std::move(inode);
  node->layer = layer_;
  dir->children.emplace(std::string(name), std::move(node));
  ++paths_;
  return ok();
}

std::vector<image::EntrySpec> LayerTree::entries() const {
  // Every path, depth first.
  std::vector<std::pair<std::string, const Node*>> all;
  all.reserve(paths_);
  std::vector<std::pair<std::string, const Node*>> stack{{"", root_.get()}};
  while (!stack.empty()) {
    auto [path, node] = std::move(stack.back());
    stack.pop_back();
    for (const auto& [name, child] : node->children) {
      stack.emplace_back(path.empty() ? name : path + "/" + name, child.get());
    }
    all.emplace_back(std::move(path), node);
  }
  // The path each shared inode is stored under: the first in manifest order.
  std::unordered_map<const Inode*, const std::string*> primary;
  for (const auto& [path, node] : all) {
    if (node->is_directory()) continue;
    auto [it, inserted] = primary.emplace(node->inode.get(), &path);
    if (!inserted && manifest_order_less(path, *it->second)) it->second = &path;
  }
  std::vector<image::EntrySpec> out;
  out.reserve(all.size());
  for (const auto& [path, node] : all) {
    const Inode& inode = *node->inode;
    image::EntrySpec e;
    e.path = path;
    if (!node->is_directory()) {
      const std::string& first = *primary.at(&inode);
      if (first != path) {
        e.type = image::EntryType::hardlink;
        e.hardlink_target = first;
        out.push_back(std::move(e));
        continue;
      }
    }
    switch (inode.kind) {
      case EntryKind::file: e.type = image::EntryType::file; break;
      case EntryKind::directory: e.type = image::EntryType::directory; break;
      case EntryKind::symlink: e.type = image::EntryType::symlink; break;
      default: e.type = image::EntryType::special; break;
    }
    e.mode = type_bits(inode.kind) | inode.permissions;
    e.uid = inode.uid;
    e.gid = inode.gid;
    e.mtime_sec = inode.mtime_sec;
    e.mtime_nsec = inode.mtime_nsec;
    e.size = inode.size;
    e.digest = inode.content;
    e.symlink_target = inode.symlink_target;
    e.rdev = inode.rdev;
    e.xattrs = inode.xattrs;
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace pagerfs::oci
