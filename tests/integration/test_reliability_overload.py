"""Overload (reliability.md L3 and L6): caps that keep the agent answering.

A slow upstream (every answer 500 ms late) and a flood of distinct names: past
--max-inflight the agent answers SERVFAIL with an EDE at once (never silence), the upstream
never sees more queries at once than the cap, memory stays bounded, and another client's
cached and mesh names keep being answered during the flood. --max-inflight-per-client
keeps one client at its cap from stopping another. TCP: connections over
--max-tcp-connections are accepted and closed at once while the others keep working, and
idle connections cost a bounded amount of memory each.
"""

import resource
import socket
import struct
import threading
import time

import dns.message
import dns.rcode

import harness
from harness import DnsTestCase, tcp_read_msg
from relutil import (UdpLoad, ede_codes, figure, mesh_file, rss_kib, server_side_conns,
                     summarize)

DELAY = 0.5
MESH = {"reviews.default.cluster-2": ["240.0.0.10", "2001:db8:240::10"],
        "ratings.default.cluster-2": ["240.0.0.11"]}
CACHED = ["c%d.example.test" % i for i in range(20)]
ZONE = ("$ORIGIN example.test.\n@ 300 IN SOA ns.example.test. h.example.test. 1 1 1 1 30\n"
        + "".join("c%d 300 IN A 192.0.2.%d\n" % (i, 100 + i) for i in range(20)))


class SlowUpstream:
    """Answers every query DELAY seconds late from a fake upstream and tracks how many it
    holds at once (decremented before the answer is sent, so that the agent's next query
    cannot be counted before the slot it frees)."""

    def __init__(self, tc):
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.delay = 0.0
        self.fake = tc.start_fake({"example.test.": ZONE}, handler=self.handle)

    def handle(self, q):
        if q.msg is None:
            return
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        wire = q.answer().to_wire()

        def answer():
            with self.lock:
                self.now -= 1
            q.send(wire)
        if self.delay:
            q.server.later(self.delay, answer)
        else:
            answer()


def loopback_src_ok(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((addr, 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


class UdpFlood(DnsTestCase):

    def start(self, *flags):
        self.up = SlowUpstream(self)
        path = mesh_file(self.tmp() + "/se.json", MESH)
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.fake.port,
                                    "--serviceentries", path, "--upstream-timeout", "3000",
                                    *flags)
        harness.wait_until(lambda: harness.query(self.m.port, "reviews.default.cluster-2",
                                                 "A").answer, 5, "the mesh table")
        for r in harness.concurrently(lambda n: harness.query(self.m.port, n, "A"), CACHED):
            self.assertIsNotNone(r)
            self.assertEqual(r.rcode(), dns.rcode.NOERROR)
        self.up.delay = DELAY
        self.up.peak = 0

    def measure_side(self, load, names, qps, seconds, out):
        load.run(names, qps, seconds)
        out.update(load.results(grace=4.0))

    def flood(self, seconds=5, qps=2000, side_names=None, side_qps=100):
        """Floods distinct names from 127.0.0.1 while 127.0.0.2 asks @side_names; returns
        (flood results, side results, flood stats, side stats)."""
        self.assertTrue(loopback_src_ok("127.0.0.2"))
        flood = UdpLoad(self.m.port, "127.0.0.1")
        side = UdpLoad(self.m.port, "127.0.0.2")
        self.addCleanup(flood.close)
        self.addCleanup(side.close)
        side_res = {}
        t = threading.Thread(target=self.measure_side,
                             args=(side, side_names, side_qps, seconds, side_res))
        t.start()
        names = ["f%d.example.test" % i for i in range(int(qps * seconds))]
        flood.run(names, qps, seconds)
        flood_res = flood.results(grace=DELAY + 4.0)
        t.join(timeout=seconds + 15)
        return flood_res, side_res, summarize(flood_res), summarize(side_res)

    def test_l3_max_inflight_caps_upstream_queries_and_others_keep_answers(self):
        cap = 50
        self.start("--max-inflight", str(cap))
        rss0 = rss_kib(self.m.proc.pid)
        side_names = CACHED + sorted(MESH)
        flood_res, side_res, fs, ss = self.flood(side_names=side_names)
        rss1 = rss_kib(self.m.proc.pid)
        figure("flood (--max-inflight %d, upstream %d ms): 127.0.0.1" % (cap, DELAY * 1000),
               fs)
        figure("flood: cached+mesh names from 127.0.0.2 during it", ss)
        figure("flood: upstream queries at once, at most", self.up.peak)
        figure("flood: VmRSS before/after", "%d / %d KiB" % (rss0, rss1))
        self.assertAlive(self.m)
        self.assertEqual(fs["lost"], 0, "queries past the cap must get an answer: %s" % fs)
        self.assertLessEqual(self.up.peak, cap, "upstream queries at once over the cap")
        self.assertGreater(fs["rcodes"].get("SERVFAIL", 0), 0, "the flood went over the cap")
        refused = [(lat, msg) for _, lat, msg in flood_res.values()
                   if msg is not None and msg.rcode() == dns.rcode.SERVFAIL]
        no_ede = [m for _, m in refused if not ede_codes(m)]
        self.assertEqual(no_ede[:1], [], "SERVFAIL past the cap carries an EDE")
        lats = sorted(lat for lat, _ in refused)
        figure("flood: SERVFAIL past the cap answered in (p50/p99/max)", "%.2f / %.2f / %.2f ms"
               % tuple(1000 * v for v in (lats[len(lats) // 2], lats[len(lats) * 99 // 100],
                                          lats[-1])))
        slow = [lat for lat in lats if lat >= DELAY]
        self.assertEqual(slow, [], "refusals past the cap must not wait for the upstream")
        self.assertEqual(set(fs["rcodes"]) - {"SERVFAIL", "NXDOMAIN"}, set(), fs)
        # the other client: every cached and mesh name answered, with its data
        self.assertEqual(ss["lost"], 0, "isolation: %s" % ss)
        self.assertEqual(ss["rcodes"], {"NOERROR": ss["sent"]}, ss)
        for name, _, msg in side_res.values():
            self.assertTrue(msg.answer, "%s answered without data" % name)
        self.assertLess(rss1 - rss0, 16 * 1024, "RSS grew by %d KiB" % (rss1 - rss0))

    def test_l3_max_inflight_per_client_does_not_stop_another_client(self):
        cap = 20
        self.start("--max-inflight-per-client", str(cap))
        # the other client asks uncached names too: 20/s at 500 ms each is ~10 at once
        other = ["o%d.example.test" % i for i in range(100)]
        flood_res, side_res, fs, ss = self.flood(side_names=other, side_qps=20)
        figure("per-client cap %d: flooding client 127.0.0.1" % cap, fs)
        figure("per-client cap %d: other client 127.0.0.2 (uncached names)" % cap, ss)
        figure("per-client cap: upstream queries at once, at most", self.up.peak)
        self.assertAlive(self.m)
        self.assertEqual(fs["lost"], 0, fs)
        self.assertGreater(fs["rcodes"].get("SERVFAIL", 0), 0, "the flood hit its cap")
        self.assertEqual(ss["lost"], 0, ss)
        self.assertEqual(ss["rcodes"], {"NXDOMAIN": ss["sent"]},
                         "the other client's queries all reached the upstream: %s" % ss)
        self.assertLessEqual(self.up.peak, cap + 15)


def framed(wire):
    return struct.pack("!H", len(wire)) + wire


class TcpCaps(DnsTestCase):

    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 8192)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            cls.addClassCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))

    def setUp(self):
        self.up = self.start_fake()

    def connect(self, m, keep=True):
        s = socket.create_connection((harness.HOST, m.port), timeout=5)
        if keep:
            self.addCleanup(s.close)
        return s

    def ask(self, s, qid):
        s.sendall(framed(harness.make_query("www.example.test", "A", qid=qid).to_wire()))
        wire = tcp_read_msg(s)
        return dns.message.from_wire(wire) if wire is not None else None

    def test_l6_connections_over_the_cap_closed_at_once_others_keep_working(self):
        cap = 100
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                               "--max-tcp-connections", str(cap), "--tcp-idle-timeout",
                               "60000")
        harness.wait_until(lambda: server_side_conns(m.port) == 0, 5, "the probe's close")
        held = [self.connect(m) for _ in range(cap)]
        for i, s in enumerate(held):
            r = self.ask(s, i)
            self.assertIsNotNone(r, "connection %d within the cap" % i)
        closed_in = []
        for i in range(50):
            s = self.connect(m)
            s.settimeout(5)
            t0 = time.monotonic()
            try:
                s.sendall(framed(harness.make_query("www.example.test", "A").to_wire()))
                data = s.recv(2)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            except socket.timeout:
                self.fail("connection %d over the cap left open without an answer" % i)
            closed_in.append(time.monotonic() - t0)
            self.assertEqual(data, b"", "connection %d over the cap was served" % i)
        for i, s in enumerate(held):
            self.assertIsNotNone(self.ask(s, 1000 + i), "held connection %d stopped" % i)
        self.assertIsNotNone(harness.query(m.port, "www.example.test", "A"), "UDP")
        self.assertAlive(m)
        figure("TCP over --max-tcp-connections %d: 50 extra connections closed in" % cap,
               "max %.1f ms" % (max(closed_in) * 1000))

    def test_l6_thousand_idle_connections_cost_bounded_memory(self):
        n = 1000
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                               "--max-tcp-connections", "4000", "--tcp-idle-timeout",
                               "120000")
        harness.query(m.port, "www.example.test", "A")  # cached: TCP queries are hits
        harness.wait_until(lambda: server_side_conns(m.port) == 0, 5, "the probe's close")
        time.sleep(0.3)
        rss0 = rss_kib(m.proc.pid)
        conns = [self.connect(m) for _ in range(n)]
        harness.wait_until(lambda: server_side_conns(m.port) >= n, 10, "every accept")
        time.sleep(0.3)
        rss_idle = rss_kib(m.proc.pid)
        for i, s in enumerate(conns):
            self.assertIsNotNone(self.ask(s, i % 65536), "connection %d" % i)
        time.sleep(0.3)
        rss_used = rss_kib(m.proc.pid)
        per_idle = (rss_idle - rss0) * 1024 / n
        per_used = (rss_used - rss0) * 1024 / n
        figure("TCP: VmRSS growth per idle connection (1000 connections)",
               "%.0f bytes after connect, %.0f bytes after one query each"
               % (per_idle, per_used))
        self.assertIsNotNone(harness.query(m.port, "www.example.test", "A"), "UDP")
        self.assertAlive(m)
        self.assertLess(per_used, 16 * 1024, "memory per idle TCP connection")


if __name__ == "__main__":
    harness.main()
