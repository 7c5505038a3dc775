"""Protocol rules for every answer (SEMANTICS.md section 5, rules 25-28), over UDP.

Queries are built byte by byte (dnsq, or raw bytes here) so that each header bit, the
letter case of the name and the OPT RR are exactly what the test says.
"""

import socket
import subprocess
import struct

import dns.message

import harness
import zones
from harness import DnsTestCase, answer_data


def header(qid=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def question(name="www.example.test", qtype=1, qclass=1):
    wire = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".") if label)
    return wire + b"\x00" + struct.pack("!HH", qtype, qclass)


def opt(payload=1232, version=0, do=False, options=b""):
    return (b"\x00" + struct.pack("!HHBBHH", 41, payload, 0, version, 0x8000 if do else 0,
                                  len(options)) + options)


class ProtocolRules(DnsTestCase):

    def setUp(self):
        self.up = self.start_fake()
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port)

    def raw(self, wire, **kw):
        return self.m.dnsq(raw=wire, **kw)

    def assert_still_serving(self):
        self.assertAlive(self.m)
        r = self.m.dnsq("www.example.test", "A")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP], r)

    # rule 25

    def test_rule25_opcode_other_than_query_gets_notimp(self):
        for opcode in (1, 2, 4, 5, 15):
            r = self.m.dnsq("www.example.test", "A", "--opcode", str(opcode), "--id", "4242")
            self.assertRcode(r, "NOTIMP")
            self.assertEqual(r["id"], 4242)
            self.assertIn("qr", r["flags"])
            self.assertEqual(r["opcode"], opcode, "the reply keeps the query's opcode")
        self.assertEqual(self.up.count(), 0)

    def test_rule25_qdcount_two_gets_formerr(self):
        wire = header(qd=2) + question("a.example.test") + question("b.example.test")
        r = self.raw(wire)
        self.assertRcode(r, "FORMERR")
        self.assertEqual(r["id"], 0x1234)
        self.assertEqual(self.up.count(), 0)

    def test_rule25_qdcount_zero_gets_formerr(self):
        r = self.raw(header(qd=0))
        self.assertRcode(r, "FORMERR")
        self.assertEqual(r["id"], 0x1234)
        self.assertIn("qr", r["flags"])

    def test_rule25_qdcount_zero_with_opt_gets_formerr(self):
        r = self.raw(header(qd=0, ar=1) + opt())
        self.assertRcode(r, "FORMERR")

    def test_rule25_packet_shorter_than_a_header_is_dropped(self):
        for wire in (b"", b"\x12", b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00"):
            r = self.raw(wire, timeout_ms=400)
            self.assertEqual(r, {"timeout": True}, "%d bytes must get no reply" % len(wire))
        self.assert_still_serving()

    def test_rule25_qr_set_in_a_query_is_dropped(self):
        r = self.raw(header(flags=0x8100) + question(), timeout_ms=400)
        self.assertEqual(r, {"timeout": True})
        self.assertEqual(self.up.count(), 0)
        self.assert_still_serving()

    def test_rule25_class_ch_and_hs_get_refused(self):
        for cls in ("CH", "HS"):
            r = self.m.dnsq("version.bind", "TXT", "--class", cls)
            self.assertRcode(r, "REFUSED")
            self.assertEqual(r["question"][0]["class"], cls)
        self.assertEqual(self.up.count(), 0)

    # rule 26

    def test_rule26_reply_echoes_id_rd_cd_and_sets_qr_ra(self):
        cases = [((), {"qr", "rd", "ra"}), (("--no-rd",), {"qr", "ra"}),
                 (("--cd",), {"qr", "rd", "ra", "cd"}),
                 (("--cd", "--no-rd"), {"qr", "ra", "cd"})]
        for name in ("www.example.test", "www.example.test"):  # a miss, then a hit
            for opts, want in cases:
                r = self.m.dnsq(name, "A", "--id", "51966", *opts)
                self.assertRcode(r, "NOERROR")
                self.assertEqual(r["id"], 51966)
                got = set(r["flags"]) - {"aa", "ad"}
                self.assertEqual(got, want, "flags for %s" % (opts,))

    def test_rule26_error_replies_echo_id_rd_cd_too(self):
        r = self.m.dnsq("version.bind", "TXT", "--class", "CH", "--id", "777", "--cd",
                        "--no-rd")
        self.assertEqual(r["id"], 777)
        self.assertEqual(set(r["flags"]), {"qr", "ra", "cd"})
        r = self.m.dnsq("version.bind", "TXT", "--class", "CH", "--id", "778")
        self.assertEqual(set(r["flags"]), {"qr", "ra", "rd"})

    def test_rule26_question_case_exact_on_miss_hit_and_errors(self):
        name = "wWw.ExAmPlE.tEsT"
        want = question(name)
        for opts in ((), (), ("--class", "CH"), ("--opcode", "4")):
            qtype = "TXT" if opts and opts[0] == "--class" else "A"
            r = self.m.dnsq(name, qtype, *opts)
            raw = bytes.fromhex(r["raw"])
            self.assertEqual(r["qdcount"], 1, r)
            got = raw[12:12 + len(want) - 4]
            self.assertEqual(got, want[:-4], "question name bytes for %s" % (opts,))
            self.assertEqual(r["question"][0]["name"], name + ".")

    def test_rule26_question_case_exact_on_nxdomain(self):
        for _ in range(2):  # miss, then a negative cache hit
            r = self.m.dnsq("NoSuch.Example.TEST", "A")
            self.assertRcode(r, "NXDOMAIN")
            self.assertEqual(r["question"][0]["name"], "NoSuch.Example.TEST.")

    # rule 27

    def test_rule27_query_with_opt_gets_opt_with_payload_1232(self):
        for opts in (("--edns", "4096"), ("--edns", "512"), ("--do",)):
            r = self.m.dnsq("www.example.test", "A", *opts)
            self.assertRcode(r, "NOERROR")
            self.assertIsNotNone(r["edns"], opts)
            self.assertEqual(r["edns"]["udp"], 1232)
            self.assertEqual(r["edns"]["version"], 0)
            self.assertEqual(r["edns"]["do"], "--do" in opts, "DO echoed (RFC 3225)")

    def test_rule27_query_without_opt_gets_no_opt(self):
        r = self.m.dnsq("www.example.test", "A")
        self.assertIsNone(r["edns"])
        r = self.m.dnsq("version.bind", "TXT", "--class", "CH")
        self.assertIsNone(r["edns"])

    def test_rule27_error_reply_keeps_opt(self):
        r = self.m.dnsq("version.bind", "TXT", "--class", "CH", "--edns", "1232")
        self.assertRcode(r, "REFUSED")
        self.assertIsNotNone(r["edns"])
        self.assertEqual(r["edns"]["udp"], 1232)

    def test_rule27_notimp_reply_keeps_opt(self):
        for opcode in ("2", "4"):  # STATUS, NOTIFY (ISC genreport "opcode" test)
            r = self.m.dnsq("www.example.test", "A", "--edns", "1232", "--opcode", opcode)
            self.assertRcode(r, "NOTIMP")
            self.assertIsNotNone(r["edns"], "opcode %s: a query with OPT got no OPT" % opcode)
            self.assertEqual(r["edns"]["udp"], 1232)

    def test_rule27_formerr_for_qdcount_keeps_a_well_formed_opt(self):
        for qd, body in ((0, b""), (2, question() + question())):
            r = self.raw(header(qd=qd, ar=1) + body + opt())
            self.assertRcode(r, "FORMERR")
            self.assertIsNotNone(r["edns"], "QDCOUNT %d: a query with OPT got no OPT" % qd)

    def test_rule27_edns_version_1_gets_badvers_with_opt(self):
        r = self.m.dnsq("www.example.test", "A", "--edns-version", "1", "--id", "99")
        self.assertRcode(r, "BADVERS")
        self.assertEqual(r["id"], 99)
        self.assertIsNotNone(r["edns"])
        self.assertEqual(r["edns"]["version"], 0, "the version we speak")
        self.assertEqual(r["edns"]["ext_rcode"], 1)
        self.assertEqual(r["answer"], [])
        self.assertEqual(self.up.count(), 0)

    def test_rule27_unknown_edns_option_is_ignored(self):
        r = self.m.dnsq("www.example.test", "A", "--ednsopt", "65001:c0ffee",
                        "--ednsopt", "65002")
        self.assertRcode(r, "NOERROR")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP])
        self.assertNotIn(65001, [o["code"] for o in r["edns"]["options"]])

    def test_rule27_two_opt_rrs_get_formerr(self):
        r = self.raw(header(ar=2) + question() + opt() + opt())
        self.assertRcode(r, "FORMERR")

    def test_rule27_opt_in_the_answer_section_gets_formerr(self):
        r = self.raw(header(an=1) + question() + opt())
        self.assertRcode(r, "FORMERR")

    # rule 28

    def test_rule28_forwarded_reply_keeps_upstream_data_and_aa(self):
        r = self.m.dnsq("alias.example.test", "A")
        self.assertRcode(r, "NOERROR")
        self.assertEqual([(rr["name"], rr["type"], rr["rdata"]) for rr in r["answer"]],
                         [("alias.example.test.", "CNAME", "www.example.test."),
                          ("www.example.test.", "A", zones.WWW_IP)])
        self.assertIn("aa", r["flags"], "the fake upstream is authoritative")
        r = self.m.dnsq("example.test", "MX")
        self.assertEqual(answer_data(r, "MX"), ["10 mail.example.test."])

    def test_rule32_upstream_query_carries_the_agents_own_opt(self):
        self.m.dnsq("www.example.test", "A")  # the client sends no OPT
        (q,) = self.up.received("www.example.test")
        self.assertEqual(q.edns, 0, "rule 32: the agent sends its own OPT")
        self.assertEqual(q.payload, 1232)


class ListenAddresses(DnsTestCase):
    """Rule 24: UDP and TCP on every listen address, IPv6 included."""

    def test_rule24_udp_and_tcp_on_every_listen_address(self):
        up = self.start_fake(host="::1")
        v4b = harness.free_port()
        # the harness's --listen is [::1]:m.port; a second one on IPv4
        m = self.start_meshdns("--listen", "127.0.0.1:%d" % v4b,
                               "--upstream", "[::1]:%d" % up.port, host="::1")
        for host, port in (("::1", m.port), ("127.0.0.1", v4b)):
            for opts in ((), ("--tcp",)):
                r = harness.run_dnsq(port, "www.example.test", "A", *opts, host=host)
                self.assertEqual(answer_data(r, "A"), [zones.WWW_IP], (host, opts, r))
        self.assertEqual(up.count(), 1, "the IPv6 upstream asked once, then the cache")

    def test_rule24_answers_come_from_the_address_and_port_asked(self):
        # A client on an unconnected socket takes a datagram from anyone; the answer must
        # still come from the address and port it sent to, forwarded (first query of a
        # name) or from the cache (second), on IPv6 and IPv4.
        up = self.start_fake()
        v4 = harness.free_port()
        m = self.start_meshdns("--listen", "127.0.0.1:%d" % v4,
                               "--upstream", "127.0.0.1:%d" % up.port, host="::1")
        for host, port, name, ip in (("::1", m.port, "mail.example.test", "192.0.2.25"),
                                     ("127.0.0.1", v4, "ns.example.test", "192.0.2.53")):
            for qid in (1, 2):
                s = socket.socket(harness.family(host), socket.SOCK_DGRAM)
                self.addCleanup(s.close)
                s.settimeout(3)
                s.bind((host, 0))
                s.sendto(harness.make_query(name, "A", qid=qid).to_wire(), (host, port))
                data, frm = s.recvfrom(65535)
                r = dns.message.from_wire(data)
                self.assertEqual((r.id, frm[:2]), (qid, (host, port)))
                self.assertEqual(harness.rrs(r), {(name + ".", "A"): [ip]})
            self.assertEqual(up.count(name), 1, "%s forwarded once, then the cache" % name)

    def test_rule24_wildcard_listen_is_refused_with_a_clear_line(self):
        """--listen 0.0.0.0:PORT or [::]:PORT would answer UDP from whatever address the
        kernel picks, not the one the client asked (a connected client, as glibc's, then
        drops the reply): the agent refuses it as a bad flag, exit status 2, before binding
        anything."""
        for addr in ("0.0.0.0", "[::]"):
            port = harness.free_port()
            out = subprocess.run([harness.MESHDNS, "--no-interface", "--serviceentries", "none",
                                  "--listen", "%s:%d" % (addr, port), "--upstream", "127.0.0.1"],
                                 capture_output=True, text=True, timeout=10)
            self.assertEqual(out.returncode, 2, out)
            lines = out.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, out.stderr)
            self.assertIn("--listen", lines[0])
            self.assertIn("wildcard", lines[0])


if __name__ == "__main__":
    harness.main()
