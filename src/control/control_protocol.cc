// The control protocol's messages: one JSON object per line each way
// (see include/pagerfs/control/control.h). JSON escapes newlines, so a line is a
// whole message whatever bytes a path holds.
#include <nlohmann/json.hpp>

#include "pagerfs/control/control.h"
#include "pagerfs/util/units.h"

namespace pagerfs::control {
namespace {

using nlohmann::json;

Error bad_request(const std::string& why) { return Error(errc::invalid_argument, "bad request: " + why); }

Result<uint64_t> number_field(const json& item, const char* name, uint64_t fallback) {
  if (!item.contains(name)) return fallback;
  const json& v = item.at(name);
  if (!v.is_number_unsigned()) return bad_request(std::string("'") + name + "' must be a non-negative integer");
  return v.get<uint64_t>();
}

}  // namespace

std::string encode_request(const Request& request) {
  json out = {{"command", request.command}};
  if (!request.items.empty()) {
    json items = json::array();
    for (const PrewarmItem& item : request.items) {
      json j = {{"path", item.path}, {"offset", item.offset}};
      if (item.length != UINT64_MAX) j["length"] = item.length;
      items.push_back(std::move(j));
    }
    out["items"] = std::move(items);
  }
  if (!request.image.empty()) out["image"] = request.image;
  if (request.save) out["save"] = true;
  if (!request.binary.empty()) out["binary"] = request.binary;
  // Paths are bytes, not always UTF-8: replace what is not, rather than throw
  // (the daemon then says the file is not in the mount).
  return out.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<Request> parse_request(std::string_view line) {
  const json j = json::parse(line, nullptr, false);
  if (j.is_discarded()) return bad_request("not one JSON object (pagerfsctl and pagerfs of different versions?)");
  if (!j.is_object()) return bad_request("not a JSON object");
  if (!j.contains("command") || !j.at("command").is_string()) return bad_request("no 'command' string");
  Request out;
  out.command = j.at("command").get<std::string>();
  if (j.contains("image")) {
    if (!j.at("image").is_string()) return bad_request("'image' must be a string");
    out.image = j.at("image").get<std::string>();
  }
  if (j.contains("binary")) {
    if (!j.at("binary").is_string()) return bad_request("'binary' must be a string");
    out.binary = j.at("binary").get<std::string>();
  }
  if (j.contains("save")) {
    if (!j.at("save").is_boolean()) return bad_request("'save' must be true or false");
    out.save = j.at("save").get<bool>();
  }
  if (!j.contains("items")) return out;
  const json& items = j.at("items");
  if (!items.is_array()) return bad_request("'items' must be an array");
  for (const json& item : items) {
    if (!item.is_object() || !item.contains("path") || !item.at("path").is_string()) {
      return bad_request("each item needs a 'path' string");
    }
    PrewarmItem p;
    p.path = item.at("path").get<std::string>();
    if (p.path.find('\0') != std::string::npos) return bad_request("a path holds a NUL byte");
    PAGERFS_TRY(offset, number_field(item, "offset", 0));
    PAGERFS_TRY(length, number_field(item, "length", UINT64_MAX));
    p.offset = offset;
    p.length = length;
    out.items.push_back(std::move(p));
  }
  return out;
}

std::string encode_answer(const Result<std::string>& answer) {
  const json out = answer ? json{{"ok", true}, {"body", answer.value()}}
                          : json{{"ok", false}, {"error", answer.error().message()}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<std::string> parse_answer(std::string_view text) {
  const json j = json::parse(text, nullptr, false);
  const auto bad = [] { return Error(std::make_error_code(std::errc::protocol_error), "bad answer from the daemon"); };
  if (j.is_discarded() || !j.is_object() || !j.contains("ok") || !j.at("ok").is_boolean()) return bad();
  if (j.at("ok").get<bool>()) {
    if (!j.contains("body") || !j.at("body").is_string()) return bad();
    return j.at("body").get<std::string>();
  }
  if (!j.contains("error") || !j.at("error").is_string()) return bad();
  return Error(errc::invalid_argument, j.at("error").get<std::string>());
}

PrewarmItem parse_prewarm_item(std::string_view item) {
  PrewarmItem out;
  out.path = item;
  const size_t second = item.rfind(':');
  if (second == std::string_view::npos || second == 0) return out;
  const size_t first = item.rfind(':', second - 1);
  if (first == std::string_view::npos || first == 0) return out;  // a path is never empty
  auto offset = parse_size(item.substr(first + 1, second - first - 1));
  auto length = parse_size(item.substr(second + 1));
  if (!offset || !length) return out;
  out.path = item.substr(0, first);
  out.offset = offset.value();
  out.length = length.value();
  out.range = item.substr(first);
  return out;
}

}  // namespace pagerfs::control
