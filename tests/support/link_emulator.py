#!/usr/bin/python3
"""A point-to-point IP link with a delay, a rate and switchable loss: what
`tc qdisc ... netem delay D rate R` on both ends of a veth pair does, in user
space, for kernels built without sch_netem (this project's CI kernel has TBF
and HTB but no netem, and no modules to load).

It opens two TUN devices (layer 3, no packet information), OUTER in the
namespace it runs in and INNER, which it moves into the network namespace
NETNS, and forwards every IP packet read from one to the other: first
serialized at RATE bits/s behind the packets before it (a FIFO of at most
LIMIT packets; more are dropped, as a full netem queue drops), then held for
DELAY_MS, one way. Both directions alike: the round-trip time is twice
DELAY_MS. The caller gives the two devices their addresses (`ip addr add A
peer B dev OUTER` and the mirror inside NETNS) once this prints "ready".

SIGUSR1 drops every packet from then on, both ways (netem loss 100%: no
reset, no ICMP: the peers see silence); SIGUSR2 forwards again. SIGTERM or
SIGINT ends it; the devices go with it (they are not persistent: the kernel
removes them when the last descriptor closes, also the one in NETNS).

usage: link_emulator.py OUTER INNER NETNS [--delay-ms D] [--rate-bit R] [--limit N]
Needs root (CAP_NET_ADMIN). Used by tests/support/network_namespace.cc and
scripts/bench-remote.
"""
import argparse
import collections
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


class Direction:
    """One way of the link: packets read from `src`, written to `dst`."""

    def __init__(self, src, dst, delay_s, rate_bit, limit):
        self.src, self.dst = src, dst
        self.delay_s, self.rate_bit, self.limit = delay_s, rate_bit, limit
        self.queue = collections.deque()  # (time to deliver, packet), in order
        self.busy_until = 0.0  # when the last queued packet is serialized

    def receive(self, now, dropping):
        # Everything the kernel has queued on the device, at once: one wake-up
        # per burst, not per packet.
        while True:
            try:
                packet = os.read(self.src, 65536)
            except BlockingIOError:
                return
            except OSError:
                return
            if dropping or len(self.queue) >= self.limit:
                continue
            start = max(now, self.busy_until)
            done = start + (len(packet) * 8 / self.rate_bit if self.rate_bit else 0.0)
            self.busy_until = done
            self.queue.append((done + self.delay_s, packet))

    def deliver(self, now):
        while self.queue and self.queue[0][0] <= now:
            _, packet = self.queue.popleft()
            try:
                os.write(self.dst, packet)
            except OSError:
                pass  # the peer is down or gone: the packet is lost, as on a wire

    def next_deadline(self):
        return self.queue[0][0] if self.queue else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outer")
    parser.add_argument("inner")
    parser.add_argument("netns")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay")
    parser.add_argument("--rate-bit", type=float, default=0.0, help="bits/s each way; 0: unlimited")
    parser.add_argument("--limit", type=int, default=1000, help="packets queued each way")
    args = parser.parse_args()

    outer = open_tun(args.outer)
    inner = open_tun(args.inner)
    # The descriptor stays attached to the device in its new namespace.
    subprocess.run(["ip", "link", "set", args.inner, "netns", args.netns], check=True)

    state = {"dropping": False, "running": True}
    signal.signal(signal.SIGUSR1, lambda *_: state.update(dropping=True))
    signal.signal(signal.SIGUSR2, lambda *_: state.update(dropping=False))
    signal.signal(signal.SIGTERM, lambda *_: state.update(running=False))
    signal.signal(signal.SIGINT, lambda *_: state.update(running=False))

    delay_s = args.delay_ms / 1000.0
    ways = {outer: Direction(outer, inner, delay_s, args.rate_bit, args.limit),
            inner: Direction(inner, outer, delay_s, args.rate_bit, args.limit)}
    print("ready", flush=True)
    while state["running"]:
        now = time.monotonic()
        deadlines = [d for d in (w.next_deadline() for w in ways.values()) if d is not None]
        timeout = max(0.0, min(deadlines) - now) if deadlines else 0.5
        try:
            readable, _, _ = select.select(list(ways), [], [], timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        for fd in readable:
            ways[fd].receive(now, state["dropping"])
        for way in ways.values():
            way.deliver(now)
    return 0


if __name__ == "__main__":
    sys.exit(main())
