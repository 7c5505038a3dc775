"""What the agent accepts from upstreams (SEMANTICS.md rules 29 and 30; reliability.md B7,
S1, S3, S4).

A fake upstream sends forgeries (wrong ID, wrong question, wrong source port or address)
and malformed bytes on the query's own path before the real answer: the client must get
the real answer, and the forgery must not be cached. Metrics cannot be read yet, so the
counters of dropped replies are not asserted; answers are.
"""

import random
import socket
import struct
import urllib.request

import dns.flags
import dns.message
import dns.name
import dns.rrset

import harness
import zones
from harness import DnsTestCase, answer_data

FORGED_IP = "6.6.6.6"
NAME = "www.example.test"


def forged_answer(q, qname=None, qtype="A", qid=None):
    """A reply carrying FORGED_IP for @qname (default: the query's own name)."""
    fake_q = dns.message.make_query(qname or q.qname, qtype)
    resp = dns.message.make_response(fake_q)
    resp.id = q.id if qid is None else qid
    resp.flags |= dns.flags.AA
    rtype = "AAAA" if qtype == "AAAA" else "A"
    data = "::6" if rtype == "AAAA" else FORGED_IP
    resp.answer.append(dns.rrset.from_text(qname or q.qname, 300, "IN", rtype, data))
    return resp


def send_from(addr, port, wire, dest):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.sendto(wire, dest)
    finally:
        s.close()


def question_end(raw):
    off = 12
    while raw[off]:
        off += 1 + raw[off]
    return off + 5


def compression_loop(q):
    """A reply with the right ID and question whose answer owner is a pointer to itself."""
    qe = question_end(q.raw)
    return (struct.pack("!HHHHHH", q.id, 0x8580, 1, 1, 0, 0) + q.raw[12:qe]
            + struct.pack("!HHHIH", 0xc000 | qe, 1, 1, 300, 4) + socket.inet_aton(FORGED_IP))


# Each forgery: a function of the query that sends something that must be ignored.
FORGERIES = {
    "wrong_id": lambda q: q.send(forged_answer(q, qid=(q.id + 1) & 0xffff)),
    "wrong_name": lambda q: q.send(forged_answer(q, qname="evil.example.test.")),
    "wrong_type": lambda q: q.send(forged_answer(q, qtype="AAAA")),
    "wrong_source_port": lambda q: q.send_from_other_port(forged_answer(q)),
    "wrong_source_address": lambda q: send_from("127.0.0.2", q.server.port,
                                                forged_answer(q).to_wire(), q.src),
    "not_a_reply": lambda q: q.send(forged_answer(q).to_wire()[:2] + b"\x01\x00"
                                    + forged_answer(q).to_wire()[4:]),
    # malformed bytes with the right ID (TuDoor: they must not end the wait)
    "garbage": lambda q: q.send(struct.pack("!H", q.id) + b"\x81\x80" + bytes(range(40))),
    "short_header": lambda q: q.send(struct.pack("!H", q.id) + b"\x81\x80\x00"),
    "rdlength_past_end": lambda q: q.send(forged_answer(q).to_wire()[:-2]),
    "compression_loop": lambda q: q.send(compression_loop(q)),
}


def forge_then_answer(kinds, delay=0.2):
    def handler(q):
        if q.proto == "udp":
            for kind in kinds:
                FORGERIES[kind](q)
        q.send_later(q.answer(), delay)
    return handler


def forge_only(kinds):
    def handler(q):
        for kind in kinds:
            FORGERIES[kind](q)
    return handler


class ForgedReplies(DnsTestCase):
    """Rule 29: only the reply from the server and port the query went to, on its socket,
    with its ID and question, is taken."""

    def start(self, handler, timeout_ms=1500):
        self.up = self.start_fake(handler=handler)
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                                    "--upstream-timeout", str(timeout_ms))

    def check_forgery_ignored(self, kind):
        self.start(forge_then_answer([kind]))
        r = self.m.dnsq(NAME, "A")
        self.assertRcode(r, "NOERROR")
        self.assertEqual(answer_data(r), [zones.WWW_IP], "%s accepted: %s" % (kind, r))
        r = self.m.dnsq(NAME, "A")  # from the cache: the real answer, not the forgery
        self.assertEqual(answer_data(r), [zones.WWW_IP], kind)
        self.assertEqual(self.up.count(NAME), 1)
        self.assertAlive(self.m)

    def test_rule29_wrong_id_ignored(self):
        self.check_forgery_ignored("wrong_id")

    def test_rule29_wrong_question_name_ignored(self):
        self.check_forgery_ignored("wrong_name")

    def test_rule29_wrong_question_type_ignored(self):
        self.check_forgery_ignored("wrong_type")

    def check_wrong_source_counted(self, kind):
        # The upstream sockets are not connected, so the kernel hands them what anyone
        # sends to their port: the agent itself must refuse it, and says so in /metrics.
        self.up = self.start_fake(handler=forge_then_answer([kind]))
        mport = harness.free_port()
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                                    "--metrics", "127.0.0.1:%d" % mport)
        r = self.m.dnsq(NAME, "A")
        self.assertEqual(answer_data(r), [zones.WWW_IP], "%s accepted: %s" % (kind, r))
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                      timeout=5).read().decode()
        line = 'meshdns_upstream_dropped_total{reason="wrong_source"} '
        counts = [float(x[len(line):]) for x in body.splitlines() if x.startswith(line)]
        self.assertEqual(counts, [1.0], body)

    def test_rule29_wrong_source_port_ignored(self):
        self.check_forgery_ignored("wrong_source_port")
        self.check_wrong_source_counted("wrong_source_port")

    def test_rule29_wrong_source_address_ignored(self):
        self.check_forgery_ignored("wrong_source_address")
        self.check_wrong_source_counted("wrong_source_address")

    def test_rule29_message_without_qr_ignored(self):
        self.check_forgery_ignored("not_a_reply")

    def test_rule29_malformed_replies_ignored_and_wait_goes_on(self):
        for kind in ("garbage", "short_header", "rdlength_past_end", "compression_loop"):
            with self.subTest(kind=kind):
                self.doCleanups()
                self.check_forgery_ignored(kind)

    def test_rule29_every_forgery_at_once_then_the_real_answer(self):
        self.start(forge_then_answer(sorted(FORGERIES)))
        r = self.m.dnsq(NAME, "A")
        self.assertEqual(answer_data(r), [zones.WWW_IP], r)

    def test_rule29_forgeries_alone_never_become_an_answer(self):
        self.start(forge_only(sorted(FORGERIES)), timeout_ms=400)
        for _ in range(2):
            r = self.m.dnsq(NAME, "A", "--edns", "1232")
            self.assertRcode(r, "SERVFAIL")
            self.assertNotIn(FORGED_IP, answer_data(r))

    def test_rule29_question_case_from_upstream_does_not_matter(self):
        def shouting(q):
            resp = q.answer()
            resp.question[0].name = dns.name.from_text(q.qname.upper())
            q.send(resp)
        self.start(shouting)
        r = self.m.dnsq(NAME, "A")
        self.assertEqual(answer_data(r), [zones.WWW_IP], "names compare case-insensitively")
        self.assertEqual(r["question"][0]["name"], NAME + ".")


def port_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except OSError:
        return 32768, 60999


class Randomness(DnsTestCase):
    """Rule 29: a fresh random ID and source port for every upstream query."""

    N = 200

    def test_rule29_source_ports_and_ids_are_random(self):
        up = self.start_fake()
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port)
        for i in range(self.N):  # distinct names: no cache hit, no coalescing
            r = harness.query(m.port, "r%d.example.test" % i, "A", qid=4242, timeout=3)
            self.assertIsNotNone(r, "query %d timed out" % i)
        qs = [q for q in up.received() if q.qname.startswith("r")]
        self.assertEqual(len(qs), self.N)
        ports = [q.src[1] for q in qs]
        ids = [q.id for q in qs]
        self.assertGreaterEqual(len(set(ports)), self.N - 10, "source ports repeat")
        self.assertGreaterEqual(len(set(ids)), self.N - 5, "IDs repeat")
        self.assertNotIn(m.port, ports, "queries must not leave from the listen socket")
        self.assertLess(ids.count(4242), 3, "the client's ID is not reused upstream")
        for label, seq in (("port", ports), ("ID", ids)):
            deltas = [(b - a) & 0xffff for a, b in zip(seq, seq[1:])]
            top = max(deltas.count(d) for d in set(deltas))
            self.assertLess(top, len(deltas) // 10, "%s: a counter pattern %s" % (label,
                                                                               seq[:20]))
        lo, hi = port_range()
        self.assertGreater(max(ports) - min(ports), (hi - lo) // 4,
                           "ports span little of the ephemeral range %d-%d" % (lo, hi))
        self.assertGreater(max(ids) - min(ids), 30000, "IDs span little of 0-65535")


class Coalescing(DnsTestCase):
    """Rule 30: identical concurrent misses share one upstream query."""

    def setUp(self):
        self.up = self.start_fake()
        self.up.delay = 1.0
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                                    "--upstream-timeout", "3000")

    def burst(self, queries):
        """Sends every (name, kwargs) of @queries at once, client i with ID 1000 + i, each
        from its own socket; returns the replies (dns.message or None) in order."""
        return harness.concurrently(
            lambda i: harness.query(self.m.port, queries[i][0], "A", qid=1000 + i,
                                    timeout=5, **queries[i][1]),
            list(range(len(queries))))

    def check_all_answered(self, replies):
        for i, r in enumerate(replies):
            self.assertIsNotNone(r, "client %d got no answer" % i)
            self.assertEqual(r.id, 1000 + i, "client %d got another client's ID" % i)
            self.assertEqual(harness.rrs(r), {("www.example.test.", "A"): [zones.WWW_IP]})

    def test_rule30_fifty_identical_queries_one_upstream_query(self):
        replies = self.burst([(NAME, {})] * 50)
        self.check_all_answered(replies)
        self.assertEqual(self.up.count(NAME), 1)

    def test_rule30_letter_case_variants_share_and_keep_their_case(self):
        rnd = random.Random(7)
        names = ["".join(c.upper() if rnd.random() < 0.5 else c for c in NAME)
                 for _ in range(30)]
        replies = self.burst([(n, {}) for n in names])
        self.check_all_answered(replies)
        for n, r in zip(names, replies):
            self.assertEqual(r.question[0].name.to_text(), n + ".", "rule 26 per waiter")
        self.assertEqual(self.up.count(NAME), 1)

    def test_rule30_do_and_cd_are_not_merged(self):
        qs = [(NAME, {}), (NAME, {"do": True}), (NAME, {"cd": True})] * 10
        self.check_all_answered(self.burst(qs))
        got = sorted((q.do, q.cd) for q in self.up.received(NAME))
        self.assertEqual(got, [(False, False), (False, True), (True, False)])


if __name__ == "__main__":
    harness.main()
