"""Records every DNS message over UDP on a network namespace's loopback device.

Usage (inside the namespace): dnssniff.py OUT.jsonl

Run with `ip netns exec NAME`: every packet between local addresses of a namespace (127.0.0.x,
169.254.20.10 on the agent's link) passes through its `lo`, so a packet socket on `lo` sees
what glibc's resolver sends to the agent and what the agent sends to cluster DNS and the
upstream. One JSON object a line, flushed at once: src, sport, dst, dport, id, qr, rcode,
qname (lowercase, trailing dot), qtype (number), ancount. Writes {"ready": true} first,
once the socket is bound. Stdlib only; stops on SIGTERM.
"""

import json
import signal
import socket
import struct
import sys

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def qname(msg, off):
    """The name at @off of @msg (no compression in a question) and the offset after it."""
    labels = []
    while off < len(msg):
        n = msg[off]
        off += 1
        if n == 0:
            return ".".join(labels).lower() + ".", off
        if n & 0xC0:
            return None, off
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n
    return None, off


def parse(pkt):
    """One DNS-over-UDP IPv4 packet as a dict, or None."""
    if len(pkt) < 20 or pkt[0] >> 4 != 4 or pkt[9] != 17:
        return None
    ihl = (pkt[0] & 0x0F) * 4
    src, dst = socket.inet_ntoa(pkt[12:16]), socket.inet_ntoa(pkt[16:20])
    udp = pkt[ihl:]
    if len(udp) < 8 + 12:
        return None
    sport, dport = struct.unpack("!HH", udp[:4])
    if 53 not in (sport, dport):
        return None
    msg = udp[8:]
    qid, flags, qd, an = struct.unpack("!HHHH", msg[:8])
    name, off = qname(msg, 12) if qd else (None, 12)
    qtype = struct.unpack("!H", msg[off:off + 2])[0] if name and off + 2 <= len(msg) else None
    return {"src": src, "sport": sport, "dst": dst, "dport": dport, "id": qid,
            "qr": bool(flags & 0x8000), "rcode": flags & 0x0F, "qname": name,
            "qtype": qtype, "ancount": an}


def main():
    out = open(sys.argv[1], "a", buffering=1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    s.bind(("lo", 0))
    out.write(json.dumps({"ready": True}) + "\n")
    while True:
        pkt, addr = s.recvfrom(65535)
        if addr[2] == PACKET_OUTGOING:  # lo shows each packet twice: keep the receiving side
            continue
        rec = parse(pkt)
        if rec:
            out.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
