"""Hostile clients (reliability.md B6; SEMANTICS.md rules 24 and 25).

Slowloris (one byte per second), clients that never read their TCP answers, 100 pipelined
queries, garbage length prefixes and connections closed mid-message: no crash, no
connection left behind, and an observer client asking over UDP and over TCP (a new
connection each time) at the same time gets every answer.
"""

import os
import random
import socket
import struct
import threading
import time

import dns.message
import dns.rcode

import harness
import zones
from harness import DnsTestCase, tcp_read_msg
from relutil import figure, percentile, rss_kib, server_side_conns

NAME = "www.example.test"
IDLE_MS = 2000


def framed(wire):
    return struct.pack("!H", len(wire)) + wire


def query_wire(name=NAME, qid=None):
    return harness.make_query(name, "A", qid=qid).to_wire()


class Observer:
    """Asks NAME (cached) over UDP and over a new TCP connection in turn, every 20 ms,
    until stopped; counts answers with the right data and times them."""

    def __init__(self, port):
        self.port = port
        self.stop_ev = threading.Event()
        self.lat = {"udp": [], "tcp": []}
        self.failed = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.monotonic() + 60
        while not self.stop_ev.is_set() and time.monotonic() < deadline:
            for tcp in (False, True):
                t0 = time.monotonic()
                try:
                    r = harness.query(self.port, NAME, "A", tcp=tcp, timeout=2)
                except OSError as e:
                    r = e
                proto = "tcp" if tcp else "udp"
                if isinstance(r, dns.message.Message) and \
                        harness.rrs(r) == {(NAME + ".", "A"): [zones.WWW_IP]}:
                    self.lat[proto].append(time.monotonic() - t0)
                else:
                    self.failed.append((proto, repr(r)[:80]))
            time.sleep(0.02)

    def stop(self):
        self.stop_ev.set()
        self.thread.join(timeout=10)
        out = {}
        for proto, lat in self.lat.items():
            out[proto] = "%d answered, p99 %.1f ms, max %.1f ms" % (
                len(lat), 1000 * (percentile(lat, 99) or 0), 1000 * max(lat or [0]))
        out["failed"] = len(self.failed)
        return out


class HostileClients(DnsTestCase):

    def setUp(self):
        self.up = self.start_fake()
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                                    "--tcp-idle-timeout", str(IDLE_MS))
        harness.query(self.m.port, NAME, "A")  # cached
        self.obs = None

    def observe(self):
        self.obs = Observer(self.m.port)
        self.addCleanup(self.obs.stop_ev.set)
        time.sleep(0.2)

    def check_observer(self, what):
        res = self.obs.stop()
        figure("observer during %s" % what, res)
        self.assertAlive(self.m)
        self.assertEqual(self.obs.failed, [], "the observer was not answered during %s" % what)
        self.assertGreater(len(self.obs.lat["tcp"]), 5)
        harness.wait_until(lambda: server_side_conns(self.m.port) == 0, IDLE_MS / 1000 + 5,
                           "every attacking connection to be closed by the agent")

    def connect(self, rcvbuf=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.addCleanup(s.close)
        s.settimeout(5)
        s.connect((harness.HOST, self.m.port))
        return s

    def test_b6_slowloris_closed_by_the_idle_timeout(self):
        self.observe()
        conns = [(self.connect(), time.monotonic()) for _ in range(20)]
        msg = framed(query_wire())
        open_ = {i: s for i, (s, _) in enumerate(conns)}
        closed_after = {}
        for k in range(int(IDLE_MS / 1000) + 6):  # one byte per second, bounded
            for i, s in list(open_.items()):
                try:
                    s.send(msg[k:k + 1])
                except (BrokenPipeError, ConnectionResetError):
                    closed_after[i] = time.monotonic() - conns[i][1]
                    del open_[i]
                    continue
                s.settimeout(0)
                try:
                    if s.recv(1) == b"":
                        closed_after[i] = time.monotonic() - conns[i][1]
                        del open_[i]
                except (BlockingIOError, ConnectionResetError):
                    pass
            if not open_:
                break
            time.sleep(1)
        figure("slowloris: 20 connections at 1 byte/s closed after (idle timeout %d ms)"
               % IDLE_MS, "max %.1f s" % max(closed_after.values() or [0]))
        self.assertEqual(sorted(open_), [], "slowloris connections still open")
        self.assertLess(max(closed_after.values()), IDLE_MS / 1000 + 3)
        self.check_observer("20 slowloris connections")

    def test_b6_clients_that_never_read_do_not_block_others(self):
        # answers of 3.6 kB (cached): LIMIT unread would be 360 MB per client
        LIMIT = 100000
        self.assertIsNotNone(harness.query(self.m.port, "big.example.test", "TXT", tcp=True))
        rss0 = rss_kib(self.m.proc.pid)
        self.observe()
        big = harness.make_query("big.example.test", "TXT").to_wire()
        batch = framed(big) * 100
        sent = []
        for _ in range(5):
            s = self.connect(rcvbuf=4096)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
            s.settimeout(1)
            n = 0
            try:
                while n < LIMIT:
                    s.sendall(batch)
                    n += 100
            except socket.timeout:
                pass  # the agent stopped reading: back-pressure
            sent.append(n)
        time.sleep(1)
        figure("non-reading clients: queries sent before the agent stopped reading", sent)
        grown = rss_kib(self.m.proc.pid) - rss0
        figure("non-reading clients: agent VmRSS growth", "%d KiB" % grown)
        self.assertLess(max(sent), LIMIT, "the agent kept reading a client that never reads")
        self.assertLess(grown, 16 * 1024)
        res = self.obs.stop()
        figure("observer during 5 non-reading clients", res)
        self.assertAlive(self.m)
        self.assertEqual(self.obs.failed, [])

    def test_b6_hundred_pipelined_queries_all_answered(self):
        self.observe()
        self.up.delay = 0.1
        s = self.connect()
        qs = [query_wire("p%d.example.test" % i if i % 2 else NAME, qid=i) for i in range(100)]
        s.sendall(b"".join(framed(q) for q in qs))
        ids = set()
        s.settimeout(10)
        for _ in range(100):
            wire = tcp_read_msg(s)
            self.assertIsNotNone(wire, "closed after %d answers" % len(ids))
            ids.add(dns.message.from_wire(wire).id)
        self.assertEqual(ids, set(range(100)))
        s.close()
        self.check_observer("100 pipelined queries")

    def test_b6_garbage_prefixes_never_hang_or_crash(self):
        self.observe()
        rnd = random.Random(int(os.environ.get("MESHDNS_FUZZ_SEED", "6")))
        valid = framed(query_wire(qid=4242))
        cases = {
            "short message then a valid one": b"\x00\x03abc" + valid,
            "random 40-byte message then a valid one":
                framed(bytes(rnd.randrange(256) for _ in range(40))) + valid,
            "prefix 65535 with 100 bytes": b"\xff\xff" + bytes(100),
            "prefix longer than the message": b"\x00\x80" + query_wire(),
            "random bytes": bytes(rnd.randrange(256) for _ in range(300)),
            "zero prefix": b"\x00\x00" + valid,
        }
        outcome = {}
        for what, data in cases.items():
            s = self.connect()
            s.sendall(data)
            s.settimeout(IDLE_MS / 1000 + 3)
            try:
                wire = tcp_read_msg(s)
            except socket.timeout:
                self.fail("%s: neither answered nor closed" % what)
            except ConnectionResetError:
                wire = None
            if wire is None:
                outcome[what] = "closed"
                continue
            r = dns.message.from_wire(wire)
            outcome[what] = "answered id %d %s" % (r.id, dns.rcode.to_text(r.rcode()))
            if what.endswith("then a valid one") and r.id != 4242:
                wire = tcp_read_msg(s)
                self.assertIsNotNone(wire, what)
                outcome[what] += ", then id %d" % dns.message.from_wire(wire).id
            s.close()
        figure("garbage on TCP", outcome)
        self.check_observer("garbage prefixes")

    def test_b6_connections_closed_mid_message(self):
        self.observe()
        msg = framed(query_wire())
        for i in range(200):
            s = self.connect()
            cut = [1, 2, 7, len(msg) - 1][i % 4]
            s.sendall(msg[:cut])
            if i % 2:  # RST instead of FIN
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        self.check_observer("200 connections closed mid-message")


if __name__ == "__main__":
    harness.main()
