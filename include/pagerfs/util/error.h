// The one error model of pagerfs.
//
// Every fallible function returns `Result<T>`: a value, or an `Error` that
// carries a `std::error_code` (what kind of failure, for programs) and a
// one-line message (what exactly failed, for people). Errors from the OS are
// made with `Error::from_errno`; pagerfs' own failures use `pagerfs::errc`.
// `to_errno()` is the single table that turns any error back into the errno a
// FUSE reply or an exit status needs.
//
// Thread safety: `Error` and `Result` are values; distinct objects may be used
// from different threads freely.
#pragma once

#include <boost/outcome/std_result.hpp>
#include <boost/outcome/try.hpp>
#include <string>
#include <string_view>
#include <system_error>

namespace pagerfs {

// pagerfs' own failure kinds. Values are stable: they appear in logs and stats.
enum class errc {
  corrupt_blob = 1,      // a blob's structure is malformed (bad field, offset, size)
  unsupported_format,    // a newer format version or flag this reader does not know
  checksum_mismatch,     // a chunk's decoded bytes do not match the seek table
  digest_mismatch,       // the content's SHA-256 does not match the header or name
  invalid_argument,      // a bad option, size, digest string, ...
  not_a_store,           // a directory that is not a pagerfs store
  shutting_down,         // the component is stopping and accepts no new work
  not_a_regular_file,    // a store or cache file is a FIFO, device, socket, symlink, ...
};

const std::error_category& pagerfs_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

}  // namespace pagerfs

template <>
struct std::is_error_code_enum<pagerfs::errc> : std::true_type {};

namespace pagerfs {

class Error {
 public:
  Error() = default;  // Boost.Outcome (1.74) needs it; never returned as a failure
  Error(std::error_code code, std::string message)
      : code_(code), message_(std::move(message)) {}
  Error(errc code, std::string message) : Error(make_error_code(code), std::move(message)) {}

  // `context: strerror(err)`, with the errno kept as the code.
  static Error from_errno(int err, std::string_view context);

  const std::error_code& code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

  // Returns this error with `context: ` put before the message, code unchanged.
  Error with_context(std::string_view context) const;

 private:
  std::error_code code_;
  std::string message_;
};

// Boost.Outcome's customisation points: a Result<T> with an Error knows its
// error_code, and value() on a failed result throws std::system_error carrying
// the message.
inline std::error_code make_error_code(const Error& e) noexcept { return e.code(); }
[[noreturn]] void outcome_throw_as_system_error_with_payload(const Error& e);

template <class T>
using Result = boost::outcome_v2::std_result<T, Error>;

// The errno for any error: OS errors keep theirs; integrity failures are EIO;
// invalid input is EINVAL; shutdown is ESHUTDOWN; a store file that is not a
// regular file is EIO (the store is damaged, as with a corrupt blob). The table is in error.cc.
int to_errno(const std::error_code& code) noexcept;
inline int to_errno(const Error& e) noexcept { return to_errno(e.code()); }

// The exception being handled, as an Error: std::bad_alloc is ENOMEM, any
// other exception EIO. Call only inside a catch block (task and FUSE
// boundaries catch everything and carry on with this). Allocates nothing for
// std::bad_alloc (the message fits std::string's inline buffer).
Error current_exception_error() noexcept;

// The success value of a Result<void>: `return ok();`.
inline auto ok() noexcept { return boost::outcome_v2::success(); }

}  // namespace pagerfs

// PAGERFS_TRY(auto&& v, expr): evaluate expr; on failure return its error.
// PAGERFS_TRYV(expr): the same for a Result<void>; one statement.
// PAGERFS_TRY declares `v` in the enclosing scope, so it needs a block.
#define PAGERFS_TRY(v, ...) BOOST_OUTCOME_TRYA(v, __VA_ARGS__)
#define PAGERFS_TRYV(...)            \
  do {                               \
    BOOST_OUTCOME_TRYV(__VA_ARGS__); \
  } while (false)
