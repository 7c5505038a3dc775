"""Malformed client packets (SEMANTICS.md rule 25; reliability.md B4).

A table of broken headers and sections, each of which must get FORMERR or no reply, then a
few hundred random and mutated packets over UDP and TCP: no reply may break the header
rules, and the agent must stay alive and keep answering. The random packets come from a
fixed seed ($MESHDNS_FUZZ_SEED overrides it) so a failure can be replayed.
"""

import os
import random
import select
import socket
import struct
import time


import harness
import zones
from harness import DnsTestCase, answer_data
from test_protocol import header, opt, question

SEED = int(os.environ.get("MESHDNS_FUZZ_SEED", "20260826"))

# (name, packet): each is not a well-formed query. Rule 25 and B4: FORMERR or no reply.
QNAME = question()
BROKEN = [
    ("qdcount 2", header(qd=2) + QNAME + QNAME),
    ("qdcount 65535", header(qd=65535) + QNAME),
    ("qdcount 1, no question", header()),
    ("name runs past the end", header() + b"\x03www\x07exam"),
    ("no qtype/qclass", header() + QNAME[:-4]),
    ("half a qclass", header() + QNAME[:-1]),
    ("label type 0x40", header() + b"\x41" + b"a" * 65 + b"\x00\x00\x01\x00\x01"),
    ("label type 0x80", header() + b"\x81" + b"a" * 129 + b"\x00\x00\x01\x00\x01"),
    ("compression pointer in the question", header() + b"\xc0\x0c\x00\x01\x00\x01"),
    ("pointer loop in the question", header() + b"\x03www\xc0\x0c\x00\x01\x00\x01"),
    ("name over 255 octets", header() + b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63
     + b"\x3f" + b"c" * 63 + b"\x3f" + b"d" * 63 + b"\x05eeeee\x00\x00\x01\x00\x01"),
    ("ancount 1 without the RR", header(an=1) + QNAME),
    ("arcount 3 with one RR", header(ar=3) + QNAME + opt()),
    ("OPT cut short", header(ar=1) + QNAME + opt()[:7]),
    ("OPT rdlength past the end", header(ar=1) + QNAME + opt()[:-2] + b"\x00\x10"),
    ("OPT option longer than the OPT", header(ar=1) + QNAME
     + opt(options=b"\xfd\xe9\x00\x20abc")),
    ("two OPT RRs", header(ar=2) + QNAME + opt() + opt()),
    ("OPT in the answer section", header(an=1) + QNAME + opt()),
    ("OPT in the authority section", header(ns=1) + QNAME + opt()),
    ("OPT with a non-root owner", header(ar=1) + QNAME + b"\x01a" + opt()[1:]),
]


def replies_by_id(sock, wait, limit):
    """Reads replies until @wait seconds pass without one (at most @limit seconds)."""
    got = {}
    deadline = time.monotonic() + limit
    last = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last < wait:
        r, _, _ = select.select([sock], [], [], 0.1)
        if not r:
            continue
        data = sock.recv(65535)
        last = time.monotonic()
        if len(data) >= 2:
            got.setdefault(struct.unpack("!H", data[:2])[0], []).append(data)
    return got


def mutate(rnd, base):
    b = bytearray(base)
    kind = rnd.randrange(6)
    if kind == 0:  # flip a few bits
        for _ in range(rnd.randint(1, 6)):
            i = rnd.randrange(len(b))
            b[i] ^= 1 << rnd.randrange(8)
    elif kind == 1:  # random bytes at random places
        for _ in range(rnd.randint(1, 6)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
    elif kind == 2:  # cut short
        b = b[:rnd.randrange(len(b))]
    elif kind == 3:  # junk appended
        b += bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 64)))
    elif kind == 4:  # counts
        b[4:12] = bytes(rnd.randrange(256) if rnd.random() < 0.3 else x for x in b[4:12])
    else:  # a label length changed
        i = rnd.randrange(12, max(13, len(b) - 4))
        b[i] = rnd.choice([0, 1, 63, 64, 0xc0, 0xff, rnd.randrange(256)])
    return bytes(b)


class MalformedQueries(DnsTestCase):

    def setUp(self):
        self.up = self.start_fake()
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                                    "--upstream-timeout", "500")

    def assert_serving(self):
        self.assertAlive(self.m)
        r = self.m.dnsq("www.example.test", "A")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP], r)
        r = self.m.dnsq("www.example.test", "A", "--tcp")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP], r)

    def test_rule25_broken_queries_get_formerr_or_nothing(self):
        for name, wire in BROKEN:
            with self.subTest(case=name):
                r = self.m.dnsq(raw=wire, timeout_ms=400)
                if r != {"timeout": True}:
                    self.assertEqual(r.get("rcode"), "FORMERR", "%s: %s" % (name, r))
                    self.assertEqual(r["id"], 0x1234)
                    self.assertIn("qr", r["flags"])
        self.assertEqual(self.up.count(), 0, "a broken query was forwarded")
        self.assert_serving()

    def test_rule27_three_hundred_edns_options_are_survived(self):
        options = b"".join(struct.pack("!HH", 65001 + i % 10, 0) for i in range(300))
        r = self.m.dnsq(raw=header(ar=1) + QNAME + opt(options=options), timeout_ms=2000)
        if r != {"timeout": True}:
            self.assertIn(r.get("rcode"), ("NOERROR", "FORMERR"), r)
        self.assert_serving()

    def test_rule25_random_and_mutated_udp_packets(self):
        rnd = random.Random(SEED)
        bases = [harness.make_query("www.example.test", t, edns=e, do=d).to_wire()
                 for t in ("A", "TXT", "MX") for e in (None, 1232) for d in (False, True)
                 if not (d and e is None)]
        packets = []
        for i in range(400):
            if i % 4 == 0:
                p = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 300)))
            else:
                p = mutate(rnd, rnd.choice(bases))
            if len(p) >= 2:  # a distinct ID for each packet, to match replies
                p = struct.pack("!H", i) + p[2:]
            packets.append(p)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(s.close)
        s.connect((harness.HOST, self.m.port))
        for i, p in enumerate(packets):
            s.send(p)
            if i % 50 == 49:
                time.sleep(0.02)
        got = replies_by_id(s, wait=1.5, limit=15)
        for qid, replies in got.items():
            self.assertLess(qid, len(packets), "a reply to no query")
            p = packets[qid]
            msg = "seed %d, packet %d: %s -> %s" % (SEED, qid, p.hex(), replies[0].hex())
            self.assertEqual(len(replies), 1, "several replies: " + msg)
            r = replies[0]
            self.assertGreaterEqual(len(p), 12, "a packet shorter than a header: " + msg)
            self.assertFalse(p[2] & 0x80, "a query with QR=1 was answered: " + msg)
            self.assertGreaterEqual(len(r), 12, msg)
            self.assertTrue(r[2] & 0x80, "reply without QR: " + msg)
            qd = struct.unpack("!H", p[4:6])[0]
            if qd != 1:
                self.assertEqual(r[3] & 0xf, 1, "QDCOUNT %d must get FORMERR: %s" % (qd, msg))
        self.assertGreater(len(got), 50, "hardly any packet was answered")
        self.assert_serving()

    def test_rule24_random_bytes_over_tcp(self):
        rnd = random.Random(SEED + 1)
        for i in range(30):
            s = socket.create_connection((harness.HOST, self.m.port), timeout=3)
            try:
                if i % 3 == 0:  # a sane length prefix, garbage inside
                    body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 200)))
                    s.sendall(struct.pack("!H", len(body)) + body)
                elif i % 3 == 1:  # a prefix longer than what follows, then close
                    s.sendall(b"\x01\x00" + bytes(rnd.randrange(256) for _ in range(50)))
                else:  # pure noise
                    s.sendall(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400))))
                s.settimeout(0.3)
                try:
                    while s.recv(65535):
                        pass
                except (socket.timeout, ConnectionResetError):
                    pass
            finally:
                s.close()
        self.assert_serving()

    def test_rule24_mutated_queries_over_tcp(self):
        rnd = random.Random(SEED + 2)
        base = harness.make_query("www.example.test", "A", edns=1232).to_wire()
        s = socket.create_connection((harness.HOST, self.m.port), timeout=3)
        self.addCleanup(s.close)
        for i in range(50):
            p = struct.pack("!H", i) + mutate(rnd, base)[2:]
            try:
                s.sendall(struct.pack("!H", len(p)) + p)
            except OSError:  # closed by the agent: a new connection
                s = socket.create_connection((harness.HOST, self.m.port), timeout=3)
                self.addCleanup(s.close)
        self.assert_serving()


if __name__ == "__main__":
    harness.main()
