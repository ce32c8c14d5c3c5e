// A one-line progress display on standard error, for long pagerfsctl
// commands (pack, import): shown only on a terminal.
//
// Thread safety: one thread at a time (update() is called from the thread
// that runs the command).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "pagerfs/util/units.h"

namespace pagerfs::ctl {

// A one-line progress display on a terminal, redrawn at most 5 times a second.
class ProgressLine {
 public:
  ProgressLine(std::string label, std::optional<uint64_t> total)
      : label_(std::move(label)), total_(total), enabled_(::isatty(STDERR_FILENO) == 1),
        start_(std::chrono::steady_clock::now()), last_(start_) {}
  ~ProgressLine() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
  }

  // Shows `label` from the next update on (a new phase of the command).
  void relabel(std::string label) { label_ = std::move(label); }

  void update(uint64_t done) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const auto rate = static_cast<uint64_t>(static_cast<double>(done) / std::max(seconds, 1e-3));
    std::string line = "\r\033[K" + label_ + "  " + format_size(done);
    if (total_ && *total_ > 0) {
      line += " / " + format_size(*total_) + "  " + std::to_string(done * 100 / *total_) + "%";
    }
    line += "  " + format_size(rate) + "/s";
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
    drawn_ = true;
  }

 private:
  std::string label_;
  std::optional<uint64_t> total_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace pagerfs::ctl
