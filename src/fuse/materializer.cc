#include "fuse/materializer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace pagerfs {

Materializer::Materializer(std::unique_ptr<MaterializedFiles> files, std::shared_ptr<Pager> pager, Options options,
                           std::shared_ptr<spdlog::logger> log)
    : files_(std::move(files)), pager_(std::move(pager)), options_(options), log_(std::move(log)) {
  background_ = std::thread([this] { run_background(); });
}

Materializer::~Materializer() { stop(); }

void Materializer::stop() {
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  if (background_.joinable()) background_.join();
}

std::optional<MaterializedFile> Materializer::backing_for_open(const Digest& content, const Source& source) {
  if (source.length == 0) return std::nullopt;
  auto found = files_->find(content);
  if (found && found.value()) return std::move(*found.value());
  if (source.length > options_.small_file_limit) return std::nullopt;
  auto made = materialize(content, source);
  MutexLock lock(mu_);
  if (!made) {
    ++stats_.failures;
    return std::nullopt;
  }
  ++stats_.materialized_on_open;
  return std::move(made).value();
}

void Materializer::read_whole(const Digest& content, const Source& source) {
  if (source.length <= options_.small_file_limit) return;  // made at its next open
  {
    MutexLock lock(mu_);
    if (stopping_ || queued_.contains(content)) return;
    if (queue_.size() >= options_.max_queued) {
      ++stats_.dropped;
      return;
    }
    queued_.insert(content);
    queue_.emplace_back(content, source);
  }
  wake_.notify_one();
}

Result<MaterializedFile> Materializer::materialize(const Digest& content, const Source& source) {
  // The pager reads whole pages (zeros past the blob's end): only the
  // file's own bytes are copied.
  const auto read = [&](uint64_t at, std::span<std::byte> buffer) -> Result<size_t> {
    const uint64_t want = std::min<uint64_t>(buffer.size(), source.length - std::min(at, source.length));
    if (want == 0) return size_t{0};
    PAGERFS_TRY(bytes, pager_->read(*source.blob, source.offset + at, want));
    const size_t got = static_cast<size_t>(std::min<uint64_t>(want, bytes.size()));
    std::memcpy(buffer.data(), bytes.data(), got);
    return got;
  };
  auto made = files_->add(content, source.length, read);
  if (!made) log_->warn("passthrough: cannot materialize {}: {}", content.str(), made.error().message());
  return made;
}

void Materializer::run_background() {
  for (;;) {
    std::pair<Digest, Source> job;
    {
      MutexLock lock(mu_);
      wake_.wait(mu_, [this]() REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      ++stats_.making;
    }
    // Made by an open meanwhile, or by another daemon on the same directory.
    auto found = files_->find(job.first);
    const bool present = found && found.value();
    const bool made = present || materialize(job.first, job.second).has_value();
    MutexLock lock(mu_);
    --stats_.making;
    queued_.erase(job.first);
    if (!present) ++(made ? stats_.materialized_in_background : stats_.failures);
  }
}

Materializer::Stats Materializer::stats() const {
  MutexLock lock(mu_);
  Stats out = stats_;
  out.queued = queue_.size();
  return out;
}

}  // namespace pagerfs
