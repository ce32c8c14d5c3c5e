// Running the real binaries from tests: argv in, exit status and output out.
// (A server that runs beside the test: ChildProcess, child_process.h.)
//
// Thread safety: run() may be called from several threads at once.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace pagerfs::testing {

struct ProcessResult {
  int exit_code = -1;  // valid when !signaled
  bool signaled = false;
  int signal = 0;
  std::string out;  // standard output
  std::string err;  // standard error
};

// Runs argv[0] (looked up in PATH if it has no '/') with `input` on its
// standard input, waits for it and collects its output. Throws on spawn failure.
ProcessResult run(const std::vector<std::string>& argv, const std::string& input = "");

// The path of a binary under test, from the environment variable `var` that
// meson sets for every test (e.g. PAGERFSCTL).
std::string binary_from_env(const char* var);

// The unprivileged user ("pagerfs-test") that permission tests run commands
// as; created on first use (root only). Throws if it cannot be had.
struct TestUser {
  uid_t uid = 0;
  gid_t gid = 0;
  // The argv prefix that runs a command as this user, without root's groups.
  std::vector<std::string> as() const;
};
const TestUser& test_user();
// run() as test_user().
ProcessResult run_as_test_user(std::vector<std::string> argv, const std::string& input = "");

// A fresh directory under $TMPDIR, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const noexcept { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);

}  // namespace pagerfs::testing
