#include "support/network_namespace.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace pagerfs::testing {
namespace {

// Runs `ip ...` and throws with its output if it fails.
void ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  const ProcessResult r = run(argv);
  if (r.exit_code != 0) {
    std::string command;
    for (const auto& a : argv) command += a + " ";
    throw std::runtime_error("NetworkHost: `" + command + "` failed: " + r.err);
  }
}

// The first three octets of this process's /24 ("10.B.C"): picked by pid,
// so that test processes running side by side do not meet, and skipped
// while any interface of the machine already has an address in it.
const std::string& subnet() {
  static const std::string chosen = [] {
    const std::string used = testing::run({"ip", "-o", "-4", "addr", "show"}).out;
    for (unsigned i = 0; i < 32768; ++i) {
      const unsigned index = (static_cast<unsigned>(::getpid()) + i) % 32768;
      const std::string net = "10." + std::to_string(128 + index / 256) + "." + std::to_string(index % 256);
      if (used.find(" " + net + ".") == std::string::npos) return net;
    }
    throw std::runtime_error("NetworkHost: no free /24 in 10.128.0.0/9");
  }();
  return chosen;
}

}  // namespace

std::string NetworkHost::server_address() { return subnet() + ".1"; }

NetworkHost::NetworkHost(Link link) : link_(link) {
  // Hosts 2..254 of the /24; the number also names the namespace and links.
  static std::atomic<unsigned> next{2};
  const unsigned n = next++;
  if (n > 254) throw std::runtime_error("NetworkHost: more than 253 hosts in one test process");
  const std::string id = "pfs" + std::to_string(::getpid());
  name_ = id + "h" + std::to_string(n);
  // Interface names have at most 15 characters: pfs + 7 pid digits + o + 3.
  outer_ = id + "o" + std::to_string(n);
  inner_ = id + "i" + std::to_string(n);
  address_ = subnet() + "." + std::to_string(n);
  const std::string server = server_address();
  try {
    ip({"netns", "add", name_});
    namespace_made_ = true;
    ip({"-n", name_, "link", "set", "lo", "up"});
    if (link_.shaped()) {
      std::vector<std::string> argv = {PAGERFS_PYTHON, PAGERFS_LINK_EMULATOR_SCRIPT, outer_, inner_, name_,
                                       "--delay-ms", std::to_string(link_.rtt.count() / 2.0),
                                       "--rate-bit", std::to_string(link_.rate_bit)};
      const std::string out = dir_ / "emulator.out";
      emulator_.emplace(argv, SpawnOptions{.stdout_path = out, .stderr_path = out});
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!std::filesystem::exists(out) || read_file(out).find("ready\n") == std::string::npos) {
        if (!emulator_->running() || std::chrono::steady_clock::now() > deadline) {
          throw std::runtime_error("NetworkHost: link_emulator.py did not start: " + read_file(out));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    } else {
      ip({"link", "add", outer_, "type", "veth", "peer", "name", inner_, "netns", name_});
      veth_made_ = true;
    }
    // A /32 at each end with a route to the other: the server's address can
    // then sit on every host's link at once.
    ip({"addr", "add", server, "peer", address_, "dev", outer_});
    ip({"link", "set", outer_, "up"});
    ip({"-n", name_, "addr", "add", address_, "peer", server, "dev", inner_});
    ip({"-n", name_, "link", "set", inner_, "up"});
  } catch (...) {
    teardown();
    throw;
  }
}

NetworkHost::~NetworkHost() { teardown(); }

void NetworkHost::teardown() noexcept {
  try {
    // The emulator's devices go with its descriptors.
    if (emulator_) emulator_->stop(std::chrono::seconds(2));
    emulator_.reset();
    if (veth_made_) testing::run({"ip", "link", "del", outer_});  // and its peer, inside
    veth_made_ = false;
    if (namespace_made_) testing::run({"ip", "netns", "del", name_});
    namespace_made_ = false;
  } catch (...) {
    // A destructor must not throw; what could not be removed is in `ip netns`.
  }
}

std::vector<std::string> NetworkHost::enter() const {
  return {"/usr/bin/nsenter", "--net=/run/netns/" + name_, "--"};
}

ProcessResult NetworkHost::run(const std::vector<std::string>& argv) const {
  std::vector<std::string> full = enter();
  full.insert(full.end(), argv.begin(), argv.end());
  return testing::run(full);
}

void NetworkHost::set_loss(bool all) {
  if (!emulator_) throw std::logic_error("NetworkHost::set_loss: the link is not shaped");
  ::kill(emulator_->pid(), all ? SIGUSR1 : SIGUSR2);
  // The emulator handles the signal between two packets: at most one select
  // timeout later, well under the bounds tests measure.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

}  // namespace pagerfs::testing
