"""--threads 2: the same answers as one thread (a subset of the other files).

Each worker has its own SO_REUSEPORT sockets, so queries from different source ports land
on either thread; the cache is shared, so a name cached by one thread is a hit on the
other. Coalescing is per thread: N concurrent identical queries make at most one upstream
query per thread.
"""

import os
import signal
import socket
import struct
import time

import dns.message

import harness
import zones
from harness import DnsTestCase, answer_data
from test_protocol import header, question
from test_upstream_replies import FORGED_IP, forge_then_answer

THREADS = "2"


class TwoThreads(DnsTestCase):

    def setUp(self):
        self.up = self.start_fake()
        self.kube = self.start_fake(zones.zones_for("kube"))
        self.m = self.start_meshdns("--threads", THREADS,
                                    "--upstream", "127.0.0.1:%d" % self.up.port,
                                    "--cluster-dns", "127.0.0.1:%d" % self.kube.port)

    def test_rules4_5_routing(self):
        r = self.m.dnsq("kube-dns.kube-system.svc.cluster.local", "A")
        self.assertEqual(answer_data(r, "A"), [zones.KUBE_DNS_IP])
        r = self.m.dnsq("www.example.test", "A")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP])
        self.assertEqual((self.kube.count(), self.up.count()), (1, 1))

    def test_rule33_cache_is_shared_by_the_threads(self):
        self.m.dnsq("www.example.test", "A")
        ports = set()
        for i in range(40):  # a new socket each time: new source ports spread the queries
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(3)
            try:
                s.bind((harness.HOST, 0))
                ports.add(s.getsockname()[1])
                s.sendto(harness.make_query("www.example.test", "A", qid=i).to_wire(),
                         (harness.HOST, self.m.port))
                r = dns.message.from_wire(s.recv(65535))
            finally:
                s.close()
            self.assertEqual(r.id, i)
            self.assertEqual(harness.rrs(r), {("www.example.test.", "A"): [zones.WWW_IP]})
        self.assertGreater(len(ports), 30)
        self.assertEqual(self.up.count("www.example.test"), 1)

    def test_queries_from_many_ports_are_spread_over_both_threads(self):
        # SO_REUSEPORT hashes the source address and port; a group that holds a
        # connected socket is searched by score instead, which hands every datagram to
        # one socket (seen with a reply socket inside the group: 399 to 1). Each answered
        # query wakes the thread that read it: count the wake-ups (voluntary context
        # switches) of every thread.
        self.m.dnsq("www.example.test", "A")

        def switches():
            out = {}
            for tid in os.listdir("/proc/%d/task" % self.m.proc.pid):
                try:
                    with open("/proc/%d/task/%s/status" % (self.m.proc.pid, tid)) as f:
                        for line in f:
                            if line.startswith("voluntary_ctxt_switches:"):
                                out[tid] = int(line.split()[1])
                except OSError:
                    pass
            return out

        before, t0 = switches(), time.monotonic()
        for i in range(40):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(3)
            try:
                s.connect((harness.HOST, self.m.port))
                for k in range(10):
                    s.send(harness.make_query("www.example.test", "A", qid=k).to_wire())
                    self.assertEqual(dns.message.from_wire(s.recv(65535)).id, k)
            finally:
                s.close()
        after, secs = switches(), time.monotonic() - t0
        woken = sorted((after[t] - before.get(t, 0) for t in after), reverse=True)
        # 400 queries from 40 ports: about 200 wake-ups each. The 100 ms tick wakes an idle
        # thread too, 10 times a second, so that much is not evidence. A thread with
        # fewer than 4 of the 40 ports would be a 1e-8 event.
        self.assertGreaterEqual(woken[1], 40 + 10 * secs,
                                "wake-ups per thread: %s in %.1f s" % (woken, secs))

    def test_rule30_coalescing_at_most_one_query_per_thread(self):
        self.up.delay = 1.0
        replies = harness.concurrently(
            lambda i: harness.query(self.m.port, "www.example.test", "A", qid=i, timeout=5),
            list(range(50)))
        for i, r in enumerate(replies):
            self.assertIsNotNone(r, "client %d got no answer" % i)
            self.assertEqual(r.id, i)
        self.assertLessEqual(self.up.count("www.example.test"), int(THREADS))

    def test_rule24_tcp_on_several_connections(self):
        conns = [socket.create_connection((harness.HOST, self.m.port), timeout=5)
                 for _ in range(6)]
        for s in conns:
            self.addCleanup(s.close)
        for i, s in enumerate(conns):
            wire = b"".join(struct.pack("!H", len(w)) + w for w in (
                harness.make_query("www.example.test", t, qid=10 * i + k).to_wire()
                for k, t in enumerate(("A", "AAAA", "TXT"))))
            s.sendall(wire)
        for i, s in enumerate(conns):
            ids = sorted(dns.message.from_wire(harness.tcp_read_msg(s)).id for _ in range(3))
            self.assertEqual(ids, [10 * i, 10 * i + 1, 10 * i + 2])

    def test_rules25_27_protocol_errors(self):
        self.assertRcode(self.m.dnsq(raw=header(qd=2) + question() + question()), "FORMERR")
        self.assertRcode(self.m.dnsq("version.bind", "TXT", "--class", "CH"), "REFUSED")
        self.assertRcode(self.m.dnsq("www.example.test", "A", "--opcode", "2"), "NOTIMP")
        self.assertRcode(self.m.dnsq("www.example.test", "A", "--edns-version", "1"),
                         "BADVERS")
        r = self.m.dnsq(raw=header(flags=0x8100) + question(), timeout_ms=400)
        self.assertEqual(r, {"timeout": True})

    def test_rule27_truncation(self):
        r = self.m.dnsq("medium.example.test", "TXT")
        self.assertIn("tc", r["flags"])
        self.assertLessEqual(r["size"], 512)
        r = self.m.dnsq("medium.example.test", "TXT", "--tcp")
        self.assertEqual(len(r["answer"]), 12)

    def test_rule29_forgery_ignored(self):
        self.up.handler = forge_then_answer(["wrong_id", "wrong_source_port", "garbage"])
        for _ in range(2):
            r = self.m.dnsq("www.example.test", "A")
            self.assertEqual(answer_data(r, "A"), [zones.WWW_IP])
            self.assertNotIn(FORGED_IP, answer_data(r))

    def test_sigterm_exits_0(self):
        self.m.dnsq("www.example.test", "A")
        self.assertEqual(self.m.proc.stop(signal.SIGTERM, timeout=10), 0, self.m.log())


if __name__ == "__main__":
    harness.main()
