"""The cache (SEMANTICS.md section 7, rules 33-35), seen from a client.

A fake upstream counts the queries that reach it: a cache hit is a reply whose question
never arrived there. TTL expiry is observed on the wall clock with short TTLs (the agent
counts whole seconds of CLOCK_MONOTONIC_COARSE, so every wait below has at least a second
of margin).
"""

import time

import dns.message
import dns.rcode
import dns.rrset

import harness
import zones
from harness import DnsTestCase, answer_data


def ttls(reply, section="answer"):
    return [rr["ttl"] for rr in reply.get(section, [])]


def zone_with_soa(origin, soa_ttl, soa_min, body=""):
    return ("$ORIGIN %s\n@ %d IN SOA ns.%s hostmaster.%s 1 7200 1800 86400 %d\n"
            "@ 300 IN NS ns.%s\nns 300 IN A 192.0.2.53\nwww 300 IN A 192.0.2.1\n%s"
            % (origin, soa_ttl, origin, origin, soa_min, origin, body))


class PositiveCache(DnsTestCase):

    def setUp(self):
        self.up = self.start_fake()
        self.kube = self.start_fake(zones.zones_for("kube"))
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                                    "--cluster-dns", "127.0.0.1:%d" % self.kube.port,
                                    "--max-ttl", "3600")

    def test_rule33_repeat_is_answered_from_cache(self):
        first = self.m.dnsq("www.example.test", "A")
        second = self.m.dnsq("www.example.test", "A")
        self.assertEqual(answer_data(first, "A"), [zones.WWW_IP])
        self.assertEqual(answer_data(second, "A"), [zones.WWW_IP])
        self.assertEqual(self.up.count("www.example.test"), 1)

    def test_rule33_repeat_over_tcp_is_a_hit_too(self):
        self.m.dnsq("www.example.test", "A")
        r = self.m.dnsq("www.example.test", "A", "--tcp")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP])
        self.assertEqual(self.up.count("www.example.test"), 1)

    def test_rule34_ttl_counts_down_between_hits(self):
        first = self.m.dnsq("www.example.test", "A")
        self.assertEqual(ttls(first), [300])
        time.sleep(2.2)
        second = self.m.dnsq("www.example.test", "A")
        self.assertEqual(self.up.count("www.example.test"), 1)
        (t,) = ttls(second)
        self.assertTrue(295 <= t <= 298, "TTL %d after 2.2 s of 300" % t)

    def test_rule34_cluster_domain_ttl_capped_at_30(self):
        # kubernetes.default.svc.cluster.local has TTL 3600 at kube-dns
        r = self.m.dnsq("kubernetes.default.svc.cluster.local", "A")
        self.assertEqual(ttls(r), [30], r)
        time.sleep(1.2)
        r = self.m.dnsq("kubernetes.default.svc.cluster.local", "A")
        self.assertEqual(self.kube.count("kubernetes.default.svc.cluster.local"), 1)
        (t,) = ttls(r)
        self.assertTrue(27 <= t <= 29, "TTL %d: the cached entry must count down from 30" % t)

    def test_rule34_reverse_zone_ttl_capped_at_30(self):
        for name in (zones.PTR4_NAME, zones.PTR6_NAME):  # TTL 3600 at kube-dns
            r = self.m.dnsq(name, "PTR")
            self.assertEqual(answer_data(r, "PTR"), [zones.PTR_KUBE], r)
            self.assertEqual(ttls(r), [30], r)

    def test_rule34_ttl_zero_is_not_cached(self):
        for _ in range(3):
            r = self.m.dnsq("zero.example.test", "A")
            self.assertEqual(answer_data(r, "A"), ["192.0.2.200"])
            self.assertEqual(ttls(r), [0])
        self.assertEqual(self.up.count("zero.example.test"), 3)

    def test_rule34_smallest_ttl_of_the_answer_is_the_lifetime(self):
        # shortalias (CNAME, TTL 300) -> short (A, TTL 2)
        r = self.m.dnsq("shortalias.example.test", "A")
        self.assertEqual(ttls(r), [300, 2], r)
        self.m.dnsq("shortalias.example.test", "A")
        self.assertEqual(self.up.count("shortalias.example.test"), 1)
        time.sleep(3.2)
        r = self.m.dnsq("shortalias.example.test", "A")
        self.assertEqual(answer_data(r, "A"), ["192.0.2.2"])
        self.assertEqual(self.up.count("shortalias.example.test"), 2, "expired after 2 s")

    def test_rule33_case_changed_repeat_is_a_hit_with_the_new_case(self):
        self.m.dnsq("www.example.test", "A")
        r = self.m.dnsq("WwW.eXaMpLe.TeSt", "A")
        self.assertEqual(self.up.count("www.example.test"), 1)
        self.assertEqual(r["question"][0]["name"], "WwW.eXaMpLe.TeSt.")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP])
        # the question bytes exactly as sent
        self.assertIn(b"\x03WwW\x07eXaMpLe\x04TeSt\x00", bytes.fromhex(r["raw"])[:40])

    def test_rule33_do_and_cd_are_cached_separately(self):
        variants = [(), ("--do",), ("--cd",), ("--do", "--cd")]
        for i, opts in enumerate(variants):
            r = self.m.dnsq("www.example.test", "A", *opts)
            self.assertEqual(answer_data(r, "A"), [zones.WWW_IP], (opts, r))
            self.assertEqual(self.up.count("www.example.test"), i + 1,
                             "%s must miss: DO and CD are part of the key" % (opts,))
        for opts in variants:
            self.m.dnsq("www.example.test", "A", *opts)
        self.assertEqual(self.up.count("www.example.test"), 4, "each variant is a hit now")
        seen = [(q.do, q.cd) for q in self.up.received("www.example.test")]
        self.assertEqual(seen, [(False, False), (True, False), (False, True), (True, True)],
                         "rule 32: DO and CD go upstream as the client sent them")

    def test_rule33_edns_size_does_not_split_the_cache(self):
        self.m.dnsq("www.example.test", "A")
        self.m.dnsq("www.example.test", "A", "--edns", "1232")
        self.m.dnsq("www.example.test", "A", "--edns", "4096")
        self.assertEqual(self.up.count("www.example.test"), 1)

    def test_rule35_servfail_is_not_cached(self):
        def servfail(q):
            resp = dns.message.make_response(q.msg)
            resp.set_rcode(dns.rcode.SERVFAIL)
            q.send(resp)
        self.up.handler = servfail
        for _ in range(2):
            self.assertRcode(self.m.dnsq("www.example.test", "A"), "SERVFAIL")
        self.assertEqual(self.up.count("www.example.test"), 2)


class TtlFlags(DnsTestCase):
    """--max-ttl and --neg-ttl cap names outside the cluster domain."""

    def test_rule34_max_ttl_caps_and_expires(self):
        up = self.start_fake()
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port, "--max-ttl", "2")
        r = m.dnsq("long.example.test", "A")  # TTL 86400 upstream
        self.assertEqual(ttls(r), [2])
        m.dnsq("long.example.test", "A")
        self.assertEqual(up.count("long.example.test"), 1)
        time.sleep(3.2)
        m.dnsq("long.example.test", "A")
        self.assertEqual(up.count("long.example.test"), 2, "--max-ttl 2: gone after 3 s")

    def test_rule35_neg_ttl_caps_and_expires(self):
        up = self.start_fake()
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port, "--neg-ttl", "2")
        r = m.dnsq("nosuch.example.test", "A")  # SOA MINIMUM 30 upstream
        self.assertRcode(r, "NXDOMAIN")
        self.assertEqual(ttls(r, "authority"), [2])
        m.dnsq("nosuch.example.test", "A")
        self.assertEqual(up.count("nosuch.example.test"), 1)
        time.sleep(3.2)
        m.dnsq("nosuch.example.test", "A")
        self.assertEqual(up.count("nosuch.example.test"), 2, "--neg-ttl 2: gone after 3 s")

    def test_rule34_max_ttl_does_not_lift_the_cluster_cap(self):
        up = self.start_fake()
        kube = self.start_fake(zones.zones_for("kube"))
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port, "--cluster-dns",
                               "127.0.0.1:%d" % kube.port, "--max-ttl", "86400",
                               "--neg-ttl", "86400")
        r = m.dnsq("kubernetes.default.svc.cluster.local", "A")
        self.assertEqual(ttls(r), [30])
        r = m.dnsq("nosuch.default.svc.cluster.local", "A")
        self.assertEqual(ttls(r, "authority"), [5])


class NegativeCache(DnsTestCase):
    """Rule 35: NXDOMAIN and NODATA cached for min(SOA TTL, MINIMUM), capped; not without
    an SOA."""

    def setUp(self):
        self.up = self.start_fake({
            "ttl-low.test.": zone_with_soa("ttl-low.test.", 3, 3600),
            "min-low.test.": zone_with_soa("min-low.test.", 3600, 2),
            "example.test.": zones.example_zone("upstream")})
        self.kube = self.start_fake(zones.zones_for("kube"))
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                                    "--cluster-dns", "127.0.0.1:%d" % self.kube.port)

    def test_rule35_nxdomain_ttl_is_min_of_soa_ttl_and_minimum(self):
        r = self.m.dnsq("nosuch.example.test", "A")  # SOA TTL 300, MINIMUM 30
        self.assertRcode(r, "NXDOMAIN")
        self.assertEqual([rr["type"] for rr in r["authority"]], ["SOA"])
        self.assertEqual(ttls(r, "authority"), [30])
        r = self.m.dnsq("nosuch.example.test", "A")
        self.assertRcode(r, "NXDOMAIN")
        self.assertEqual(self.up.count("nosuch.example.test"), 1)

    def test_rule33_negative_ttl_counts_down_between_hits(self):
        r = self.m.dnsq("nosuch.example.test", "A")
        self.assertEqual(ttls(r, "authority"), [30])
        time.sleep(2.2)
        r = self.m.dnsq("nosuch.example.test", "A")
        self.assertEqual(self.up.count("nosuch.example.test"), 1)
        (t,) = ttls(r, "authority")
        self.assertTrue(25 <= t <= 28, "SOA TTL %d after 2.2 s of 30" % t)

    def test_rule35_negative_lifetime_follows_the_smaller_soa_field(self):
        cases = [("a.ttl-low.test", 3), ("b.min-low.test", 2)]
        t0 = time.monotonic()
        for name, want in cases:
            r = self.m.dnsq(name, "A")
            self.assertRcode(r, "NXDOMAIN")
            self.assertEqual(ttls(r, "authority"), [want], name)
            self.m.dnsq(name, "A")
            self.assertEqual(self.up.count(name), 1, name + " must be cached")
        time.sleep(max(0.0, 4.2 - (time.monotonic() - t0)))
        for name, _ in cases:
            self.assertRcode(self.m.dnsq(name, "A"), "NXDOMAIN")
            self.assertEqual(self.up.count(name), 2, name + " must have expired")

    def test_rule35_nodata_is_cached(self):
        r = self.m.dnsq("www.example.test", "MX")  # www has A, AAAA, TXT only
        self.assertRcode(r, "NOERROR")
        self.assertEqual(r["answer"], [])
        self.assertEqual(ttls(r, "authority"), [30])
        self.m.dnsq("www.example.test", "MX")
        self.assertEqual(self.up.count("www.example.test", "MX"), 1)

    def test_rule35_nxdomain_and_nodata_of_one_name_do_not_mix(self):
        self.assertRcode(self.m.dnsq("www.example.test", "MX"), "NOERROR")
        self.assertRcode(self.m.dnsq("www.example.test", "A"), "NOERROR")
        self.assertEqual(answer_data(self.m.dnsq("www.example.test", "A")), [zones.WWW_IP])
        self.assertRcode(self.m.dnsq("nosuch.example.test", "MX"), "NXDOMAIN")

    def test_rule35_cluster_negative_ttl_capped_at_5(self):
        name = "nosuch.default.svc.cluster.local"  # SOA TTL 60, MINIMUM 20
        r = self.m.dnsq(name, "A")
        t0 = time.monotonic()
        self.assertRcode(r, "NXDOMAIN")
        self.assertEqual(ttls(r, "authority"), [5])
        self.m.dnsq(name, "A")
        self.assertEqual(self.kube.count(name), 1)
        time.sleep(max(0.0, 6.2 - (time.monotonic() - t0)))
        self.m.dnsq(name, "A")
        self.assertEqual(self.kube.count(name), 2, "negative cluster answers live 5 s")

    def test_rule35_reverse_zone_negative_ttl_capped_at_5(self):
        r = self.m.dnsq("99.0.96.10.in-addr.arpa", "PTR")
        self.assertRcode(r, "NXDOMAIN")
        self.assertEqual(ttls(r, "authority"), [5])

    def test_rule35_negative_without_soa_is_not_cached(self):
        def no_soa(q):
            resp = q.answer()
            resp.authority = []
            q.send(resp)
        self.up.handler = no_soa
        for _ in range(2):
            self.assertRcode(self.m.dnsq("nosuch.example.test", "A"), "NXDOMAIN")
            self.assertRcode(self.m.dnsq("www.example.test", "MX"), "NOERROR")
        self.assertEqual(self.up.count("nosuch.example.test"), 2, "NXDOMAIN without SOA")
        self.assertEqual(self.up.count("www.example.test", "MX"), 2, "NODATA without SOA")


class CacheBound(DnsTestCase):
    """Rule 36: the cache is bounded in bytes; when full the least recently used go."""

    def test_rule36_small_cache_evicts_cold_entries_and_keeps_hot_ones(self):
        up = self.start_fake()
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port, "--cache-size", "64k")
        n = 2000  # about 200 kB of negative answers: three times the cache
        for i in range(n):
            if i % 50 == 0:
                r = harness.query(m.port, "www.example.test", "A", timeout=3)  # hot
                self.assertIsNotNone(r)
            r = harness.query(m.port, "c%d.example.test" % i, "A", timeout=3)
            self.assertIsNotNone(r, "query %d timed out" % i)
        self.assertAlive(m)
        self.assertEqual(up.count("www.example.test"), 1, "the hot name was evicted")
        for i in range(20):
            harness.query(m.port, "c%d.example.test" % i, "A", timeout=3)
        evicted = sum(1 for i in range(20) if up.count("c%d.example.test" % i) == 2)
        self.assertGreaterEqual(evicted, 18, "the oldest names must have been evicted")
        for i in range(n - 10, n):
            harness.query(m.port, "c%d.example.test" % i, "A", timeout=3)
        kept = sum(1 for i in range(n - 10, n) if up.count("c%d.example.test" % i) == 1)
        self.assertGreaterEqual(kept, 8, "the newest names must still be cached")


if __name__ == "__main__":
    harness.main()
