"""Replies leave through a second socket per listener (agent/udp.c, "reply socket").

The listening socket stays on epoll's wait queue, so every reply it sent would wake it when
the kernel frees the datagram; replies therefore go out through a socket bound to the same
address and port with SO_REUSEADDR, outside the SO_REUSEPORT group, connected to the discard
port and never polled. What a client must see does not change: the answer comes from the
address and port it asked. These tests hold the agent to that, to the queries such a socket
can take before it is connected (answered by the per-tick sweep), and to the fallback while
an older instance without SO_REUSEADDR still holds the address.
"""

import os
import socket
import time

import dns.message

import harness
import zones
from harness import DnsTestCase, wait_until

WWW = {("www.example.test.", "A"): [zones.WWW_IP]}


def udp_ports_of(pid, port):
    """How many UDP sockets of process @pid are bound to local @port (IPv4 and IPv6)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    n = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[9] in inodes:
                    n += 1
    return n


class ReplySocket(DnsTestCase):

    def setUp(self):
        self.up = self.start_fake()

    def agent(self, *args, **kw):
        return self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port, *args, **kw)

    def ask_unconnected(self, host, port, qid, src=None, timeout=2.0):
        """A query from an unconnected socket, so that any source could answer: returns
        (message, the address the reply came from) or (None, None)."""
        s = socket.socket(harness.family(host), socket.SOCK_DGRAM)
        s.settimeout(timeout)
        try:
            s.bind(src or (host, 0))
            s.sendto(harness.make_query("www.example.test", "A", qid=qid).to_wire(),
                     (host, port))
            data, frm = s.recvfrom(65535)
            return dns.message.from_wire(data), frm[:2]
        except socket.timeout:
            return None, None
        finally:
            s.close()

    def test_answers_come_from_the_address_and_port_asked_hit_and_miss(self):
        hosts = ["127.0.0.1"]
        if socket.has_ipv6:
            try:
                probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                probe.bind(("::1", 0))
                probe.close()
                hosts.append("::1")
            except OSError:
                pass
        port = harness.free_port()
        extra = ["--listen", harness.hostport("::1", port)] if len(hosts) > 1 else []
        m = self.agent(*extra, port=port)
        for host in hosts:
            for qid in (1, 2):  # a miss (forwarded), then a hit (from the cache)
                r, frm = self.ask_unconnected(host, m.port, qid)
                self.assertIsNotNone(r, "no answer on %s" % host)
                self.assertEqual(r.id, qid)
                self.assertEqual(harness.rrs(r), WWW)
                self.assertEqual(frm, (host, m.port))
        self.assertEqual(self.up.count("www.example.test"), 1)

    def test_each_thread_has_a_listening_and_a_reply_socket(self):
        m = self.agent("--threads", "2")
        self.assertEqual(udp_ports_of(m.proc.pid, m.port), 4)

    def test_a_query_the_reply_socket_took_is_answered_by_the_sweep(self):
        # The reply socket is connected to 127.0.0.1:9, so a datagram from there is its,
        # exactly like one taken between its bind and its connect. Nobody polls it: only the
        # sweep on the 100 ms tick can answer.
        if os.geteuid() != 0:
            self.skipTest("binding port 9 needs root")
        m = self.agent()
        try:
            r, frm = self.ask_unconnected(harness.HOST, m.port, 77, src=(harness.HOST, 9),
                                          timeout=3.0)
        except OSError as e:
            self.skipTest("port 9 is not free here: %s" % e)
        self.assertIsNotNone(r, "the query on the reply socket was never answered")
        self.assertEqual(r.id, 77)
        self.assertEqual(harness.rrs(r), WWW)
        self.assertEqual(frm, (harness.HOST, m.port))

    def test_older_instance_holding_the_address_then_leaving(self):
        # An instance of the previous version: SO_REUSEPORT only, same user. The agent
        # joins its group, cannot bind a reply socket beside it, answers from the
        # listening socket, and takes its own reply socket once the old one is gone.
        port = harness.free_port()
        old = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(old.close)
        old.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        old.bind((harness.HOST, port))
        m = self.agent(port=port, ready=False)
        wait_until(lambda: "replies leave through the listening socket" in m.log()
                   or not m.alive(), 10, "the fallback line")
        self.assertTrue(m.alive(), m.log())
        self.assertEqual(udp_ports_of(m.proc.pid, port), 1)
        answered = []
        for qid in range(20):  # each from a new port: the group spreads them by hash
            r, frm = self.ask_unconnected(harness.HOST, port, qid, timeout=0.5)
            if r is not None:
                self.assertEqual((r.id, frm), (qid, (harness.HOST, port)))
                answered.append(qid)
        self.assertTrue(answered, "no query reached the agent beside the old socket")
        old.close()
        wait_until(lambda: "replies leave through their own socket again" in m.log(), 5,
                   "the reply socket after the old instance left")
        self.assertEqual(udp_ports_of(m.proc.pid, port), 2)
        m.wait_ready()
        for qid in range(100, 105):
            r, frm = self.ask_unconnected(harness.HOST, port, qid)
            self.assertEqual((r.id, frm), (qid, (harness.HOST, port)))
        self.assertEqual(m.log().count("replies leave through the listening socket"), 1,
                         m.log())

    def test_a_wildcard_socket_with_reuseaddr_gets_none_of_the_agents_queries(self):
        # dnsmasq and unbound bind their UDP sockets with SO_REUSEADDR; one of them on the
        # wildcard address no longer keeps the agent from binding (its sockets set
        # SO_REUSEADDR too), and the kernel prefers the sockets on the exact address.
        port = harness.free_port()
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(other.close)
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("0.0.0.0", port))
        other.setblocking(False)
        m = self.agent(port=port)
        try:  # the readiness probes sent before the agent had bound went to it
            while True:
                other.recv(65535)
        except BlockingIOError:
            pass
        for qid in range(30):  # from 30 source ports
            r, frm = self.ask_unconnected(harness.HOST, port, qid)
            self.assertEqual((r.id, frm), (qid, (harness.HOST, port)))
        with self.assertRaises(BlockingIOError):
            other.recv(65535)
        self.assertTrue(m.alive())


if __name__ == "__main__":
    harness.main()
