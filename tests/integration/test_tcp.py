"""TCP serving (SEMANTICS.md rule 24, RFC 7766; reliability.md B6): framing across
segments, pipelining with answers out of order, the idle timeout and the connection cap.
"""

import socket
import struct
import time

import dns.message

import harness
import zones
from harness import DnsTestCase, tcp_read_msg

NAME = "www.example.test"


def framed(msg):
    wire = msg.to_wire() if isinstance(msg, dns.message.Message) else msg
    return struct.pack("!H", len(wire)) + wire


def delay_by_name(q):
    """Answers dN.example.test after (10 - N) * 60 ms, so later queries finish first."""
    label = q.qname.split(".")[0]
    delay = (10 - int(label[1:])) * 0.06 if label.startswith("d") and label[1:].isdigit() \
        else q.server.delay
    q.send_later(q.answer(), delay) if delay else q.send(q.answer())


class TcpServing(DnsTestCase):

    def setUp(self):
        self.up = self.start_fake(handler=delay_by_name)
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                                    "--tcp-idle-timeout", "3000")

    def connect(self, timeout=5.0):
        s = socket.create_connection((harness.HOST, self.m.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.addCleanup(s.close)
        return s

    def read_replies(self, s, n):
        out = {}
        for _ in range(n):
            wire = tcp_read_msg(s)
            self.assertIsNotNone(wire, "connection closed after %d of %d replies"
                                 % (len(out), n))
            r = dns.message.from_wire(wire)
            out[r.id] = r
        return out

    def test_rule24_pipelined_queries_all_answered_matched_by_id(self):
        self.m.dnsq(NAME, "A")  # cached: its answer can overtake the forwarded ones
        queries = [harness.make_query("d%d.example.test" % i, "A", qid=100 + i)
                   for i in range(10)]
        queries.append(harness.make_query(NAME, "A", qid=999))
        s = self.connect()
        s.sendall(b"".join(framed(q) for q in queries))
        replies = self.read_replies(s, len(queries))
        self.assertEqual(sorted(replies), sorted(q.id for q in queries))
        for q in queries:
            r = replies[q.id]
            self.assertEqual(r.question[0].name, q.question[0].name)
        order = list(replies)
        self.assertEqual(order[0], 999, "the cached answer need not wait for the others")

    def test_rule24_hundred_pipelined_queries_on_one_connection(self):
        self.up.delay = 0.3
        queries = [harness.make_query("p%d.example.test" % i, "A", qid=i) for i in range(100)]
        s = self.connect(timeout=15)
        s.sendall(b"".join(framed(q) for q in queries))
        replies = self.read_replies(s, 100)
        self.assertEqual(sorted(replies), list(range(100)))

    def test_rule24_query_sent_byte_by_byte(self):
        s = self.connect()
        for b in framed(harness.make_query(NAME, "A", qid=4321)):
            s.send(bytes([b]))
            time.sleep(0.01)
        r = dns.message.from_wire(tcp_read_msg(s))
        self.assertEqual(r.id, 4321)
        self.assertEqual(harness.rrs(r), {(NAME + ".", "A"): [zones.WWW_IP]})

    def test_rule24_two_queries_in_one_segment_and_a_split_third(self):
        a, b, c = (framed(harness.make_query(NAME, t, qid=i))
                   for i, t in ((1, "A"), (2, "AAAA"), (3, "TXT")))
        s = self.connect()
        s.sendall(a + b + c[:5])
        time.sleep(0.2)
        s.sendall(c[5:])
        self.assertEqual(sorted(self.read_replies(s, 3)), [1, 2, 3])

    def test_rule24_many_queries_one_after_another_on_one_connection(self):
        s = self.connect()
        for i in range(20):
            s.sendall(framed(harness.make_query(NAME, "A", qid=i)))
            r = dns.message.from_wire(tcp_read_msg(s))
            self.assertEqual(r.id, i)

    def test_rule24_half_closed_client_still_gets_its_answer(self):
        s = self.connect()
        s.sendall(framed(harness.make_query("d1.example.test", "A", qid=77)))
        s.shutdown(socket.SHUT_WR)
        wire = tcp_read_msg(s)
        self.assertIsNotNone(wire, "closed before answering a query already received")
        self.assertEqual(dns.message.from_wire(wire).id, 77)

    def test_rule24_client_gone_before_the_forwarded_answer(self):
        self.up.delay = 0.5
        for i in range(5):
            s = self.connect()
            s.sendall(framed(harness.make_query("gone%d.example.test" % i, "A", qid=i)))
            # close with RST while the agent still waits for the upstream
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        harness.wait_until(lambda: self.up.count() >= 5, 5, "the queries to go upstream")
        time.sleep(0.8)  # the answers come back to connections that are gone
        self.assertAlive(self.m)
        self.up.delay = 0
        s = self.connect()
        s.sendall(framed(harness.make_query(NAME, "A", qid=5)))
        self.assertEqual(dns.message.from_wire(tcp_read_msg(s)).id, 5)

    def test_rule24_zero_length_frame_closes_the_connection(self):
        s = self.connect()
        s.sendall(b"\x00\x00")
        self.assertIsNone(tcp_read_msg(s))
        self.assertAlive(self.m)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class TcpNonReadingClient(DnsTestCase):
    """Rule 24 and reliability.md B6: a client that sends queries and never reads the
    replies must not make the agent buffer without bound, nor block other clients."""

    def test_rule24_non_reading_client_does_not_grow_the_agent_without_bound(self):
        up = self.start_fake()
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port)
        m.dnsq("big.example.test", "TXT", "--tcp")  # cached: 3.6 kB per reply
        before = rss_kib(m.proc.pid)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.addCleanup(s.close)
        s.connect((harness.HOST, m.port))
        s.settimeout(3)
        batch = framed(harness.make_query("big.example.test", "TXT")) * 100
        sent = 0
        try:
            while sent < 20000:  # 20000 replies would be 72 MB
                s.sendall(batch)
                sent += 100
        except socket.timeout:
            pass  # the agent stopped reading: back-pressure, as it should
        time.sleep(0.5)
        grown = rss_kib(m.proc.pid) - before
        r = m.dnsq("www.example.test", "A")
        self.assertEqual(harness.answer_data(r, "A"), [zones.WWW_IP], "others are served")
        self.assertAlive(m)
        self.assertLess(grown, 16 * 1024, "%d queries unread: the agent grew by %d KiB"
                        % (sent, grown))


def server_side_conns(port):
    """TCP connections whose local port is @port and that the server has not closed yet
    (ESTABLISHED, CLOSE_WAIT, LAST_ACK), from /proc/net/tcp{,6}."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state = fields[1], fields[3]
                    if int(local.rsplit(":", 1)[1], 16) == port and state in ("01", "08",
                                                                             "09"):
                        n += 1
        except OSError:
            pass
    return n


class TcpLimits(DnsTestCase):
    """Rule 24: idle timeout and bounded connections."""

    def setUp(self):
        self.up = self.start_fake()

    def connect(self, m):
        s = socket.create_connection((harness.HOST, m.port), timeout=5)
        self.addCleanup(s.close)
        return s

    def ask(self, s, qid=1):
        s.sendall(framed(harness.make_query(NAME, "A", qid=qid)))
        wire = tcp_read_msg(s)
        return dns.message.from_wire(wire) if wire is not None else None

    def wait_closed(self, s, limit):
        t0 = time.monotonic()
        s.settimeout(limit)
        try:
            data = s.recv(1)
        except socket.timeout:
            self.fail("still open after %.1f s" % limit)
        except ConnectionResetError:
            data = b""
        self.assertEqual(data, b"")
        return time.monotonic() - t0

    def test_rule24_idle_connection_closed_after_the_idle_timeout(self):
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                               "--tcp-idle-timeout", "700")
        s = self.connect(m)
        elapsed = self.wait_closed(s, 5.0)
        self.assertGreaterEqual(elapsed, 0.6, "closed before the idle timeout")
        self.assertLess(elapsed, 0.7 + 3.0)

    def test_rule24_activity_restarts_the_idle_timer(self):
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                               "--tcp-idle-timeout", "2000")
        s = self.connect(m)
        for i in range(4):  # 4 queries 0.5 s apart: 1.5 s in all, never 2 s idle
            if i:
                time.sleep(0.5)
            self.assertIsNotNone(self.ask(s, i), "closed while in use")
        elapsed = self.wait_closed(s, 8.0)
        self.assertGreaterEqual(elapsed, 1.5, "the idle time counts from the last query")

    def test_rule24_connections_over_the_cap_are_closed(self):
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                               "--max-tcp-connections", "3", "--tcp-idle-timeout", "20000")
        # the readiness probe's connection must be gone from the agent's count first
        harness.wait_until(lambda: server_side_conns(m.port) == 0, 5,
                           "the agent to close the probe's connection")
        held = [self.connect(m) for _ in range(3)]
        for i, s in enumerate(held):
            self.assertIsNotNone(self.ask(s, i), "connection %d within the cap" % i)
        extra = self.connect(m)
        try:
            r = self.ask(extra, 9)
        except (ConnectionResetError, BrokenPipeError):
            r = None
        self.assertIsNone(r, "a 4th connection with --max-tcp-connections 3 was served")
        held[0].close()

        def served_again():
            s = socket.create_connection((harness.HOST, m.port), timeout=2)
            try:
                return self.ask(s, 10) is not None
            except OSError:
                return False
            finally:
                s.close()
        harness.wait_until(served_again, 5, "a free slot after a connection closed", 0.2)
        for i, s in enumerate(held[1:]):
            self.assertIsNotNone(self.ask(s, 20 + i), "held connections keep working")
        self.assertIsNotNone(harness.query(m.port, NAME, "A"), "UDP unaffected")


if __name__ == "__main__":
    harness.main()
