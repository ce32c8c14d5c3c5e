#include "pagerfs/oci/image_source.h"

#include <sys/stat.h>
#include <sys/utsname.h>

#include "oci/docker_archive.h"
#include "oci/oci_layout.h"
#include "util/quoted.h"

namespace pagerfs::oci {
namespace {

// "PATH[:TAG]": PATH is the shortest prefix before a ':' that exists (a
// docker reference holds a ':' itself: "busybox:latest"); none: it is all PATH.
std::pair<std::string, std::optional<std::string>> split_reference(std::string_view rest) {
  for (size_t colon = rest.find(':'); colon != std::string_view::npos; colon = rest.find(':', colon + 1)) {
    const std::string path(rest.substr(0, colon));
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return {path, std::string(rest.substr(colon + 1))};
  }
  return {std::string(rest), std::nullopt};
}

}  // namespace

std::string host_architecture() {
  struct utsname u {};
  if (::uname(&u) != 0) return "unknown";
  const std::string machine = u.machine;
  if (machine == "x86_64") return "amd64";
  if (machine == "aarch64" || machine == "arm64") return "arm64";
  if (machine.starts_with("armv")) return "arm";
  if (machine == "i386" || machine == "i686") return "386";
  return machine;  // ppc64le, s390x, riscv64: the same names
}

Result<ImageSource> open_image_source(std::string_view source) {
  constexpr std::string_view kOci = "oci:";
  constexpr std::string_view kDockerArchive = "docker-archive:";
  std::optional<std::string> tag;
  std::string path;
  if (source.starts_with(kOci)) {
    std::tie(path, tag) = split_reference(source.substr(kOci.size()));
  } else if (source.starts_with(kDockerArchive)) {
    std::tie(path, tag) = split_reference(source.substr(kDockerArchive.size()));
  } else {
    return Error(errc::invalid_argument, "source " + pagerfs::quoted(source) + ": expected oci:DIR[:TAG] or "
                                                                     "docker-archive:FILE[:REF]");
  }
  if (path.empty()) return Error(errc::invalid_argument, "source " + pagerfs::quoted(source) + ": no path");
  if (tag && tag->empty()) tag.reset();
  if (source.starts_with(kOci)) return open_oci_layout(path, tag);
  return open_docker_archive(path, tag);
}

}  // namespace pagerfs::oci
