"""Truncation both ways (SEMANTICS.md rules 27, 28 and 31).

Towards the client: a UDP answer larger than the client's limit (512 without EDNS, else
its advertised size up to 1232) comes back cut to whole RRsets with TC=1, and TCP gives all
of it. From the upstream: TC=1 over UDP (from the fake upstream, or from a real unbound
with a small max-udp-size) makes the agent ask again over TCP, and the client gets the
whole answer.
"""

import subprocess

import dns.flags
import dns.message

import harness
import zones
from harness import DnsTestCase, answer_data
from relutil import mesh_file

MEDIUM = "medium.example.test"  # 12 TXT, about 900 bytes
BIG = "big.example.test"        # 40 TXT, about 3.6 kB
MANYA = "manya.example.test"    # CNAME + 40 A, about 750 bytes


def rrsets(reply, section="answer"):
    out = {}
    for rr in reply.get(section, []):
        out.setdefault((rr["name"].lower(), rr["type"]), []).append(rr["rdata"])
    return {k: sorted(v) for k, v in out.items()}


class TruncationTowardsClient(DnsTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_unbound(zones.zones_for("upstream"), name="upstream")

    def setUp(self):
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port)

    def assert_whole_rrsets(self, cut, full):
        """Every RRset in @cut's answer and authority is complete compared with @full."""
        for section in ("answer", "authority"):
            whole = rrsets(full, section)
            for key, data in rrsets(cut, section).items():
                self.assertIn(key, whole, "%s: RRset %s not in the full answer" % (section, key))
                self.assertEqual(data, whole[key], "%s: RRset %s cut in the middle"
                                 % (section, key))

    def check(self, name, qtype, udp_opts, limit, tc_expected=True):
        full = self.m.dnsq(name, qtype, "--tcp")
        self.assertRcode(full, "NOERROR")
        self.assertNotIn("tc", full["flags"])
        cut = self.m.dnsq(name, qtype, *udp_opts)
        self.assertRcode(cut, "NOERROR")
        self.assertLessEqual(cut["size"], limit, "UDP reply over the client's limit")
        if tc_expected:
            self.assertIn("tc", cut["flags"])
        self.assert_whole_rrsets(cut, full)
        return cut, full

    def test_rule27_no_edns_answer_over_512_gets_tc_and_tcp_gets_all(self):
        cut, full = self.check(MEDIUM, "TXT", (), 512)
        self.assertEqual(len(full["answer"]), 12)
        self.assertLess(len(cut["answer"]), 12)

    def test_rule27_edns_1232_takes_the_medium_answer_whole(self):
        r = self.m.dnsq(MEDIUM, "TXT", "--edns", "1232")
        self.assertNotIn("tc", r["flags"])
        self.assertEqual(len(r["answer"]), 12)
        self.assertLessEqual(r["size"], 1232)

    def test_rule27_edns_bufsize_is_the_limit(self):
        cut, _ = self.check(MEDIUM, "TXT", ("--edns", "700"), 700)
        self.assertIsNotNone(cut["edns"], "a query with OPT gets OPT, truncated or not")

    def test_rule27_edns_bufsize_below_512_counts_as_512(self):
        self.check(MEDIUM, "TXT", ("--edns", "100"), 512)
        r = self.m.dnsq("www.example.test", "A", "--edns", "100")
        self.assertNotIn("tc", r["flags"], "a small answer fits 512 whatever the client says")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP])

    def test_rule27_edns_bufsize_above_1232_counts_as_1232(self):
        # big is 3.6 kB: over UDP the agent never sends more than 1232 bytes
        cut, full = self.check(BIG, "TXT", ("--edns", "4096"), 1232)
        self.assertEqual(len(full["answer"]), 40)

    def test_rule27_cname_kept_and_address_rrset_not_split(self):
        cut, full = self.check(MANYA, "A", (), 512)
        self.assertEqual(len(full["answer"]), 41)
        kinds = {rr["type"] for rr in cut["answer"]}
        self.assertEqual(kinds, {"CNAME"}, "the 40 A records do not fit 512: none may be sent")

    def test_rule27_cached_answer_is_truncated_the_same_way(self):
        self.m.dnsq(MEDIUM, "TXT", "--tcp")  # fills the cache
        before = self.up.count(MEDIUM)
        cut, full = self.check(MEDIUM, "TXT", (), 512)
        self.assertEqual(self.up.count(MEDIUM), before, "both from the cache")
        self.assertEqual(len(full["answer"]), 12)

    def test_rule27_truncated_reply_is_not_cached_as_the_answer(self):
        self.m.dnsq(MEDIUM, "TXT")  # over UDP without EDNS: TC
        r = self.m.dnsq(MEDIUM, "TXT", "--tcp")
        self.assertEqual(len(r["answer"]), 12)
        r = self.m.dnsq(MEDIUM, "TXT", "--edns", "1232")
        self.assertEqual(len(r["answer"]), 12)
        self.assertNotIn("tc", r["flags"])

    def test_rule27_kdig_falls_back_to_tcp_and_gets_everything(self):
        out = harness.subprocess.run(
            ["kdig", "-p", str(self.m.port), "@127.0.0.1", "+noedns", "+ignore", MEDIUM,
             "TXT"], capture_output=True, text=True, timeout=20)
        self.assertIn("TC", out.stdout)
        out = harness.subprocess.run(
            ["dig", "-p", str(self.m.port), "@127.0.0.1", "+noedns", "+short", MEDIUM, "TXT"],
            capture_output=True, text=True, timeout=20)
        self.assertEqual(len(out.stdout.strip().splitlines()), 12, out.stdout)


class UpstreamTruncation(DnsTestCase):
    """Rule 31: TC=1 from the upstream over UDP -> the same question over TCP."""

    def test_rule31_fake_upstream_tc_over_udp_retried_over_tcp(self):
        def tc_over_udp(q):
            resp = q.answer()
            if q.proto == "udp":
                short = dns.message.make_response(q.msg)
                short.flags |= dns.flags.TC
                q.send(short)
            else:
                q.send(resp)
        up = self.start_fake(handler=tc_over_udp)
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port)
        r = m.dnsq("www.example.test", "A")
        self.assertRcode(r, "NOERROR")
        self.assertNotIn("tc", r["flags"], "the small answer fits the client")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP])
        self.assertEqual([q.proto for q in up.received("www.example.test")], ["udp", "tcp"])

    def test_rule31_answer_over_1232_fetched_over_tcp(self):
        up = self.start_fake()  # truncates like a real server at the agent's 1232
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port)
        r = m.dnsq(BIG, "TXT", "--tcp")
        self.assertEqual(len(r["answer"]), 40)
        self.assertEqual([q.proto for q in up.received(BIG)], ["udp", "tcp"])
        r = m.dnsq(BIG, "TXT", "--edns", "1232")  # from the cache, cut for UDP
        self.assertIn("tc", r["flags"])
        self.assertLessEqual(r["size"], 1232)

    def test_rule31_oversized_udp_reply_is_not_trusted(self):
        """B7 (d): an upstream that sends 3.6 kB over UDP (no OPT, no TC) ignores the
        agent's 1232: the agent asks over TCP rather than take it."""
        def oversize(q):
            resp = q.answer()
            resp.use_edns(False)
            q.send(resp)
        up = self.start_fake(handler=oversize)
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port)
        r = m.dnsq(BIG, "TXT", "--tcp")
        self.assertRcode(r, "NOERROR")
        self.assertEqual(len(r["answer"]), 40)
        self.assertEqual([q.proto for q in up.received(BIG)], ["udp", "tcp"])
        self.assertAlive(m)

    def test_rule31_real_unbound_with_small_max_udp_size(self):
        up = self.start_unbound({"example.test.": zones.example_zone("upstream")},
                                name="small-udp", extra="  max-udp-size: 512\n")
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port)
        r = m.dnsq(MEDIUM, "TXT", "--edns", "1232")
        self.assertRcode(r, "NOERROR")
        self.assertNotIn("tc", r["flags"])
        self.assertEqual(len(r["answer"]), 12)
        self.assertEqual(up.count(MEDIUM), 2, "a UDP query, then the TCP retry")

    def test_rule31_tc_over_tcp_fails_over_to_the_next_server(self):
        def always_tc(q):
            short = dns.message.make_response(q.msg)
            short.flags |= dns.flags.TC
            q.send(short)
        bad = self.start_fake(handler=always_tc)
        good = self.start_fake()
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % bad.port,
                               "--upstream", "127.0.0.1:%d" % good.port)
        r = m.dnsq("www.example.test", "A")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP])
        self.assertEqual(good.count("www.example.test"), 1)

    def test_rules27_30_coalesced_clients_each_get_their_own_size(self):
        up = self.start_fake()
        up.delay = 0.8
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port,
                               "--upstream-timeout", "3000")
        variants = {"udp512": (), "udp1232": ("--edns", "1232"), "tcp": ("--tcp",)}
        keys = sorted(variants)
        results = dict(zip(keys, harness.concurrently(
            lambda k: m.dnsq(MEDIUM, "TXT", *variants[k], timeout_ms=5000), keys)))
        self.assertEqual(up.count(MEDIUM), 1, "the three shared one upstream query")
        self.assertIn("tc", results["udp512"]["flags"])
        self.assertLessEqual(results["udp512"]["size"], 512)
        for key in ("udp1232", "tcp"):
            self.assertNotIn("tc", results[key]["flags"], key)
            self.assertEqual(len(results[key]["answer"]), 12, key)


class TruncationForTheLinkMtu(DnsTestCase):
    """RFC 9715: the agent sends UDP with DF and never as fragments (which can be forged
    without knowing the ID). A reply within the client's EDNS limit but larger than the MTU
    of the link towards the client cannot leave whole: it goes as TC=1 (header, question,
    OPT), and the client asks again over TCP. Two network namespaces joined by a veth pair
    with an MTU of 1000: the agent in one, the client in the other."""

    HOST = "big.default.cluster-9"
    ADDRS = ["240.0.%d.%d" % (i // 200, i % 200 + 1) for i in range(60)]  # ~1,050 bytes

    def setUp(self):
        self.a, self.b = harness.netns(self, "mdmtu-a"), harness.netns(self, "mdmtu-b")
        subprocess.run(["ip", "-n", self.a, "link", "add", "va", "mtu", "1000", "type", "veth",
                        "peer", "name", "vb", "netns", self.b], check=True)
        for ns, dev, addr in ((self.a, "va", "10.77.0.1/24"), (self.b, "vb", "10.77.0.2/24")):
            subprocess.run(["ip", "-n", ns, "addr", "add", addr, "dev", dev], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
        se = mesh_file(self.tmp() + "/se.json", {self.HOST: self.ADDRS})
        self.m = self.start_meshdns("--listen", "10.77.0.1:53", "--upstream", "127.0.0.1:53",
                                    "--serviceentries", se, "--metrics", "127.0.0.1:9253",
                                    wrap=["ip", "netns", "exec", self.a], listen=False,
                                    ready=False)
        harness.wait_until(lambda: not self.m.alive() or "status: NOERROR" in self.kdig("+tcp"),
                           20, "meshdns in %s" % self.a)
        self.assertAlive(self.m)

    def kdig(self, *opts):
        out = subprocess.run(["ip", "netns", "exec", self.b, "kdig", "@10.77.0.1",
                              "+timeout=2", "+retry=0", "+bufsize=1232"] + list(opts)
                             + [self.HOST, "A"], capture_output=True, text=True, timeout=30)
        return out.stdout

    def metric(self, name):
        out = subprocess.run(["ip", "netns", "exec", self.a, "curl", "-s",
                              "http://127.0.0.1:9253/metrics"], capture_output=True, text=True,
                             timeout=10).stdout
        for line in out.splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
        return None

    def test_reply_over_the_link_mtu_is_tc_over_udp_and_whole_over_tcp(self):
        udp = self.kdig("+notcp", "+ignore")
        self.assertIn("status: NOERROR", udp)
        self.assertRegex(udp, r"Flags: [^;]*\btc\b", "TC=1 over UDP")
        self.assertIn("ANSWER: 0", udp, "only header, question and OPT")
        self.assertIn("EDNS", udp, "the OPT RR is kept")
        self.assertEqual(self.metric("meshdns_truncated_for_mtu_total"), 1)
        full = self.kdig()  # kdig asks again over TCP on TC=1
        self.assertIn("ANSWER: %d" % len(self.ADDRS), full)
        for addr in self.ADDRS:
            self.assertIn(addr, full)
        self.assertEqual(self.metric("meshdns_dropped_total{reason=\"send_failed\"}"), 0)
        self.assertAlive(self.m)


if __name__ == "__main__":
    harness.main()
