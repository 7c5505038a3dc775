"""ANY and amplification (reliability.md S7; RFC 8482; SEMANTICS.md rules 16 and 27).

ANY for a forwarded name with several RRsets gets one RRset; ANY for a mesh name gets every
A and AAAA. Over UDP no answer is larger than the client's advertised size (512 without
EDNS, never under 512) nor 1232. The largest response/query byte ratio is reported.
"""

import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.rrset

import harness
import zones
from harness import DnsTestCase
from relutil import figure, mesh_file

MESH_HOST = "reviews.default.cluster-2"
MESH_V4 = ["240.0.0.%d" % i for i in range(10, 18)]
MESH_V6 = ["2001:db8:240::%x" % i for i in range(16, 24)]


class Amplification(DnsTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_unbound({"example.test.": zones.example_zone("upstream")})

    def setUp(self):
        se = mesh_file(self.tmp() + "/se.json", {MESH_HOST: MESH_V4 + MESH_V6})
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                                    "--serviceentries", se)
        harness.wait_until(lambda: harness.query(self.m.port, MESH_HOST, "A").answer, 5,
                           "the mesh table")

    def udp(self, name, qtype, edns=None):
        q = harness.make_query(name, qtype, edns=edns)
        wire = q.to_wire()
        resp = harness.udp_exchange(self.m.port, wire, timeout=5)
        self.assertIsNotNone(resp, (name, qtype, edns))
        return len(wire), resp, dns.message.from_wire(resp)

    def test_s7_any_of_a_forwarded_name_is_one_rrset(self):
        direct = harness.query(self.up.port, "www.example.test", "ANY", edns=1232)
        upstream_types = {rr.rdtype for rr in direct.answer}
        self.assertGreaterEqual(len(upstream_types), 2, "unbound gives two RRsets (A, AAAA)")
        for attempt in ("fresh", "cached"):
            for tcp in (False, True):
                r = harness.query(self.m.port, "www.example.test", "ANY", edns=1232, tcp=tcp)
                types = [dns.rdatatype.to_text(rr.rdtype) for rr in r.answer]
                self.assertEqual(len(types), 1, "%s, tcp=%s: RFC 8482 wants one RRset, got %s"
                                 % (attempt, tcp, r.to_text()))
        figure("ANY www.example.test: upstream RRsets -> agent RRsets",
               "%d -> 1 (%s)" % (len(upstream_types), types[0]))

    def test_s7_any_with_every_rrset_from_the_upstream_is_cut_to_one(self):
        def every_rrset(q):  # an upstream that answers ANY in full (A, AAAA, TXT)
            if q.msg is None:
                return
            resp = dns.message.make_response(q.msg)
            node = q.server.zones[dns.name.from_text("example.test.")].get_node(q.qname)
            for rds in node.rdatasets:
                resp.answer.append(dns.rrset.from_rdata_list(q.qname, rds.ttl, list(rds)))
            q.send(resp)
        fake = self.start_fake(handler=every_rrset)
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % fake.port)
        r = harness.query(m.port, "www.example.test", "ANY", edns=1232)
        self.assertEqual(len(r.answer), 1, r.to_text())
        direct = harness.query(fake.port, "www.example.test", "ANY")
        self.assertEqual(len(direct.answer), 3, "the fake sent A, AAAA and TXT")

    def test_s7_any_of_a_mesh_name_is_every_address(self):
        r = harness.query(self.m.port, MESH_HOST, "ANY", edns=1232)
        self.assertEqual(harness.rrs(r), {(MESH_HOST + ".", "A"): sorted(MESH_V4),
                                          (MESH_HOST + ".", "AAAA"): sorted(MESH_V6)})

    def test_s7_udp_answers_fit_the_clients_size_and_1232(self):
        asks = [("big.example.test", "TXT"), ("medium.example.test", "TXT"),
                ("manya.example.test", "A"), ("www.example.test", "ANY"),
                ("example.test", "ANY"), (MESH_HOST, "ANY"), (MESH_HOST, "AAAA"),
                ("www.example.test", "TXT")]
        sizes = [None, 100, 512, 700, 1232, 4096, 65535]
        worst = (0.0, None)
        worst_any = (0.0, None)
        for name, qtype in asks:
            for edns in sizes:
                qlen, wire, r = self.udp(name, qtype, edns)
                limit = 512 if edns is None else min(max(edns, 512), 1232)
                self.assertLessEqual(len(wire), limit, "%s %s with EDNS %s: %d bytes"
                                     % (name, qtype, edns, len(wire)))
                ratio = len(wire) / qlen
                what = "%s %s EDNS %s: %d/%d bytes" % (name, qtype, edns, len(wire), qlen)
                if ratio > worst[0]:
                    worst = (ratio, what)
                if qtype == "ANY" and ratio > worst_any[0]:
                    worst_any = (ratio, what)
        figure("largest UDP response/query ratio", "%.1f (%s)" % worst)
        figure("largest UDP response/query ratio for ANY", "%.1f (%s)" % worst_any)

    def test_s7_truncated_answers_keep_whole_rrsets(self):
        _, wire, r = self.udp("manya.example.test", "A")
        self.assertTrue(r.flags & dns.flags.TC)
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.A:
                self.assertEqual(len(rrset), 40, "a partial RRset: %s" % r.to_text())


if __name__ == "__main__":
    harness.main()
