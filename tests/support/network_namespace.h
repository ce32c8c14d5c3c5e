// A second "machine" for tests of the remote layer across a network: a
// network namespace of its own, linked to the test's (root) namespace by a
// point-to-point link, with the server side of every link at one address of
// this test process, server_address(). A server the test starts in the root
// namespace (NginxServer with listen_addresses = {server_address()}) is then
// reached from every host at that address, each host from its own address.
//
//   NetworkHost a, b({.rtt = 20ms, .rate_bit = 100'000'000});
//   NginxServer nginx(store, {.listen_addresses = {NetworkHost::server_address()}});
//   MountedStore m(local, mnt, {"remote=" + nginx.url_on(NetworkHost::server_address())},
//                  a.enter());
//
// Links: a plain link is a veth pair (the kernel's own path, as fast as
// loopback). A shaped one (a delay or a rate) cannot be netem here: this
// project's CI kernel is built without sch_netem and has no modules to load,
// so it is a pair of TUN devices joined by link_emulator.py, which delays,
// rate-limits and (set_loss) drops every packet in user space, with the
// semantics of `netem delay D rate R` on both ends. Either way the server
// side holds server_address()/32 with a route to the host's address, so one
// address serves every host: Linux accepts a local address on any interface.
//
// Entering: enter() is `nsenter --net=/run/netns/NAME --`, which joins the
// network namespace only. That is what a pagerfs daemon under test needs: its
// sockets are the host's, but its FUSE mount is made in the test's mount
// namespace, where the test reads it and where MountedStore unmounts it.
// `ip netns exec` would also unshare the mount namespace (to bind-mount the
// namespace's /etc and /sys): a mount made there is invisible to the test and
// dies with the last process inside. nsenter execs the command in place, so
// the pid a fixture starts is the command's own, and ends what it should.
//
// Names and addresses are unique to the test process: the namespace is
// pfs<pid>h<N>, links pfs<pid>o<N> (outside) and pfs<pid>i<N> (inside), and
// addresses come from a /24 of 10.128.0.0/9 picked by pid that no interface
// of the machine uses yet. The destructor ends what the host started (the
// emulator, by its pid), deletes the link and the namespace, also when the
// test failed; a namespace that a process still uses (a daemon that was not
// stopped) is unnamed, and the kernel frees it when that process exits.
//
// Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN); the constructor throws
// std::runtime_error with the failing command's output otherwise.
//
// Thread safety: one owner thread (it starts a child process: see
// child_process.h); name(), address(), enter() and server_address() may be
// read from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "support/child_process.h"
#include "support/subprocess.h"

namespace pagerfs::testing {

class NetworkHost {
 public:
  struct Link {
    // The round-trip time, half of it each way; 0: no delay.
    std::chrono::milliseconds rtt{0};
    // Bits per second, each way; 0: unlimited.
    uint64_t rate_bit = 0;
    bool shaped() const { return rtt.count() > 0 || rate_bit > 0; }
  };

  NetworkHost() : NetworkHost(Link{}) {}
  explicit NetworkHost(Link link);
  ~NetworkHost();
  NetworkHost(const NetworkHost&) = delete;
  NetworkHost& operator=(const NetworkHost&) = delete;

  // The namespace's name (under /run/netns).
  const std::string& name() const noexcept { return name_; }
  // This host's IPv4 address, as the server sees it.
  const std::string& address() const noexcept { return address_; }
  // The address every host reaches the test's root namespace at.
  static std::string server_address();

  // The argv prefix that runs a command with this host's network.
  std::vector<std::string> enter() const;
  // Runs a command with this host's network and waits for it.
  ProcessResult run(const std::vector<std::string>& argv) const;

  // Every packet dropped from now on, both ways (netem loss 100%), or
  // forwarded again. Shaped links only (throws std::logic_error otherwise).
  void set_loss(bool all);

 private:
  void teardown() noexcept;

  Link link_;
  std::string name_;
  std::string outer_;
  std::string inner_;
  std::string address_;
  TempDir dir_;                             // the emulator's output
  std::optional<ChildProcess> emulator_;    // shaped links only
  bool namespace_made_ = false;
  bool veth_made_ = false;
};

}  // namespace pagerfs::testing
