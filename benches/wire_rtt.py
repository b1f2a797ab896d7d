#!/usr/bin/env python3
"""Round trips as the wire saw them, from a packet capture of closed-loop HTTP/1.1 traffic.

`python3 benches/wire_rtt.py CAPTURE.pcap PORT` reads a pcap file (tcpdump -w, microsecond or
nanosecond stamps, Ethernet or Linux cooked framing; loopback captures are Ethernet) and, for
each client connection to PORT, pairs the first data packet of a request with the server's next
data packet back: the time between is the round trip on the wire, free of either end's own
queueing. Prints the count and p50/p90/p99 in microseconds, and `p50_us=…` for scripts.
One request in flight per connection (no pipelining); a request or answer split over several
packets counts from its first. Only IPv4.
"""
import struct
import sys


def packets(data):
    magic = struct.unpack("<I", data[:4])[0]
    if magic not in (0xA1B2C3D4, 0xA1B23C4D):
        sys.exit("not a little-endian pcap file (tcpdump -w)")
    nano = magic == 0xA1B23C4D
    link = struct.unpack("<I", data[20:24])[0]
    skip = {1: 14, 113: 16, 276: 20, 0: 4, 101: 0}.get(link)
    if skip is None:
        sys.exit(f"unknown link type {link}")
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack("<IIII", data[off:off + 16])
        off += 16
        yield sec * 1_000_000_000 + (frac if nano else frac * 1000), data[off + skip:off + incl]
        off += incl


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    asked, rtts = {}, []
    for t, ip in packets(open(path, "rb").read()):
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        tcp = ip[ihl:]
        if len(tcp) < 13:
            continue
        sport, dport = struct.unpack(">HH", tcp[:4])
        if total - ihl - (tcp[12] >> 4) * 4 <= 0:
            continue  # no data: an ACK, SYN or FIN
        if dport == port:
            asked.setdefault(sport, t)
        elif sport == port and dport in asked:
            rtts.append(t - asked.pop(dport))
    if not rtts:
        sys.exit("no round trip in the capture")
    rtts.sort()

    def q(p):
        return rtts[min(len(rtts) - 1, int(p * len(rtts)))] / 1000

    print(f"wire: {len(rtts)} round trips, p50 {q(0.5):.1f} us, p90 {q(0.9):.1f} us, "
          f"p99 {q(0.99):.1f} us  p50_us={q(0.5):.1f}")


if __name__ == "__main__":
    main()
