"""How UDP sockets are read: io_uring where the kernel allows it, epoll where it does not.

By default each worker reads its UDP listeners and its upstream sockets through an io_uring
(multishot receives into a ring of 64 buffers) and sleeps in io_uring_enter. Under a seccomp
profile that refuses io_uring (Docker's and containerd's defaults do; tools/noiouring.c
applies one) or with --no-io-uring, the same sockets are read on epoll. Either way a client
sees the same answers, bursts larger than the ring are answered in full, upstream queries
time out and fail over as before, and a stopped agent leaves its port free at once.
"""

import os
import signal
import socket
import threading
import time
import urllib.request

import dns.flags
import dns.message
import dns.rcode

import harness
import zones
from fakeupstream import default_handler
from harness import DnsTestCase, answer_data

NOIOURING = os.environ.get("NOIOURING") or os.path.join(harness.ROOT, "build", "tests",
                                                        "noiouring")


def ring_fds(pid):
    """The descriptors of process @pid that are io_uring instances."""
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:[io_uring]":
                out.append(fd)
        except OSError:
            pass
    return out


def io_uring_fds(pid):
    """The io_uring instances process @pid holds."""
    return len(ring_fds(pid))


def ring_completions(pid):
    """Completions posted by the io_uring instances of @pid (fdinfo's CqTail, a counter
    that only grows)."""
    n = 0
    for fd in ring_fds(pid):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                for line in f:
                    if line.startswith("CqTail:"):
                        n += int(line.split()[1])
        except OSError:
            pass
    return n


IORING_OP_RECVMSG = 10


def ring_receives(pid):
    """Receives armed in the io_uring instances of @pid (fdinfo's PollList: a multishot
    recvmsg waiting for its socket shows there as op=10)."""
    n = 0
    for fd in ring_fds(pid):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                n += sum(1 for line in f if line.strip().startswith(
                    "op=%d," % IORING_OP_RECVMSG))
        except OSError:
            pass
    return n


def sockets(pid):
    """The inode numbers of the sockets process @pid holds."""
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link)
    return out


def hole_or_answer(q):
    """Upstream handler: names beginning with "hole" are never answered."""
    if q.msg is not None and not (q.qname or "").lower().startswith("hole"):
        default_handler(q)


def miss_times(port, count, tcp=False):
    """Seconds each of @count queries for new names took, one after another."""
    out = []
    for i in range(count):
        q = harness.make_query("n%d-%d.example.test" % (i, time.monotonic_ns()), "A")
        t0 = time.monotonic()
        if tcp:
            wire = harness.tcp_exchange(port, q.to_wire())
        else:
            wire = harness.udp_exchange(port, q.to_wire())
        out.append(time.monotonic() - t0)
        if wire is None:
            raise AssertionError("query %d: no answer" % i)
    return sorted(out)


def miss_burst(port, count):
    """Seconds until @count queries for new names, sent at once, are all answered."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        t0 = time.monotonic()
        for i in range(count):
            q = harness.make_query("b%d-%d.example.test" % (i, time.monotonic_ns()), "A",
                                   qid=i)
            s.sendto(q.to_wire(), (harness.HOST, port))
        for _ in range(count):
            s.recv(65535)
        return time.monotonic() - t0
    finally:
        s.close()


def burst(port, name, count, host=harness.HOST, pid=None):
    """Sends @count queries for @name from one socket before reading any answer; returns
    the IDs answered with the name's address. With @pid, that process is stopped while
    they are sent, so they all wait in its socket: more than the ring has buffers."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.settimeout(3)
    got = set()
    try:
        if pid:
            os.kill(pid, signal.SIGSTOP)
        try:
            for i in range(count):
                s.sendto(harness.make_query(name, "A", qid=i).to_wire(), (host, port))
        finally:
            if pid:
                os.kill(pid, signal.SIGCONT)
        while len(got) < count:
            try:
                r = dns.message.from_wire(s.recv(65535))
            except socket.timeout:
                break
            if harness.rrs(r) == {(name + ".", "A"): [zones.WWW_IP]}:
                got.add(r.id)
    finally:
        s.close()
    return got


class ReadPaths(DnsTestCase):

    def setUp(self):
        self.up = self.start_fake()

    def agent(self, *args, **kw):
        return self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port, *args, **kw)

    def assert_serves(self, m):
        # a miss (forwarded), then a hit, over UDP; an oversized query gets TC=1 over UDP
        for _ in range(2):
            r = m.dnsq("www.example.test", "A")
            self.assertEqual(answer_data(r, "A"), [zones.WWW_IP])
        self.assertEqual(self.up.count("www.example.test"), 1)
        q = harness.make_query("www.example.test", "TXT")
        wire = q.to_wire() + b"\0" * 2100  # 2,100 bytes of trailing garbage: over the slot
        r = dns.message.from_wire(harness.udp_exchange(m.port, wire))
        self.assertTrue(r.flags & dns.flags.TC, r)
        self.assertEqual(len(r.answer), 0)
        got = burst(m.port, "www.example.test", 500, pid=m.proc.pid)
        self.assertEqual(len(got), 500, "answered %d of 500 queries sent at once" % len(got))
        self.assertAlive(m)

    def test_default_reads_through_io_uring(self):
        m = self.agent("--threads", "2")
        self.assertEqual(io_uring_fds(m.proc.pid), 2, "one ring per worker thread")
        before = ring_completions(m.proc.pid)
        self.assert_serves(m)
        # every datagram read is a completion: the 500 queued queries came through the
        # rings, not through a listener that fell back to epoll
        self.assertGreaterEqual(ring_completions(m.proc.pid) - before, 500)
        self.assertNotIn("io_uring", m.log())

    def test_listener_bursts_larger_than_the_ring_stay_on_the_ring(self):
        # Three listeners with 100 queries each wait while the agent is stopped: more than
        # the ring's 64 buffers, so a multishot receive ends with ENOBUFS. It must be armed
        # again on the ring, not given up for epoll, and every query answered.
        port = harness.free_port()
        hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        m = self.agent(*sum((["--listen", "%s:%d" % (h, port)] for h in hosts[1:]), []),
                       port=port)
        self.assertEqual(m.dnsq("www.example.test", "A")["rcode"], "NOERROR")
        armed = ring_receives(m.proc.pid)  # the listeners' and the upstream socket's
        self.assertGreaterEqual(armed, 3)
        socks = []
        for h in hosts:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(s.close)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.settimeout(3)
            socks.append((h, s))
        os.kill(m.proc.pid, signal.SIGSTOP)
        try:
            for h, s in socks:
                for i in range(100):
                    s.sendto(harness.make_query("www.example.test", "A", qid=i).to_wire(),
                             (h, port))
        finally:
            os.kill(m.proc.pid, signal.SIGCONT)
        for h, s in socks:
            got = set()
            while len(got) < 100:
                try:
                    r = dns.message.from_wire(s.recv(65535))
                except socket.timeout:
                    break
                if harness.rrs(r) == {("www.example.test.", "A"): [zones.WWW_IP]}:
                    got.add(r.id)
            self.assertEqual(len(got), 100, "%s: answered %d of 100" % (h, len(got)))
        self.assertEqual(ring_receives(m.proc.pid), armed, "each listener read by the ring")
        self.assertNotIn("io_uring", m.log())
        self.assertAlive(m)

    def test_forwards_and_tcp_do_not_wait_for_the_loop_tick(self):
        # Upstream sockets, their timers and TCP stay on libuv, whose loop the ring runs
        # when libuv's epoll descriptor is ready or a forward started. Were that hand-off
        # missing, every answer would wait for the worker's 100 ms tick (seen: medians of
        # 0.100 s); on loopback a miss takes a few milliseconds. Bursts of 1, 2, ... 10
        # new names also make new upstream sockets, which libuv watches from its next run.
        m = self.agent()
        bursts = sorted(miss_burst(m.port, k) for k in range(1, 11))
        self.assertLess(bursts[5], 0.03, "median burst %.3f s: %s" % (bursts[5], bursts))
        udp = miss_times(m.port, 10)
        tcp = miss_times(m.port, 10, tcp=True)
        self.assertLess(udp[5], 0.03, "median UDP miss %.3f s: %s" % (udp[5], udp))
        self.assertLess(tcp[5], 0.03, "median TCP miss %.3f s: %s" % (tcp[5], tcp))

    def test_upstream_sockets_are_read_by_the_ring(self):
        # Ten new names at once need several upstream sockets; each is read by a receive
        # in the ring, and stays armed once recycled for the next query (on a new port).
        # Only rings that complete on request (DEFER_TASKRUN, 6.1) read upstream sockets.
        if tuple(int(x) for x in os.uname().release.split(".")[:2]) < (6, 1):
            self.skipTest("kernel before 6.1: upstream sockets stay on epoll")
        m = self.agent()
        self.assertEqual(ring_receives(m.proc.pid), 1, "the listener's receive")
        miss_burst(m.port, 10)
        armed = ring_receives(m.proc.pid)
        self.assertGreaterEqual(armed, 3, "the listener's and those of upstream sockets")
        socks = sockets(m.proc.pid)
        self.assertEqual(answer_data(m.dnsq("www.example.test", "A"), "A"), [zones.WWW_IP])
        self.assertRcode(m.dnsq("nx.example.test", "A"), "NXDOMAIN")
        self.assertEqual(ring_receives(m.proc.pid), armed)
        self.assertEqual(sockets(m.proc.pid) - socks, set(),
                         "new names go out on recycled sockets, not new ones")
        m.proc.send_signal(signal.SIGTERM)
        self.assertEqual(m.proc.wait(10), 0, m.log())

    def test_upstream_bursts_larger_than_the_ring_still_give_the_answers(self):
        # More replies wait on the upstream sockets than the ring has buffers (64): a
        # multishot receive that finds none left ends with ENOBUFS and must be armed again,
        # or the answer behind its burst is never read and the query times out. The agent is
        # stopped while the upstream sends, to each of four queries in flight, 100 replies
        # with a wrong ID and then the answer, so that all of them wait when it reads again.
        if tuple(int(x) for x in os.uname().release.split(".")[:2]) < (6, 1):
            self.skipTest("kernel before 6.1: upstream sockets stay on epoll")
        pid, held, lock = [], [], threading.Lock()
        n = 4

        def burst_then_answer(q):
            if q.msg is None or q.proto != "udp" or not q.qname.startswith("burst"):
                default_handler(q)
                return
            with lock:
                held.append(q)
                if len(held) < n:
                    return
            os.kill(pid[0], signal.SIGSTOP)
            try:
                for h in held:
                    wrong = h.answer()
                    wrong.id = (h.id + 1) & 0xffff
                    for _ in range(100):
                        h.send(wrong)
                    h.send(h.answer())
            finally:
                os.kill(pid[0], signal.SIGCONT)

        up = self.start_fake(handler=burst_then_answer)
        mport = harness.free_port()
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port, "--upstream-timeout",
                               "4000", "--metrics", "127.0.0.1:%d" % mport)
        pid.append(m.proc.pid)

        def ask(i):
            t0 = time.monotonic()
            r = harness.query(m.port, "burst%d.example.test" % i, timeout=10)
            return r, time.monotonic() - t0
        for i, (r, elapsed) in enumerate(harness.concurrently(ask, list(range(n)))):
            self.assertIsNotNone(r, "query %d: no answer" % i)
            self.assertEqual(r.rcode(), dns.rcode.NXDOMAIN, r)  # the zone's own answer
            self.assertLess(elapsed, 3.0, "query %d waited for the 4 s timeout" % i)
        metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport).read()
        # every wrong reply was read, those left on the sockets when the receives ended too
        self.assertIn(b'meshdns_upstream_dropped_total{reason="wrong_id"} %d\n' % (100 * n),
                      metrics)
        self.assertEqual(up.count(proto="udp"), n, "one upstream query per name")
        self.assertAlive(m)

    def test_timeouts_and_stop_with_queries_in_flight(self):
        # Queries of the past are kept for reuse with their timers, and timers started from
        # a ring batch take the loop's clock first and set the ring's next wake-up: after
        # 300 answered misses, queries to a black hole still get SERVFAIL when their 0.3 s
        # timeout ends (the only server), not sooner, and not at the worker's next 100 ms
        # tick (0.3 to 0.4 s: five in a row under 0.36 s by chance has odds of 1 in 100).
        # A stop while queries are in flight waits for them to time out, answers them and
        # exits cleanly (under AddressSanitizer, a leaked socket or query fails the exit
        # status).
        self.up.handler = hole_or_answer
        for args in ([], ["--no-io-uring"]):
            m = self.agent("--upstream-timeout", "300", *args)
            miss_times(m.port, 300)  # raises on a query left unanswered
            for i in range(5):
                t0 = time.monotonic()
                r = harness.query(m.port, "hole%d.example.test" % i, "A", timeout=5)
                waited = time.monotonic() - t0
                self.assertIsNotNone(r, "no answer after the upstream timeout")
                self.assertEqual(r.rcode(), dns.rcode.SERVFAIL, r.to_text())
                self.assertTrue(0.29 <= waited < 0.36, "SERVFAIL after %.3f s" % waited)
            socks = []
            for i in range(5):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.settimeout(5)
                socks.append(s)
                s.sendto(harness.make_query("hole%d.example.test" % (i + 10), "A").to_wire(),
                         (harness.HOST, m.port))
            time.sleep(0.1)
            m.proc.send_signal(signal.SIGTERM)
            for s in socks:
                with s:
                    r = dns.message.from_wire(s.recv(65535))
                self.assertEqual(r.rcode(), dns.rcode.SERVFAIL, r.to_text())
            self.assertEqual(m.proc.wait(10), 0, m.log())
            self.assertNotIn("still read", m.log())
            self.assertNotIn("left open", m.log())

    def test_no_io_uring_reads_on_epoll(self):
        m = self.agent("--no-io-uring")
        self.assertEqual(io_uring_fds(m.proc.pid), 0)
        self.assert_serves(m)

    def test_seccomp_refusing_io_uring_falls_back_to_epoll(self):
        if not os.access(NOIOURING, os.X_OK):
            self.fail("no noiouring helper at %s (set $NOIOURING)" % NOIOURING)
        m = self.agent(wrap=[NOIOURING])
        self.assertEqual(io_uring_fds(m.proc.pid), 0)
        self.assertIn("io_uring not available (Operation not permitted): listeners are read "
                      "on epoll", m.log())
        self.assert_serves(m)

    def test_ipv6_listener_on_the_ring(self):
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("::1", 0))
            except OSError:
                self.skipTest("no IPv6 loopback")
        m = self.agent(host="::1")
        self.assertEqual(io_uring_fds(m.proc.pid), 1)
        r = m.dnsq("www.example.test", "A")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP])
        got = burst(m.port, "www.example.test", 200, host="::1", pid=m.proc.pid)
        self.assertEqual(len(got), 200)

    def test_stopped_agent_leaves_its_port_free(self):
        # the ring holds a reference to each socket it reads: a stop that left it there
        # would keep the address bound after the process is gone
        for args in ([], ["--no-io-uring"]):
            m = self.agent(*args)
            burst(m.port, "www.example.test", 100)
            m.proc.send_signal(signal.SIGTERM)
            self.assertEqual(m.proc.wait(10), 0, m.log())
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # no SO_REUSEPORT
            try:
                s.bind((harness.HOST, m.port))
            finally:
                s.close()
            time.sleep(0.05)


if __name__ == "__main__":
    harness.main()
