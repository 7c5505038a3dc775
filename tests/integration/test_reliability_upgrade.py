"""Zero-downtime upgrade (reliability.md F3): a new instance starts on the same address
(SO_REUSEPORT), the old one gets SIGTERM, and no client query is lost or fails.

The old instance leaves the UDP SO_REUSEPORT group (udp_listener_drain), answers what its
sockets already hold and what is in flight upstream, and exits 0. dnsperf drives a steady
rate of mesh and cached names through three handovers in a row; kdig over UDP and over TCP
(a new connection per query) runs through another. In a network namespace of the test's
own, the interface and its address stay while the new instance serves, and go when the last
instance stops (unless --skip-teardown).
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import dns.message
import dns.rcode

import harness
import zones
from harness import DnsTestCase, Process
from relutil import NetNs, dnsperf, figure, mesh_file, parse_dnsperf

MESH = {"reviews.default.cluster-2": ["240.0.0.10", "2001:db8:240::10"],
        "ratings.default.cluster-2": ["240.0.0.11"],
        "db.corp.global": ["240.0.1.1", "240.0.1.2"]}
# (name, type): mesh names and names the cache holds (TTL 300 at the upstream)
MIX = ([(h, "A") for h in sorted(MESH)] + [("reviews.default.cluster-2", "AAAA")]
       + [("www.example.test", t) for t in ("A", "AAAA", "TXT")]
       + [("mail.example.test", "A"), ("ns.example.test", "A"), ("alias.example.test", "A"),
          ("chain1.example.test", "A"), ("example.test", "MX")])


def serving(inst):
    return "serving with" in inst.log()


class Handover(DnsTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_unbound({"example.test.": zones.example_zone("upstream")})

    def setUp(self):
        self.se = mesh_file(os.path.join(self.tmp(), "se.json"), MESH)
        self.port = harness.free_port()

    def instance(self):
        """A new instance on the shared port; returns once its sockets are bound and its
        mesh table is loaded (the log says so)."""
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                               "--serviceentries", self.se, port=self.port, ready=False)
        harness.wait_until(lambda: serving(m) or not m.alive(), 10, "the new instance")
        self.assertAlive(m)
        return m

    def warm(self):
        for name, qtype in MIX:
            r = harness.query(self.port, name, qtype)
            self.assertIsNotNone(r, name)
            self.assertEqual(r.rcode(), dns.rcode.NOERROR, (name, qtype, r.to_text()))
            self.assertTrue(r.answer, (name, qtype))

    def stop_old(self, old):
        """SIGTERM @old; returns (exit status, seconds to exit)."""
        t0 = time.monotonic()
        old.proc.send_signal(signal.SIGTERM)
        status = old.proc.wait(10)
        return status, time.monotonic() - t0

    def test_f3_three_handovers_under_dnsperf_lose_nothing(self):
        datafile = os.path.join(self.tmp(), "mix.txt")
        with open(datafile, "w") as f:
            f.write("".join("%s %s\n" % q for q in MIX))
        old = self.instance()
        self.warm()
        totals = {"sent": 0, "lost": 0, "servfail": 0}
        for round_ in range(3):
            perf = dnsperf(self.port, datafile, seconds=8, qps=5000, timeout=2)
            self.addCleanup(lambda p=perf: p.poll() is None and p.kill())
            time.sleep(2)
            new = self.instance()
            time.sleep(1)
            status, took = self.stop_old(old)
            out, _ = perf.communicate(timeout=30)
            res = parse_dnsperf(out)
            figure("handover %d under dnsperf 5000 q/s" % (round_ + 1),
                   "sent %d, lost %d, rcodes %s; old instance exited %s in %.2f s"
                   % (res["sent"], res["lost"], res["rcodes"], status, took))
            self.assertEqual(status, 0, "old instance exit status:\n%s" % old.log())
            self.assertLess(took, 5.0, "old instance exits within a few seconds")
            self.assertGreater(res["sent"], 0, out)
            self.assertEqual(res["lost"], 0, "round %d: queries lost\n%s" % (round_ + 1, out))
            self.assertEqual(set(res["rcodes"]), {"NOERROR"},
                             "round %d: %s\n%s" % (round_ + 1, res["rcodes"], out))
            totals["sent"] += res["sent"]
            totals["lost"] += res["lost"]
            totals["servfail"] += res["rcodes"].get("SERVFAIL", 0)
            old = new
        figure("three handovers", totals)

    def test_f3_new_instance_with_a_large_table_answers_no_mesh_name_wrongly(self):
        # A real table takes a while to load (the file is read and decoded after the
        # sockets are bound; the API's first list takes longer). Meanwhile the kernel already
        # sends the new instance its share of the queries.
        hosts = dict(MESH)
        hosts.update({"h%d.default.cluster-2" % i: ["240.1.%d.%d" % (i // 250, i % 250 + 1)]
                      for i in range(30000)})
        mesh_file(self.se, hosts)
        datafile = os.path.join(self.tmp(), "mesh.txt")
        with open(datafile, "w") as f:
            f.write("".join("%s A\n" % h for h in sorted(MESH)))
        old = self.instance()
        harness.wait_until(lambda: "ServiceEntries" in old.log(), 20, "the table")
        self.warm()
        perf = dnsperf(self.port, datafile, seconds=6, qps=5000, timeout=2, clients=20)
        self.addCleanup(lambda: perf.poll() is None and perf.kill())
        time.sleep(1.5)
        new = self.instance()
        harness.wait_until(lambda: "ServiceEntries" in new.log(), 20, "the new table")
        time.sleep(1)
        status, _ = self.stop_old(old)
        out, _ = perf.communicate(timeout=30)
        res = parse_dnsperf(out)
        leaked = sum(self.up.count(h) for h in MESH)
        figure("handover with a 30,000-host table under dnsperf 5000 q/s (mesh names)",
               "sent %d, lost %d, rcodes %s; mesh-name queries forwarded upstream: %d"
               % (res["sent"], res["lost"], res["rcodes"], leaked))
        self.assertEqual(status, 0)
        self.assertEqual(res["lost"], 0, out)
        self.assertEqual(set(res["rcodes"]), {"NOERROR"},
                         "the new instance took queries before its mesh table was loaded: %s"
                         % res["rcodes"])

    def test_f3_draining_instance_answers_what_reaches_it(self):
        # The old instance drains for as long as a forwarded query is in flight (here 1.5 s
        # upstream latency). What reaches it meanwhile (a UDP query queued before it left
        # the group, the in-flight one, a query on a TCP connection opened before SIGTERM)
        # is answered, not dropped with the connection.
        slow = self.start_fake()
        old = self.start_meshdns("--upstream", "127.0.0.1:%d" % slow.port,
                                 "--upstream-timeout", "4000", port=self.port)
        self.assertIsNotNone(harness.query(self.port, "www.example.test", "A"))  # cached
        slow.delay = 1.5
        conn = socket.create_connection((harness.HOST, self.port), timeout=5)
        self.addCleanup(conn.close)
        inflight = {}
        t = threading.Thread(target=lambda: inflight.update(
            r=harness.query(self.port, "mail.example.test", "A", timeout=5)))
        t.start()
        harness.wait_until(lambda: slow.count("mail.example.test") == 1, 5, "the forward")
        self.instance()  # the new one, as in a rollout
        old.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        self.assertTrue(old.alive(), "the old instance drains while a query is in flight")
        t0 = time.monotonic()
        wire = harness.make_query("www.example.test", "A", qid=77).to_wire()
        conn.sendall(len(wire).to_bytes(2, "big") + wire)
        try:
            wire = harness.tcp_read_msg(conn)
        except OSError:
            wire = None
        waited = time.monotonic() - t0
        t.join(timeout=10)
        self.assertEqual(old.proc.wait(10), 0)
        self.assertIsNotNone(inflight.get("r"), "the in-flight query was answered")
        self.assertEqual(inflight["r"].rcode(), dns.rcode.NOERROR)
        figure("draining instance: cached query on a TCP connection opened before SIGTERM",
               "%s after %.2f s" % ("answered" if wire else "connection closed unanswered",
                                    waited))
        self.assertIsNotNone(wire, "a query on an open TCP connection of the draining "
                             "instance was dropped (connection closed after %.2f s)" % waited)

    def kdig_loop(self, tcp, stop, out):
        """kdig one query after another (a new TCP connection each with +tcp) until @stop;
        @out gets (ok, failures as (name, type, what)). Over UDP, no retry: nothing may be
        lost. Over TCP, one retry, as resolvers do: a connection whose handshake completes
        between the old instance's last accept and the close of its listening socket is
        reset by the kernel (README, Updates: net.ipv4.tcp_migrate_req, not set here, hands
        it over instead); CI met it once, among some 1,100 connections a run. Connections
        queued before the drain must be answered without a retry: that is
        test_f3_tcp_connections_opened_before_sigterm_get_their_answers."""
        ok, bad, i = 0, [], 0
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            name, qtype = MIX[i % len(MIX)]
            i += 1
            argv = ["kdig", "@127.0.0.1", "-p", str(self.port), name, qtype, "+timeout=2",
                    "+retry=1" if tcp else "+retry=0"] + (["+tcp"] if tcp else [])
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            m = re.search(r"status: (\w+)", r.stdout)
            if m and m.group(1) == "NOERROR":
                ok += 1
            else:
                what = m.group(1) if m else (r.stdout + r.stderr).strip().splitlines()[-1:]
                bad.append((name, qtype, what))
        out.extend([ok, bad])

    def test_f3_handover_with_kdig_over_udp_and_tcp(self):
        old = self.instance()
        self.warm()
        stop = threading.Event()
        results = {"udp": [], "tcp": []}
        loops = [threading.Thread(target=self.kdig_loop, args=(p == "tcp", stop, results[p]))
                 for p in ("udp", "tcp")]
        for t in loops:
            t.start()
        try:
            time.sleep(1.5)
            self.instance()
            time.sleep(1)
            status, took = self.stop_old(old)
            time.sleep(1.5)
        finally:
            stop.set()
            for t in loops:
                t.join(timeout=20)
        for proto in ("udp", "tcp"):
            ok, bad = results[proto]
            figure("handover with kdig over %s (one query at a time)" % proto.upper(),
                   "%d answered, %d failed %s" % (ok, len(bad), bad[:5]))
        self.assertEqual(status, 0)
        self.assertLess(took, 5.0)
        for proto in ("udp", "tcp"):
            ok, bad = results[proto]
            self.assertGreater(ok, 10, proto)
            self.assertEqual(bad, [], "%s queries failed during the handover" % proto)


    def test_f3_tcp_connections_opened_before_sigterm_get_their_answers(self):
        """Connections the old instance accepted (or holds in its accept queue) when it
        gets SIGTERM, whose clients send their query only afterwards, are answered: the
        drain takes the queue and keeps each connection until it falls idle."""
        old = self.instance()
        self.warm()
        self.instance()
        conns = []
        for _ in range(40):  # about half of them land on the old instance's sockets
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            conns.append(s)
        old.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        answered, failed = 0, []
        for i, s in enumerate(conns):
            name, qtype = MIX[i % len(MIX)]
            wire = dns.message.make_query(name, qtype).to_wire()
            try:
                s.sendall(len(wire).to_bytes(2, "big") + wire)
                head = recv_exact(s, 2)
                r = dns.message.from_wire(recv_exact(s, int.from_bytes(head, "big")))
                if r.rcode() == dns.rcode.NOERROR and r.answer:
                    answered += 1
                else:
                    failed.append((name, qtype, dns.rcode.to_text(r.rcode())))
            except OSError as e:
                failed.append((name, qtype, str(e)))
            finally:
                s.close()
        status = old.proc.wait(10)
        figure("TCP connections opened before SIGTERM, queried 0.1 s after it",
               "%d answered, %d failed %s" % (answered, len(failed), failed[:5]))
        self.assertEqual(status, 0)
        self.assertEqual(failed, [])


    def test_f3_pipelined_tcp_queries_past_the_read_limit_are_answered(self):
        """A client pipelines 100 queries for new names on one TCP connection; the agent
        forwards 64 and stops reading until some are answered. SIGTERM arrives then: the
        drain must resume reading when answers come back, so the 36 still unread in the
        socket are answered too, before the instance exits."""
        slow = self.start_fake()
        old = self.start_meshdns("--upstream", "127.0.0.1:%d" % slow.port,
                                 "--upstream-timeout", "4000", port=self.port)
        slow.delay = 0.5
        conn = socket.create_connection((harness.HOST, self.port), timeout=10)
        self.addCleanup(conn.close)
        names = ["p%d.example.test" % i for i in range(100)]
        wire = b"".join(len(w).to_bytes(2, "big") + w for w in (
            harness.make_query(n, "A", qid=1000 + i).to_wire() for i, n in enumerate(names)))
        conn.sendall(wire)
        harness.wait_until(lambda: slow.count(proto="udp") >= 64, 5, "64 forwarded queries")
        time.sleep(0.1)
        forwarded_at_sigterm = slow.count(proto="udp")
        old.proc.send_signal(signal.SIGTERM)
        answers, failed = {}, []
        try:
            for _ in names:
                r = dns.message.from_wire(harness.tcp_read_msg(conn))
                answers[r.id] = r
        except (OSError, TypeError) as e:
            failed.append(str(e))
        status = old.proc.wait(10)
        bad = [(i, dns.rcode.to_text(r.rcode())) for i, r in answers.items()
               if r.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)]
        figure("100 pipelined TCP queries, SIGTERM after the first %d were forwarded"
               % forwarded_at_sigterm,
               "%d answered (%d with SERVFAIL or worse), %s" % (len(answers), len(bad),
                                                              failed or "no error"))
        self.assertLessEqual(forwarded_at_sigterm, 64, "the agent reads at most 64 ahead")
        self.assertEqual(failed, [])
        self.assertEqual(sorted(answers), list(range(1000, 1100)))
        self.assertEqual(bad, [])
        self.assertEqual(status, 0)


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise OSError("connection closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


class InterfaceKept(DnsTestCase):
    """The link and its address stay while another instance serves them (others_serve),
    and are removed by the last instance to stop, unless --skip-teardown."""

    ADDR = "169.254.20.10"
    LINK = "meshdns-t"

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root for network namespaces")
        self.ns = NetNs(self.addCleanup, "meshdns-rel-%d" % os.getpid())
        self.se = mesh_file(os.path.join(self.tmp(), "se.json"), MESH)
        self.n = 0

    def start(self, *extra):
        self.n += 1
        argv = self.ns.exec_argv([harness.MESHDNS, "--interface-kind", "bridge",
                                  "--interface", self.LINK, "--listen", "%s:53" % self.ADDR,
                                  "--serviceentries", self.se, "--upstream", "127.0.0.1:5",
                                  "--metrics", "off", "--health", "off"] + list(extra))
        p = Process(argv, os.path.join(self.tmp(), "ns-meshdns-%d.log" % self.n))
        self.addCleanup(p.stop)
        harness.wait_until(lambda: "serving with" in p.log() or not p.alive(), 10,
                           "meshdns in the namespace")
        self.assertTrue(p.alive(), p.log())
        return p

    def answered(self):
        r = self.ns.query(self.ADDR, 53, "reviews.default.cluster-2", timeout=1.0)
        return r is not None and r.rcode() == dns.rcode.NOERROR and bool(r.answer)

    def link_state(self):
        out = self.ns.ip("addr", "show", "dev", self.LINK, check=False)
        return ("present" if self.LINK in out else "absent",
                self.ADDR in out)

    def query_loop(self, stop, out):
        s = self.ns.socket()
        s.settimeout(1.0)
        s.connect((self.ADDR, 53))
        deadline = time.monotonic() + 30
        ok = lost = 0
        qid = 0
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                qid = (qid + 1) & 0xffff
                s.send(harness.make_query("reviews.default.cluster-2", "A", qid=qid).to_wire())
                try:
                    while True:
                        data = s.recv(4096)
                        if data[:2] == qid.to_bytes(2, "big"):
                            break
                    ok += 1
                except (TimeoutError, OSError):
                    lost += 1
                time.sleep(0.005)
        finally:
            s.close()
        out.extend([ok, lost])

    def test_f3_interface_kept_during_handover_removed_by_the_last(self):
        a = self.start()
        harness.wait_until(self.answered, 5, "answers on %s" % self.ADDR)
        self.assertEqual(self.link_state(), ("present", True))
        stop, counts = threading.Event(), []
        loop = threading.Thread(target=self.query_loop, args=(stop, counts))
        loop.start()
        try:
            b = self.start()
            time.sleep(1)
            a.send_signal(signal.SIGTERM)
            self.assertEqual(a.wait(10), 0, a.log())
            state = self.link_state()
            time.sleep(1)
        finally:
            stop.set()
            loop.join(timeout=10)
        figure("handover in a namespace with the interface (query loop)",
               "%d answered, %d lost" % tuple(counts))
        self.assertEqual(state, ("present", True), "A removed the interface B serves on\n"
                         + a.log())
        self.assertTrue(self.answered(), "B serves after A left")
        self.assertEqual(counts[1], 0, "queries lost during the handover")
        b.send_signal(signal.SIGTERM)
        self.assertEqual(b.wait(10), 0, b.log())
        self.assertEqual(self.link_state(), ("absent", False), "the last instance removes it")

    def test_f3_skip_teardown_leaves_the_interface(self):
        c = self.start("--skip-teardown")
        harness.wait_until(self.answered, 5, "answers on %s" % self.ADDR)
        c.send_signal(signal.SIGTERM)
        self.assertEqual(c.wait(10), 0, c.log())
        self.assertEqual(self.link_state(), ("present", True))


if __name__ == "__main__":
    harness.main()
