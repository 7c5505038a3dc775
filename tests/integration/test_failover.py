"""Failover and failure (SEMANTICS.md rules 31 and 35; reliability.md F2).

Dead upstreams of two kinds: a closed port (the kernel answers ICMP port unreachable) and a
black hole (a bound socket that reads and never answers). Timing assertions only where the
behaviour is about time, with margins for a loaded machine: "well before the timeout" for
ICMP, "not before the timeout" for a black hole.
"""

import os
import socket
import subprocess
import threading
import time

import dns.flags
import dns.message
import dns.rcode

import harness
import zones
from fakeupstream import default_handler
from harness import DnsTestCase, answer_data

NAME = "www.example.test"


class BlackHole:
    """A UDP and TCP socket on a free port that take queries and never answer."""

    def __init__(self, tc):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        for _ in range(20):
            self.udp.bind((harness.HOST, 0))
            self.port = self.udp.getsockname()[1]
            try:
                self.tcp.bind((harness.HOST, self.port))
                break
            except OSError:
                self.udp.close()
                self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.tcp.listen(16)
        self.udp.settimeout(0)
        tc.addCleanup(self.udp.close)
        tc.addCleanup(self.tcp.close)

    def received(self):
        """Datagrams received so far (drained)."""
        n = 0
        for _ in range(10000):
            try:
                self.udp.recv(65535)
            except (BlockingIOError, socket.timeout):
                return n
            n += 1
        return n


def rcode_handler(rcode):
    def handler(q):
        resp = dns.message.make_response(q.msg)
        resp.set_rcode(rcode)
        q.send(resp)
    return handler


def timed_dnsq(m, *args, **kw):
    t0 = time.monotonic()
    r = m.dnsq(*args, **kw)
    return r, time.monotonic() - t0


class Failover(DnsTestCase):

    def addr(self, port):
        return "127.0.0.1:%d" % port

    def test_rule31_closed_port_first_then_second_answers_at_once(self):
        dead = harness.free_port()  # nothing listens: ICMP port unreachable
        good = self.start_fake()
        m = self.start_meshdns("--upstream", self.addr(dead), "--upstream", self.addr(good.port),
                               "--upstream-timeout", "4000")
        r, elapsed = timed_dnsq(m, NAME, "A", timeout_ms=10000)
        self.assertEqual(answer_data(r), [zones.WWW_IP], r)
        self.assertLess(elapsed, 3.0, "ICMP refused must not cost the 4 s timeout")

    def test_rule31_black_hole_first_then_second_after_one_timeout(self):
        hole = BlackHole(self)
        good = self.start_fake()
        m = self.start_meshdns("--upstream", self.addr(hole.port), "--upstream",
                               self.addr(good.port), "--upstream-timeout", "600")
        r, elapsed = timed_dnsq(m, NAME, "A", timeout_ms=10000)
        self.assertEqual(answer_data(r), [zones.WWW_IP], r)
        self.assertGreaterEqual(hole.received(), 1, "the first server is asked first")
        self.assertGreaterEqual(elapsed, 0.55, "the second server only after the timeout")
        self.assertLess(elapsed, 0.6 + 3.0)

    def test_rule31_first_server_is_asked_first(self):
        a, b = self.start_fake(), self.start_fake()
        m = self.start_meshdns("--upstream", self.addr(a.port), "--upstream", self.addr(b.port))
        for i in range(5):
            m.dnsq("n%d.example.test" % i, "A")
        self.assertEqual((a.count(), b.count()), (5, 0))

    def test_rule31_servfail_or_refused_moves_to_the_next_server(self):
        for rcode in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
            with self.subTest(rcode=dns.rcode.to_text(rcode)):
                bad = self.start_fake(handler=rcode_handler(rcode))
                good = self.start_fake()
                m = self.start_meshdns("--upstream", self.addr(bad.port), "--upstream",
                                       self.addr(good.port))
                r = m.dnsq(NAME, "A")
                self.assertEqual(answer_data(r), [zones.WWW_IP], r)
                self.assertEqual((bad.count(), good.count()), (1, 1))

    def check_tcp_failure_moves_on(self, on_tcp, timeout_ms):
        def handler(q):
            if q.proto == "udp":
                short = dns.message.make_response(q.msg)
                short.flags |= dns.flags.TC
                q.send(short)
            else:
                on_tcp(q)
        bad = self.start_fake(handler=handler)
        good = self.start_fake()
        m = self.start_meshdns("--upstream", self.addr(bad.port), "--upstream",
                               self.addr(good.port), "--upstream-timeout", str(timeout_ms))
        r = m.dnsq(NAME, "A", timeout_ms=10000)
        self.assertEqual(answer_data(r), [zones.WWW_IP], r)
        self.assertEqual([q.proto for q in bad.received()], ["udp", "tcp"])
        self.assertEqual(good.count(), 1)

    def test_rule31_tcp_retry_closed_without_answer_moves_on(self):
        self.check_tcp_failure_moves_on(lambda q: q.conn.shutdown(socket.SHUT_RDWR), 3000)

    def test_rule31_tcp_retry_never_answered_moves_on_after_the_timeout(self):
        self.check_tcp_failure_moves_on(lambda q: None, 500)

    def test_rule31_tcp_retry_refused_moves_on(self):
        # the UDP socket truncates, and nothing listens for TCP on that port
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(udp.close)
        udp.bind((harness.HOST, 0))
        port = udp.getsockname()[1]
        good = self.start_fake()
        m = self.start_meshdns("--upstream", self.addr(port), "--upstream",
                               self.addr(good.port), "--upstream-timeout", "3000")

        def truncate_one():
            data, src = udp.recvfrom(65535)
            q = dns.message.from_wire(data)
            short = dns.message.make_response(q)
            short.flags |= dns.flags.TC
            udp.sendto(short.to_wire(), src)
        udp.settimeout(5)
        t = threading.Thread(target=truncate_one)
        t.start()
        r, elapsed = timed_dnsq(m, NAME, "A", timeout_ms=10000)
        t.join(timeout=5)
        self.assertEqual(answer_data(r), [zones.WWW_IP], r)
        self.assertLess(elapsed, 2.5, "a TCP RST must not cost the 3 s timeout")

    def test_rule31_cluster_dns_failover(self):
        dead = harness.free_port()
        kube = self.start_fake(zones.zones_for("kube"))
        up = self.start_fake()
        m = self.start_meshdns("--upstream", self.addr(up.port), "--cluster-dns",
                               self.addr(dead), "--cluster-dns", self.addr(kube.port))
        r = m.dnsq("kube-dns.kube-system.svc.cluster.local", "A")
        self.assertEqual(answer_data(r), [zones.KUBE_DNS_IP], r)
        self.assertEqual(up.count(), 0)

    def test_rule31_sockets_refused_by_icmp_are_closed_not_reused(self):
        """An upstream socket that got ICMP port unreachable holds an error and is no longer
        watched by the loop: it must be closed, never recycled for a later query (whose
        send would fail with the old error, or whose answer nobody would read), and never
        leaked. Cluster names go to a closed port, other names to a good server, in turn,
        on the same worker and its one pool of sockets."""
        dead = harness.free_port()
        up = self.start_fake()
        m = self.start_meshdns("--upstream", self.addr(up.port), "--cluster-dns",
                               self.addr(dead), "--upstream-timeout", "4000")
        fds = "/proc/%d/fd" % m.proc.proc.pid

        def pair(i):
            r = harness.query(m.port, "svc%d.ns.svc.cluster.local" % i, timeout=3.0)
            self.assertIsNotNone(r, "refused by ICMP: SERVFAIL at once, not a timeout")
            self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
            t0 = time.monotonic()
            r = harness.query(m.port, "n%d.example.test" % i, timeout=3.0)
            self.assertIsNotNone(r, "query %d to the good server was not answered" % i)
            self.assertEqual(r.rcode(), dns.rcode.NXDOMAIN, "query %d: %s" % (i, r))
            self.assertLess(time.monotonic() - t0, 2.0, "query %d waited on a dead socket" % i)

        for i in range(5):
            pair(i)
        before = len(os.listdir(fds))
        for i in range(5, 300):
            pair(i)
        self.assertEqual(up.count(), 300, "every good query reached the good server once")
        self.assertLessEqual(len(os.listdir(fds)), before + 4, "sockets leaked")
        self.assertAlive(m)

    def test_rule31_server_on_the_attempts_own_port_fails_at_once(self):
        """A server on this host, on a port of the ephemeral range, that is not running: the
        kernel may give the attempt's socket that very port, and the query comes back to it
        from the server's address. No reply and no ICMP message will come: the attempt fails
        at once, not after --upstream-timeout. A network namespace whose ephemeral range is
        that one port makes it happen every time."""
        ns = harness.netns(self, "meshdns-self")
        port = 50000
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                        "net.ipv4.ip_local_port_range=%d %d" % (port, port)], check=True)
        # the upstream: port 53, outside the range, closed (ICMP), so readiness is quick
        m = self.start_meshdns("--cluster-dns", "127.0.0.1:%d" % port, "--upstream",
                               "127.0.0.1:53", "--upstream-timeout", "4000",
                               "--metrics", "127.0.0.1:9253",
                               wrap=["ip", "netns", "exec", ns], port=5353, ready=False)

        def in_ns(*cmd):
            return subprocess.run(["ip", "netns", "exec", ns] + list(cmd),
                                  capture_output=True, text=True, timeout=20).stdout

        def ask(name, timeout=10):
            # the client's port is its own, outside the one-port range the agent draws from
            t0 = time.monotonic()
            out = in_ns("kdig", "-b", "127.0.0.1#40000", "-p", "5353", "@127.0.0.1",
                        "+timeout=%d" % timeout, "+retry=0", name, "A")
            return out, time.monotonic() - t0

        # kdig's socket is not connected: a query sent before the agent listens is lost
        harness.wait_until(lambda: not m.alive() or "status: SERVFAIL" in ask(NAME, 1)[0],
                           20, "meshdns in %s" % ns)
        self.assertTrue(m.alive(), m.log())
        for i in range(3):
            out, elapsed = ask("svc%d.ns.svc.cluster.local" % i)
            self.assertIn("status: SERVFAIL", out)
            self.assertLess(elapsed, 2.0, "query %d waited for the 4 s timeout" % i)
        metrics = in_ns("curl", "-s", "http://127.0.0.1:9253/metrics")
        # the mechanism, so that an ICMP message cannot pass this test in its place
        self.assertIn('meshdns_upstream_dropped_total{reason="malformed"} 3', metrics)
        self.assertIn('meshdns_forward_timeouts_total{to="127.0.0.1:%d"} 0' % port, metrics)
        self.assertAlive(m)

    def test_rule31_late_reply_after_timeout_is_not_used_and_next_server_is(self):
        slow = self.start_fake()
        slow.delay = 1.5
        # the second server has other data (WWW_IP_WRONG): the answer shows who gave it
        good = self.start_fake({"example.test.": zones.example_zone("kube")})
        m = self.start_meshdns("--upstream", self.addr(slow.port), "--upstream",
                               self.addr(good.port), "--upstream-timeout", "500")
        r = m.dnsq(NAME, "A", timeout_ms=5000)
        self.assertEqual(answer_data(r), [zones.WWW_IP_WRONG], "the second server's data")
        time.sleep(1.5)  # the slow reply arrives now; it must not replace the cached answer
        r = m.dnsq(NAME, "A")
        self.assertEqual(answer_data(r), [zones.WWW_IP_WRONG])


class AllServersFail(DnsTestCase):
    """Rule 31: every server failed -> SERVFAIL (never NXDOMAIN), with an EDE when the
    client sent EDNS; rule 35: not cached."""

    def assert_servfail_with_ede(self, r):
        self.assertRcode(r, "SERVFAIL")
        self.assertIsNotNone(r["edns"], "the client sent EDNS: the reply has OPT")
        codes = [e["code"] for e in r["edns"]["ede"]]
        self.assertTrue(set(codes) & {22, 23}, "EDE 22 or 23 expected, got %s" % codes)
        self.assertEqual(r["answer"], [])

    def test_rule31_all_closed_ports_servfail_with_ede_quickly(self):
        d1, d2 = harness.free_port(), harness.free_port()
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % d1, "--upstream",
                               "127.0.0.1:%d" % d2, "--upstream-timeout", "4000")
        r, elapsed = timed_dnsq(m, NAME, "A", "--edns", "1232", timeout_ms=15000)
        self.assert_servfail_with_ede(r)
        self.assertLess(elapsed, 3.0, "ICMP refused must not cost the timeouts")

    def test_rule31_all_black_holes_servfail_with_ede_after_the_timeouts(self):
        h1, h2 = BlackHole(self), BlackHole(self)
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % h1.port, "--upstream",
                               "127.0.0.1:%d" % h2.port, "--upstream-timeout", "500")
        r, elapsed = timed_dnsq(m, NAME, "A", "--edns", "1232", timeout_ms=15000)
        self.assert_servfail_with_ede(r)
        self.assertEqual((h1.received(), h2.received()), (1, 1))
        self.assertGreaterEqual(elapsed, 0.95, "two tries of 500 ms")
        self.assertLess(elapsed, 1.0 + 3.0, "the per-try timeout is honoured")

    def test_rule31_servfail_without_edns_has_no_opt(self):
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % harness.free_port())
        r = m.dnsq(NAME, "A", timeout_ms=10000)
        self.assertRcode(r, "SERVFAIL")
        self.assertIsNone(r["edns"])

    def test_rule31_every_server_errors_gives_servfail_never_nxdomain(self):
        a = self.start_fake(handler=rcode_handler(dns.rcode.SERVFAIL))
        b = self.start_fake(handler=rcode_handler(dns.rcode.REFUSED))
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % a.port, "--upstream",
                               "127.0.0.1:%d" % b.port)
        r = m.dnsq(NAME, "A", "--edns", "1232")
        self.assertRcode(r, "SERVFAIL")

    def test_rule35_failure_is_not_cached(self):
        up = self.start_fake(handler=lambda q: None)  # drops everything
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port,
                               "--upstream-timeout", "300")
        self.assertRcode(m.dnsq("fresh.example.test", "A", timeout_ms=5000), "SERVFAIL")
        up.handler = default_handler  # the upstream is back
        r = m.dnsq("www.example.test", "A")
        self.assertEqual(answer_data(r), [zones.WWW_IP])
        self.assertRcode(m.dnsq("fresh.example.test", "A"), "NXDOMAIN")
        self.assertEqual(up.count("fresh.example.test"), 2, "the SERVFAIL was not cached")


class InflightLimits(DnsTestCase):
    """--max-inflight and --max-inflight-per-client (the flags' help text): queries over
    the limit do not reach the upstream."""

    def check_limit(self, flag):
        up = self.start_fake()
        up.delay = 2.0  # all six are sent well before the first two are answered
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port, flag, "2",
                               "--upstream-timeout", "4000")
        names = ["l%d.example.test" % i for i in range(6)]
        replies = harness.concurrently(  # one client address: 127.0.0.1
            lambda n: harness.query(m.port, n, "A", timeout=8), names)
        self.assertAlive(m)
        self.assertLessEqual(up.count(), 2, "%s 2: %d upstream queries at once"
                             % (flag, up.count()))
        answered = [r for r in replies if r is not None]
        self.assertEqual(len(answered), 6, "over the limit: a fast error, not silence")
        self.assertEqual(sum(1 for r in answered if r.rcode() == dns.rcode.NXDOMAIN), 2)

    def test_max_inflight_limits_upstream_queries(self):
        self.check_limit("--max-inflight")

    def test_max_inflight_per_client_limits_one_clients_queries(self):
        self.check_limit("--max-inflight-per-client")


if __name__ == "__main__":
    harness.main()
