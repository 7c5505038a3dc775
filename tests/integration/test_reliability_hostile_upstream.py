"""Hostile upstreams (reliability.md B7, S5; SEMANTICS.md rules 29, 31, 28).

B7: for each outstanding query the fake upstream first sends, on the query's own socket, a
malformed packet, a reply to another question, a reply with another ID, a forgery from
another source port, and (in two variants) a well-formed matching reply over 1232 bytes that
the agent must take as truncation and retry over TCP (one also over 2,048 bytes, longer
than the buffers io_uring reads upstream replies into); then the valid answer. The client
always gets the valid answer. An upstream that sends garbage forever costs one SERVFAIL
within the timeouts, and other names keep being answered.

S5: records the external upstream adds for cluster names, mesh names and unrelated names,
in any section, are never served, neither with the answer they came in nor later.
"""

import struct
import threading
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rrset

import harness
import zones
from fakeupstream import default_handler
from harness import DnsTestCase
from relutil import ede_codes, figure, mesh_file

N = 20
ZONE = ("$ORIGIN example.test.\n@ 300 IN SOA ns.example.test. h.example.test. 1 1 1 1 30\n"
        "@ 300 IN NS ns.example.test.\nns 300 IN A 192.0.2.53\n"
        + "".join("h%d 300 IN A 192.0.2.%d\n" % (i, 100 + i) for i in range(N)))
EVIL = "6.6.6.6"


def valid_ip(name):
    return "192.0.2.%d" % (100 + int(name.split(".")[0][1:]))


def forged(q, qname=None, qid=None, ip=EVIL, count=1):
    """A reply with @count A records for @qname (default the query's name)."""
    fake_q = dns.message.make_query(qname or q.qname, "A")
    resp = dns.message.make_response(fake_q)
    resp.id = q.id if qid is None else qid
    resp.flags |= dns.flags.AA
    rr = dns.rrset.RRset(dns.name.from_text(qname or q.qname), 1, 1)
    for i in range(count):
        rr.add(dns.rdata.from_text(1, 1, ip if count == 1 else "198.18.%d.%d"
                                   % (i // 250, i % 250 + 1)), 300)
    resp.answer.append(rr)
    return resp


def oversized(q, count):
    """Well formed, right ID and question, the valid address among @count others: over 1232
    bytes, so it may only be read as truncated."""
    resp = forged(q, count=count)
    resp.answer[0].add(dns.rdata.from_text(1, 1, valid_ip(q.qname)))
    wire = resp.to_wire(max_size=65535)
    assert len(wire) > 1232, len(wire)
    return wire


def hostile_then_valid(oversize):
    def handler(q):
        if q.msg is None:
            return
        if q.proto == "udp":
            q.send(struct.pack("!H", q.id) + b"\x81\x80\x00\x01\x00\x01" + b"\xff" * 30)
            q.send(forged(q, qname="evil.example.test."))
            q.send(forged(q, qid=(q.id + 1) & 0xffff))
            q.send_from_other_port(forged(q))
            if oversize:
                q.send(oversized(q, oversize))
            q.send_later(q.answer(), 0.05)
        else:
            q.send(q.answer())
    return handler


class HostileReplies(DnsTestCase):

    def check(self, oversize):
        up = self.start_fake({"example.test.": ZONE}, handler=hostile_then_valid(oversize))
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port,
                               "--upstream-timeout", "2000")
        names = ["h%d.example.test" % i for i in range(N)]
        for name in names:
            r = harness.query(m.port, name, "A", edns=1232, timeout=5)
            self.assertIsNotNone(r, name)
            self.assertEqual(harness.rrs(r), {(name + ".", "A"): [valid_ip(name)]}, r.to_text())
        for name in names:  # and the cache holds the valid answer
            r = harness.query(m.port, name, "A")
            self.assertEqual(harness.rrs(r), {(name + ".", "A"): [valid_ip(name)]}, r.to_text())
        self.assertEqual(up.count(proto="udp"), N, "one UDP query per name")
        self.assertEqual(up.count(proto="tcp"), N if oversize else 0,
                         "an oversized UDP reply leads to a TCP retry")
        self.assertAlive(m)

    def test_b7_malformed_wrong_question_wrong_id_forged_port_then_valid(self):
        self.check(0)

    def test_b7_oversized_udp_reply_is_truncation_and_tcp_gives_the_valid(self):
        self.check(120)  # about 1,960 bytes

    def test_b7_udp_reply_over_2048_bytes_is_truncation_too(self):
        # longer than a ring buffer: io_uring reads only its head, which must still be
        # recognised as the answer, cut, and lead to TCP
        self.check(250)  # about 4,000 bytes

    def test_b7_garbage_forever_servfail_in_time_and_others_served(self):
        stop = threading.Event()
        self.addCleanup(stop.set)

        def garbage_forever(q):
            def spray():
                end = time.monotonic() + 8  # bounded
                i = 0
                while not stop.is_set() and time.monotonic() < end:
                    i += 1
                    q.send(struct.pack("!HH", q.id, 0x8180) + bytes([i & 0xff]) * (i % 90))
                    time.sleep(0.002)
            if q.proto == "udp":
                threading.Thread(target=spray, daemon=True).start()
        up = self.start_fake({"example.test.": ZONE}, handler=garbage_forever)
        kube = self.start_fake(zones.zones_for("kube"))
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port, "--cluster-dns",
                               "127.0.0.1:%d" % kube.port, "--upstream-timeout", "500")
        t0 = time.monotonic()
        r = harness.query(m.port, "h1.example.test", "A", edns=1232, timeout=10)
        elapsed = time.monotonic() - t0
        figure("garbage-spraying upstream (timeout 0.5 s): SERVFAIL after", "%.2f s" % elapsed)
        self.assertIsNotNone(r, "no answer while the upstream sprays garbage")
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL, r.to_text())
        self.assertTrue(ede_codes(r), r.to_text())
        self.assertLess(elapsed, 0.5 + 3.0, "the per-try timeout is honoured")
        # while sockets still receive garbage: other names from the cluster DNS
        t0 = time.monotonic()
        threading.Thread(target=harness.query, args=(m.port, "h2.example.test", "A"),
                         kwargs={"timeout": 5}, daemon=True).start()
        for i in range(20):
            r = harness.query(m.port, "n%d.default.svc.cluster.local" % i, "A", timeout=2)
            self.assertIsNotNone(r, "cluster name %d unanswered during the garbage" % i)
            self.assertEqual(r.rcode(), dns.rcode.NXDOMAIN)
        r = harness.query(m.port, "kube-dns.kube-system.svc.cluster.local", "A")
        self.assertEqual(harness.rrs(r), {("kube-dns.kube-system.svc.cluster.local.", "A"):
                                          [zones.KUBE_DNS_IP]})
        self.assertAlive(m)


# ---- bailiwick -----------------------------------------------------------------------------

KUBE = "kube-dns.kube-system.svc.cluster.local."
MESH_HOST = "reviews.default.cluster-2."
MESH_IP = "240.0.0.10"
OTHER = "www.other.test."
OTHER_IP = "192.0.2.33"
OTHER_ZONE = ("$ORIGIN other.test.\n@ 300 IN SOA ns.other.test. h.other.test. 1 1 1 1 30\n"
              "www 300 IN A %s\n" % OTHER_IP)
POISON = {KUBE: "6.6.6.1", MESH_HOST: "6.6.6.2", OTHER: "6.6.6.3", "ns.evil.test.": "6.6.6.4"}


def rr(owner, rtype, data, ttl=300):
    return dns.rrset.from_text(owner, ttl, "IN", rtype, data)


def poisoning(q):
    """x.example.test carries records for names it has no say over; y and z.example.test
    are CNAMEs into a mesh name and a cluster name, with forged addresses for them."""
    name = (q.qname or "").lower()
    if q.msg is None or name not in ("x.example.test.", "y.example.test.", "z.example.test."):
        default_handler(q)
        return
    resp = dns.message.make_response(q.msg)
    resp.flags |= dns.flags.AA
    if name == "x.example.test.":
        resp.answer.append(rr(q.qname, "A", "192.0.2.10"))
        for owner, ip in POISON.items():
            resp.answer.append(rr(owner, "A", ip))
        resp.authority.append(rr("example.test.", "NS", "ns.example.test."))
        for zone in ("cluster.local.", "cluster-2.", "other.test.", "svc.cluster.local."):
            resp.authority.append(rr(zone, "NS", "ns.evil.test."))
        resp.additional.append(rr("ns.example.test.", "A", "192.0.2.53"))
        for owner, ip in POISON.items():
            resp.additional.append(rr(owner, "A", ip))
    else:
        target = MESH_HOST if name == "y.example.test." else KUBE
        resp.answer.append(rr(q.qname, "CNAME", target))
        resp.answer.append(rr(target, "A", POISON[target]))
        resp.additional.append(rr(OTHER, "A", POISON[OTHER]))
    q.send(resp)


class Bailiwick(DnsTestCase):

    def setUp(self):
        self.up = self.start_fake({"example.test.": ZONE, "other.test.": OTHER_ZONE,
                                   "evil.test.": "$ORIGIN evil.test.\n"
                                                 "@ 300 IN SOA ns h 1 1 1 1 30\n"},
                                  handler=poisoning)
        self.kube = self.start_fake(zones.zones_for("kube"))
        se = mesh_file(self.tmp() + "/se.json", {MESH_HOST.rstrip("."): [MESH_IP]})
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                                    "--cluster-dns", "127.0.0.1:%d" % self.kube.port,
                                    "--serviceentries", se)
        harness.wait_until(lambda: harness.query(self.m.port, MESH_HOST, "A").answer, 5,
                           "the mesh table")

    def assert_clean(self, r, what, owners=True):
        found = set()
        for section in (r.answer, r.authority, r.additional):
            for rrset in section:
                found.add(rrset.name.to_text().lower())
                for rd in rrset:
                    self.assertFalse(rd.to_text().startswith("6.6.6."),
                                     "%s carries %s %s" % (what, rrset.name, rd))
                    self.assertNotIn("evil", rd.to_text(), "%s: %s" % (what, rrset))
        self.assertFalse(owners and found & {KUBE, MESH_HOST, OTHER, "cluster.local.", "cluster-2.",
                                   "other.test.", "svc.cluster.local."},
                         "%s: %s" % (what, r.to_text()))

    def assert_proper_sources(self):
        r = harness.query(self.m.port, KUBE, "A")
        self.assertEqual(harness.rrs(r), {(KUBE, "A"): [zones.KUBE_DNS_IP]}, r.to_text())
        self.assertEqual(self.kube.count(KUBE), 1, "asked of the cluster DNS")
        r = harness.query(self.m.port, MESH_HOST, "A")
        self.assertEqual(harness.rrs(r), {(MESH_HOST, "A"): [MESH_IP]}, r.to_text())
        r = harness.query(self.m.port, OTHER, "A")
        self.assertEqual(harness.rrs(r), {(OTHER, "A"): [OTHER_IP]}, r.to_text())
        self.assertEqual(self.up.count(OTHER), 1, "a query of its own, not the cache")
        r = harness.query(self.m.port, "ns.evil.test", "A", edns=1232)
        self.assertNotIn(POISON["ns.evil.test."], str(r.answer))
        self.assertEqual(self.up.count("ns.evil.test"), 1)
        for owner in (KUBE, MESH_HOST, OTHER):
            for qtype in ("NS", "AAAA"):
                r = harness.query(self.m.port, owner, qtype, edns=1232)
                self.assert_clean(r, "%s %s later" % (owner, qtype), owners=False)

    def test_s5_out_of_bailiwick_records_never_served(self):
        for attempt in ("fresh", "cached"):
            r = harness.query(self.m.port, "x.example.test", "A")
            self.assertEqual(r.rcode(), dns.rcode.NOERROR)
            self.assertEqual(harness.rrs(r)[("x.example.test.", "A")], ["192.0.2.10"])
            self.assert_clean(r, "x.example.test (%s)" % attempt)
        self.assertEqual(self.up.count("x.example.test"), 1)
        figure("bailiwick: records kept of the poisoned x.example.test reply",
               sorted("%s %s" % k for k in list(harness.rrs(r))
                      + list(harness.rrs(r, "authority"))
                      + list(harness.rrs(r, "additional"))))
        self.assert_proper_sources()
        self.assertAlive(self.m)

    def test_s5_cname_into_the_cluster_domain_carries_no_forged_address(self):
        r = harness.query(self.m.port, "z.example.test", "A")
        self.assertNotIn(POISON[KUBE], r.to_text(), "the upstream spoke for a cluster name")
        self.assert_proper_sources()

    def test_s5_cname_into_a_mesh_name_carries_no_forged_address(self):
        r = harness.query(self.m.port, "y.example.test", "A")
        figure("bailiwick: answer to y.example.test (CNAME to a mesh name)",
               r.to_text().replace("\n", " | "))
        self.assertNotIn(POISON[MESH_HOST], r.to_text(),
                         "the external upstream spoke for mesh name %s" % MESH_HOST)
        self.assert_proper_sources()

    def test_s5_cluster_dns_cname_out_of_zone_does_not_fill_the_cache(self):
        def kube_alias(q):
            if (q.qname or "").lower() == "alias.default.svc.cluster.local.":
                resp = dns.message.make_response(q.msg)
                resp.answer.append(rr(q.qname, "CNAME", "www.example.test."))
                resp.answer.append(rr("www.example.test.", "A", "6.6.6.5"))
                q.send(resp)
            else:
                default_handler(q)
        self.kube.handler = kube_alias
        harness.query(self.m.port, "alias.default.svc.cluster.local", "A")
        self.up.handler = default_handler
        self.up.zones.clear()
        self.up.zones[dns.name.from_text("example.test.")] = dns.zone.from_text(
            zones.example_zone("upstream"), origin="example.test.", relativize=False)
        r = harness.query(self.m.port, "www.example.test", "A")
        self.assertEqual(harness.rrs(r), {("www.example.test.", "A"): [zones.WWW_IP]})
        self.assertEqual(self.up.count("www.example.test"), 1, "asked of the upstream")


if __name__ == "__main__":
    harness.main()
