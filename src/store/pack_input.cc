#include "store/pack_input.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <system_error>

#include "util/quoted.h"

namespace pagerfs {
namespace {

class PackInputStream final : public InputStream {
 public:
  PackInputStream(const TreeScan& scan, std::vector<PackMember> members, std::string name)
      : scan_(scan), members_(std::move(members)), name_(std::move(name)) {}

  Result<size_t> read_some(std::span<std::byte> out) override {
    while (next_ < members_.size()) {
      const PackMember& m = members_[next_];
      if (!fd_) {
        PAGERFS_TRY(fd, open_scanned_file(scan_, *m.file));
        ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
        fd_.emplace(std::move(fd));
        sha_.emplace();
        done_ = 0;
      }
      // One byte more than is left: a file that grew is caught here.
      const uint64_t left = m.size - done_;
      const size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), left + 1));
      const ssize_t n = ::read(fd_->get(), out.data(), want);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error::from_errno(errno, "read " + quoted(m.file->source));
      }
      const auto got = static_cast<size_t>(n);
      if (got > left) return changed(m, "it grew");
      if (got > 0) {
        sha_->update(out.first(got));
        done_ += got;
        return got;
      }
      // The end of this member.
      if (done_ != m.size) return changed(m, "it shrank");
      if (sha_->finish() != m.digest) return changed(m, "its content is not what was hashed");
      fd_.reset();
      ++next_;
    }
    return size_t{0};
  }

  const std::string& name() const noexcept override { return name_; }

 private:
  // As tree_scan's: ESTALE, the name now refers to other content.
  static Error changed(const PackMember& m, const std::string& how) {
    return Error(std::error_code(ESTALE, std::generic_category()),
                 quoted(m.file->source) + " changed during pack: " + how + " after it was hashed");
  }

  const TreeScan& scan_;
  std::vector<PackMember> members_;
  std::string name_;
  size_t next_ = 0;             // the member being read
  std::optional<UniqueFd> fd_;  // of members_[next_], once opened
  std::optional<Sha256> sha_;   // of what was read of it
  uint64_t done_ = 0;           // bytes read of it
};

}  // namespace

std::unique_ptr<InputStream> pack_input_stream(const TreeScan& scan,
                                               std::vector<PackMember> members, std::string name) {
  return std::make_unique<PackInputStream>(scan, std::move(members), std::move(name));
}

}  // namespace pagerfs
