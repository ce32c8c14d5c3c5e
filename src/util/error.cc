#include "pagerfs/util/error.h"

#include <cerrno>
#include <cstring>
#include <exception>
#include <new>

namespace pagerfs {
namespace {

class PagerfsCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "pagerfs"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::corrupt_blob: return "corrupt blob";
      case errc::unsupported_format: return "unsupported blob format";
      case errc::checksum_mismatch: return "chunk checksum mismatch";
      case errc::digest_mismatch: return "content digest mismatch";
      case errc::invalid_argument: return "invalid argument";
      case errc::not_a_store: return "not a pagerfs store";
      case errc::shutting_down: return "shutting down";
      case errc::not_a_regular_file: return "not a regular file";
    }
    return "unknown pagerfs error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& pagerfs_category() noexcept {
  static const PagerfsCategory category;
  return category;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), pagerfs_category()}; }

Error Error::from_errno(int err, std::string_view context) {
  std::string message(context);
  message += ": ";
  message += std::strerror(err);
  return Error(std::error_code(err, std::system_category()), std::move(message));
}

Error Error::with_context(std::string_view context) const {
  std::string message(context);
  message += ": ";
  message += message_;
  return Error(code_, std::move(message));
}

Error current_exception_error() noexcept {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return Error(std::make_error_code(std::errc::not_enough_memory), "out of memory");
  } catch (const std::exception& e) {
    try {
      return Error(std::make_error_code(std::errc::io_error), std::string("internal error: ") + e.what());
    } catch (...) {
    }
  } catch (...) {
  }
  return Error(std::make_error_code(std::errc::io_error), "internal error");
}

void outcome_throw_as_system_error_with_payload(const Error& e) {
  throw std::system_error(e.code(), e.message());
}

int to_errno(const std::error_code& code) noexcept {
  if (!code) return 0;
  if (code.category() == std::system_category() || code.category() == std::generic_category()) {
    return code.value();
  }
  if (code.category() == pagerfs_category()) {
    switch (static_cast<errc>(code.value())) {
      case errc::corrupt_blob:
      case errc::unsupported_format:
      case errc::checksum_mismatch:
      case errc::digest_mismatch: return EIO;
      case errc::invalid_argument: return EINVAL;
      case errc::not_a_store: return ENOENT;
      case errc::shutting_down: return ESHUTDOWN;
      case errc::not_a_regular_file: return EIO;
    }
  }
  return EIO;
}

}  // namespace pagerfs
