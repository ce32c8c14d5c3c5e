#include "fuse/control_commands.h"

#include <nlohmann/json.hpp>

#include "control/control_server.h"
#include "fuse/filesystem.h"
#include "pagerfs/control/control.h"

namespace pagerfs {

Result<std::string> handle_command(Filesystem& fs, const ControlServer& server, const std::string& line) {
  PAGERFS_TRY(request, control::parse_request(line));
  const std::string& command = request.command;
  if (command != "prewarm" && !request.items.empty()) {
    return Error(errc::invalid_argument, "'" + command + "' takes no items");
  }
  if (command == "stats") {
    nlohmann::json stats = fs.stats_json();
    const ControlCounters n = server.counters();
    stats["control"] = {{"connections", n.connections}, {"refused_peers", n.refused_peers},
                        {"oversized", n.oversized},     {"timed_out", n.timed_out},
                        {"evicted", n.evicted}};
    return stats.dump(2) + "\n";
  }
  if (command == "dump") return fs.dump();
  if (command == "drop-caches") {
    PAGERFS_TRYV(fs.drop_caches());
    return std::string("caches dropped\n");
  }
  if (command == "prewarm") {
    if (request.items.empty()) return Error(errc::invalid_argument, "prewarm needs at least one item");
    std::string out;
    for (const control::PrewarmItem& item : request.items) {
      PAGERFS_TRYV(fs.prewarm(item.path, item.offset, item.length));
      out += "prewarmed " + item.path;
      if (item.offset != 0 || item.length != UINT64_MAX) {
        out += ":" + std::to_string(item.offset) + ":" +
               (item.length == UINT64_MAX ? std::string("end") : std::to_string(item.length));
      }
      out += "\n";
    }
    return out;
  }
  if (command == "record-start") {
    fs.start_recording();
    return std::string("recording\n");
  }
  if (command == "record-stop") {
    if (request.image.empty()) return Error(errc::invalid_argument, "record-stop needs an image");
    return fs.stop_recording(request.image, request.save);
  }
  if (command == "upgrade") {
    PAGERFS_TRYV(fs.request_upgrade(request.binary));
    return std::string("upgrade started\n");
  }
  return Error(errc::invalid_argument, "unknown command '" + command + "'");
}

}  // namespace pagerfs
