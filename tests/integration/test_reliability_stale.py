"""Serve-stale and prefetch (reliability.md F1; RFC 8767; SEMANTICS.md rules 31 and 34).

Upstreams die in two ways: stopped by PID (closed port: the kernel refuses at once) and
black holes (a socket that reads and never answers). Every cached name must keep resolving
with its expired data, TTL 30 and EDE 3 (19 for NXDOMAIN), until --stale-window ends; names
never cached get SERVFAIL with an EDE. With a black hole the stale answer comes after one
--upstream-timeout (the client response timer), not after every server failed. A hot name is
refreshed before it expires, so its clients never wait for the upstream.
"""

import time

import dns.rcode
import dns.rdatatype

import harness
from fakeupstream import default_handler
from harness import DnsTestCase
from relutil import ede_codes, figure

N = 8  # names with A and AAAA
STALE_TTL = 30
STALE_WINDOW = 6


def stale_zone():
    lines = ["$ORIGIN stale.test.", "$TTL 2",
             "@ 2 IN SOA ns.stale.test. hostmaster.stale.test. 1 7200 1800 86400 2",
             "@ 2 IN NS ns.stale.test.", "ns 2 IN A 192.0.2.53",
             "alias 2 IN CNAME mid.stale.test.", "mid 2 IN CNAME n0.stale.test."]
    for i in range(N):
        lines.append("n%d 2 IN A 192.0.2.%d" % (i, 10 + i))
        lines.append("n%d 2 IN AAAA 2001:db8::%x" % (i, 16 + i))
    return "\n".join(lines) + "\n"


CLUSTER_ZONE = """$ORIGIN cluster.local.
$TTL 2
@ 2 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 2
@ 2 IN NS ns.dns.cluster.local.
ns.dns 2 IN A 10.96.0.10
web.default.svc 2 IN A 10.96.2.2
"""

# (name, type, rcode while the upstream lives)
CASES = ([("n%d.stale.test" % i, "A", "NOERROR") for i in range(N)]
         + [("n%d.stale.test" % i, "AAAA", "NOERROR") for i in range(N)]
         + [("alias.stale.test", "A", "NOERROR"),
            ("nosuch.stale.test", "A", "NXDOMAIN"),
            ("web.default.svc.cluster.local", "A", "NOERROR")])


def ttls(msg):
    return [rrset.ttl for sec in (msg.answer, msg.authority) for rrset in sec]


def data(msg):
    return sorted((rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype), r.to_text())
                  for rrset in msg.answer for r in rrset)


def timed_query(port, name, qtype, timeout=10.0):
    t0 = time.monotonic()
    r = harness.query(port, name, qtype, edns=1232, timeout=timeout)
    return r, time.monotonic() - t0


class StaleAfterUpstreamsStopped(DnsTestCase):
    """F1: both upstreams (unbound as the general upstream and as cluster DNS) stopped by
    PID after the cache was warmed with 2 s TTLs."""

    def test_f1_cached_names_served_stale_until_the_window_ends(self):
        up = self.start_unbound({"stale.test.": stale_zone()}, name="up")
        kube = self.start_unbound({"cluster.local.": CLUSTER_ZONE}, name="kube")
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port, "--cluster-dns",
                               "127.0.0.1:%d" % kube.port, "--stale-window",
                               str(STALE_WINDOW), "--upstream-timeout", "1000")
        warm = {}
        t_warm = time.monotonic()
        for name, qtype, rcode in CASES:
            r = harness.query(m.port, name, qtype, edns=1232)
            self.assertIsNotNone(r, name)
            self.assertEqual(dns.rcode.to_text(r.rcode()), rcode, (name, r))
            if rcode == "NOERROR":
                self.assertTrue(r.answer, (name, r))
            self.assertTrue(all(t <= 2 for t in ttls(r)), (name, r))
            warm[(name, qtype)] = data(r)
        t_warmed = time.monotonic()
        self.assertEqual(len([1 for a in warm.values() if ("alias.stale.test.", "CNAME",
                                                            "mid.stale.test.") in a]), 1,
                         "the CNAME chain was cached with its CNAMEs")
        up.proc.stop()
        kube.proc.stop()

        # every TTL (2 s) has run out 3.2 s after the first insert
        time.sleep(max(0.0, t_warm + 3.2 - time.monotonic()))
        stale = 0
        worst = 0.0
        for name, qtype, rcode in CASES:
            r, elapsed = timed_query(m.port, name, qtype)
            worst = max(worst, elapsed)
            self.assertIsNotNone(r, "%s %s: no answer with the upstreams down" % (name, qtype))
            self.assertEqual(dns.rcode.to_text(r.rcode()), rcode, (name, qtype, r.to_text()))
            self.assertEqual(data(r), warm[(name, qtype)], "the expired data, unchanged")
            self.assertEqual(set(ttls(r)), {STALE_TTL}, (name, qtype, r.to_text()))
            self.assertEqual(ede_codes(r), [19 if rcode == "NXDOMAIN" else 3],
                             (name, qtype, r.to_text()))
            stale += 1
        self.assertLess(time.monotonic(), t_warm + 1 + STALE_WINDOW,
                        "the stale checks ran past the window: machine too slow to judge")
        figure("stale answers served with every upstream stopped",
               "%d of %d cached (A, AAAA, CNAME chain, NXDOMAIN, cluster name); slowest %.0f ms"
               % (stale, len(CASES), worst * 1000))

        # never cached: SERVFAIL with an EDE, within the timeouts
        for name in ("never.stale.test", "never.default.svc.cluster.local"):
            r, elapsed = timed_query(m.port, name, "A")
            self.assertIsNotNone(r, name)
            self.assertEqual(r.rcode(), dns.rcode.SERVFAIL, r.to_text())
            self.assertTrue(set(ede_codes(r)) & {22, 23}, r.to_text())
            self.assertLess(elapsed, 1.0 + 3.0)

        # past the window: gone
        time.sleep(max(0.0, t_warmed + 2 + STALE_WINDOW + 1.5 - time.monotonic()))
        for name, qtype, _ in CASES:
            r = harness.query(m.port, name, qtype, edns=1232, timeout=10)
            self.assertIsNotNone(r, name)
            self.assertEqual(r.rcode(), dns.rcode.SERVFAIL,
                             "%s %s past --stale-window %d: %s"
                             % (name, qtype, STALE_WINDOW, r.to_text()))
            self.assertNotIn(3, ede_codes(r))
        self.assertAlive(m)

    def test_f1_stale_window_zero_turns_serve_stale_off(self):
        up = self.start_unbound({"stale.test.": stale_zone()}, name="up")
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port, "--stale-window", "0")
        self.assertEqual(harness.query(m.port, "n1.stale.test", "A").rcode(), dns.rcode.NOERROR)
        up.proc.stop()
        time.sleep(3.2)
        r = harness.query(m.port, "n1.stale.test", "A", edns=1232, timeout=10)
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL, r.to_text())


def drop(q):
    """A black hole: reads the query, never answers."""


class StaleWithBlackHoles(DnsTestCase):
    """RFC 8767's client response timer: the stale answer after one --upstream-timeout."""

    TIMEOUT = 1.5

    ZONE = {"example.test.": "$ORIGIN example.test.\n@ 300 IN SOA ns. h. 1 1 1 1 30\n"
                             "bh 2 IN A 192.0.2.77\n"}

    def setUp(self):
        self.x = self.start_fake(self.ZONE)
        self.y = self.start_fake(self.ZONE, handler=drop)
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.x.port, "--upstream",
                                    "127.0.0.1:%d" % self.y.port, "--upstream-timeout",
                                    str(int(self.TIMEOUT * 1000)))
        r = harness.query(self.m.port, "bh.example.test", "A")
        self.assertEqual(data(r), [("bh.example.test.", "A", "192.0.2.77")])
        self.x.handler = drop
        time.sleep(3.2)  # the 2 s TTL is over

    def assert_stale(self, r):
        self.assertIsNotNone(r)
        self.assertEqual(r.rcode(), dns.rcode.NOERROR, r.to_text())
        self.assertEqual(data(r), [("bh.example.test.", "A", "192.0.2.77")])
        self.assertEqual(ttls(r), [STALE_TTL])
        self.assertEqual(ede_codes(r), [3])

    def test_f1_stale_after_one_timeout_not_after_every_server(self):
        r, elapsed = timed_query(self.m.port, "bh.example.test", "A")
        self.assert_stale(r)
        figure("stale answer delay with two black-hole upstreams (timeout %.1f s)"
               % self.TIMEOUT, "%.2f s" % elapsed)
        self.assertGreaterEqual(elapsed, self.TIMEOUT - 0.1, "the upstream is tried first")
        self.assertLess(elapsed, 2 * self.TIMEOUT - 0.1,
                        "the stale answer must not wait for every server to fail")
        self.assertEqual(self.x.count("bh.example.test"), 2, "the first server was asked")

        # the query goes on to the second server in the background; then the upstream is back
        harness.wait_until(lambda: self.y.count("bh.example.test") == 1, 5,
                           "the background try of the second server")
        time.sleep(self.TIMEOUT + 0.3)  # ... which times out too
        self.x.handler = default_handler
        r, elapsed = timed_query(self.m.port, "bh.example.test", "A")
        self.assertEqual(data(r), [("bh.example.test.", "A", "192.0.2.77")])
        self.assertEqual(ede_codes(r), [], "a fresh answer once the upstream is back")
        self.assertLessEqual(max(ttls(r)), 2, "the upstream's TTL again: %s" % r.to_text())
        self.assertEqual(self.x.count("bh.example.test"), 3)

    def test_f1_background_query_refreshes_the_cache(self):
        self.y.handler = default_handler  # the second server works
        r, elapsed = timed_query(self.m.port, "bh.example.test", "A")
        self.assert_stale(r)
        self.assertLess(elapsed, 2 * self.TIMEOUT - 0.1)
        harness.wait_until(lambda: self.y.count("bh.example.test") == 1, 5,
                           "the background query to the second server")
        time.sleep(0.2)
        r = harness.query(self.m.port, "bh.example.test", "A", edns=1232)
        self.assertEqual(ede_codes(r), [], "served fresh from the refreshed cache")
        self.assertLessEqual(max(ttls(r)), 2, r.to_text())
        self.assertEqual((self.x.count("bh.example.test"), self.y.count("bh.example.test")),
                         (2, 1), "the refreshed entry is a cache hit")


class Prefetch(DnsTestCase):
    """A hot name is refreshed before its TTL runs out (prefetch in the last tenth of a TTL
    of 10 s or more): its clients never wait for the upstream and never see TTL 0."""

    TTL = 10
    DELAY = 0.3  # upstream latency of every refresh: a miss would cost at least this

    def test_hot_name_refreshed_before_it_expires(self):
        up = self.start_fake({"example.test.": "$ORIGIN example.test.\n"
                                               "@ 300 IN SOA ns. h. 1 1 1 1 30\n"
                                               "hot %d IN A 192.0.2.99\n" % self.TTL})
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port)
        r = harness.query(m.port, "hot.example.test", "A")
        self.assertEqual(ttls(r), [self.TTL])
        up.delay = self.DELAY
        seen = []  # (time, ttl, latency)
        t0 = time.monotonic()
        end = t0 + 2 * self.TTL + 1.5
        while time.monotonic() < end:
            s = time.monotonic()
            r = harness.query(m.port, "hot.example.test", "A", timeout=3)
            lat = time.monotonic() - s
            self.assertIsNotNone(r, "a query timed out")
            self.assertEqual(data(r), [("hot.example.test.", "A", "192.0.2.99")])
            seen.append((s - t0, ttls(r)[0], lat))
            time.sleep(0.05)
        qs = up.received("hot.example.test")
        fetch_times = [q.time - qs[0].time for q in qs]
        figure("prefetch: upstream queries for a hot %d s name over %.0f s" %
               (self.TTL, end - t0), "%d, at %s s after the first"
               % (len(qs), ", ".join("%.2f" % t for t in fetch_times)))
        self.assertGreaterEqual(len(qs), 3, "two refreshes in two TTLs")
        for prev, nxt in zip(fetch_times, fetch_times[1:]):
            self.assertLess(nxt - prev, self.TTL - self.DELAY,
                            "refreshed before expiry (upstream at %s)" % fetch_times)
        self.assertNotIn(0, [t for _, t, _ in seen], "a client saw TTL 0")
        for (_, a, _), (t, b, _) in zip(seen, seen[1:]):
            if b > a:
                self.assertGreaterEqual(a, 1, "TTL jumped from %d to %d at %.1f s" % (a, b, t))
        slow = [(round(t, 2), ttl, round(lat, 3)) for t, ttl, lat in seen if lat >= self.DELAY]
        self.assertEqual(slow, [], "clients waited for the upstream (a miss, not a prefetch)")
        figure("prefetch: slowest of %d client queries across two TTLs" % len(seen),
               "%.1f ms" % (max(lat for _, _, lat in seen) * 1000))


if __name__ == "__main__":
    harness.main()
