"""Integration test harness: real processes on 127.0.0.1, real clients.

Starts meshdns (path from $MESHDNS, default build/meshdns), unbound and dnsmasq as kube-dns
and upstream stand-ins, and fake upstreams (fakeupstream.py), each on a free port. Every
process is stopped by its PID and every temporary directory removed through unittest
cleanups, so a failing test leaves nothing behind. Readiness is checked by querying, with
bounded waits; nothing sleeps a fixed time to wait for a server.

Clients: `dnsq` (tests/tools/dnsq.c, path from $DNSQ) for byte-exact assertions, kdig/dig
where a stock client is the point, and small socket helpers here.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from fakeupstream import FakeUpstream
import zones

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MESHDNS = os.environ.get("MESHDNS") or os.path.join(ROOT, "build", "meshdns")
DNSQ = os.environ.get("DNSQ") or os.path.join(ROOT, "build", "tests", "dnsq")
HOST = "127.0.0.1"


# ---- small tools --------------------------------------------------------------------------

def netns(tc, prefix):
    """A network namespace of test case @tc's own, named @prefix and this process's ID, with
    lo up; deleted at cleanup. Returns its name."""
    name = "%s-%d" % (prefix, os.getpid())
    subprocess.run(["ip", "netns", "add", name], check=True)
    tc.addCleanup(subprocess.run, ["ip", "netns", "delete", name])
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return name


def free_port(host=None):
    """A port free for both UDP and TCP on @host (HOST) right now."""
    host = host or HOST
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        u = socket.socket(fam, socket.SOCK_DGRAM)
        t = socket.socket(fam, socket.SOCK_STREAM)
        try:
            u.bind((host, 0))
            port = u.getsockname()[1]
            t.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port")


def loopback_with_port53():
    """A random 127.53.x.y whose port 53 is free for UDP and TCP: resolv.conf names
    servers without a port."""
    rnd = random.Random()
    for _ in range(50):
        addr = "127.53.%d.%d" % (rnd.randrange(1, 255), rnd.randrange(1, 255))
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            u.bind((addr, 53))
            t.bind((addr, 53))
            return addr
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no loopback address with a free port 53")


def wait_until(pred, timeout, what, interval=0.05):
    """Calls @pred until it returns a true value (returned) or @timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def make_query(name, qtype="A", rdclass="IN", edns=None, do=False, cd=False, rd=True,
               qid=None):
    """A query as a dns.message; @edns is the payload size or None for no OPT."""
    q = dns.message.make_query(name, qtype, rdclass,
                               use_edns=0 if (edns is not None or do) else False,
                               payload=edns or 1232, want_dnssec=do)
    if not rd:
        q.flags &= ~dns.flags.RD
    if cd:
        q.flags |= dns.flags.CD
    if qid is not None:
        q.id = qid
    return q


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def hostport(host, port):
    """ADDR:PORT as meshdns flags spell it ([V6]:PORT for IPv6)."""
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def udp_exchange(port, wire, timeout=2.0, host=HOST):
    """Sends @wire over UDP and returns the first datagram back, or None on timeout."""
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        s.send(wire)
        return s.recv(65535)
    except (socket.timeout, ConnectionRefusedError):
        return None
    finally:
        s.close()


def recv_exact(sock, n):
    """Reads exactly @n bytes from a TCP socket; None when it closes first."""
    buf = b""
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            return None
        buf += data
    return buf


def tcp_read_msg(sock):
    """Reads one length-prefixed DNS message; None on EOF."""
    head = recv_exact(sock, 2)
    if head is None:
        return None
    return recv_exact(sock, struct.unpack("!H", head)[0])


def tcp_exchange(port, wire, timeout=2.0, host=HOST):
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(struct.pack("!H", len(wire)) + wire)
        return tcp_read_msg(s)
    except socket.timeout:
        return None
    finally:
        s.close()


def query(port, name, qtype="A", tcp=False, timeout=2.0, **kw):
    """Asks HOST:@port; returns the reply as a dns.message, or None on timeout."""
    q = make_query(name, qtype, **kw)
    wire = (tcp_exchange if tcp else udp_exchange)(port, q.to_wire(), timeout)
    return dns.message.from_wire(wire) if wire is not None else None


def concurrently(fn, args, timeout=20):
    """Calls fn(arg) for every arg of @args, each on its own thread, all released at once;
    returns the results in order (None where a call raised or did not finish)."""
    results = [None] * len(args)
    start = threading.Barrier(len(args))

    def one(i):
        try:
            start.wait(timeout=10)
            results[i] = fn(args[i])
        except Exception as e:  # the caller sees None and says which one failed
            print("concurrent call %d failed: %r" % (i, e))
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(args))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    return results


def rrs(msg, section="answer"):
    """{(owner lowercased, type): sorted rdata texts} of a dns.message section."""
    out = {}
    for rrset in getattr(msg, section):
        key = (rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype))
        out.setdefault(key, []).extend(r.to_text() for r in rrset)
    return {k: sorted(v) for k, v in out.items()}


def run_dnsq(port, name=None, qtype="A", *opts, raw=None, timeout_ms=3000, host=HOST):
    """Runs dnsq and returns its JSON object."""
    argv = [DNSQ, "--timeout", str(timeout_ms)]
    if raw is not None:
        argv += ["--raw", raw.hex() if isinstance(raw, bytes) else raw]
    argv += list(opts) + [host, str(port)]
    if raw is None:
        argv += [name, qtype]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_ms / 1000 + 10)
    if out.returncode != 0:
        raise AssertionError("dnsq failed (%d): %s" % (out.returncode, out.stderr))
    return json.loads(out.stdout)


def answer_data(reply, rtype=None):
    """Sorted rdata texts of the answer section of a dnsq reply (optionally one type)."""
    return sorted(rr["rdata"] for rr in reply.get("answer", [])
                  if rtype is None or rr["type"] == rtype)


# ---- processes ----------------------------------------------------------------------------

class Process:
    """A child process with its output in a log file, stopped by its PID."""

    def __init__(self, argv, log_path, env=None):
        self.argv = argv
        self.log_path = log_path
        self.logf = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout):
        """Exit status, or None if still running after @timeout seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Stops the process (@sig, then SIGKILL after @timeout). Returns the exit status."""
        if self.alive():
            os.kill(self.pid, sig)
            if self.wait(timeout) is None:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if not self.logf.closed:
            self.logf.close()
        return self.proc.returncode

    def log(self):
        if not self.logf.closed:
            self.logf.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def make_tmpdir(cleanup, prefix="meshdns-itest-"):
    d = tempfile.mkdtemp(prefix=prefix)
    cleanup(shutil.rmtree, d, True)
    return d


def _probe(port, tcp=False, host=HOST):
    """True when something answers DNS on @host:@port (any rcode)."""
    q = make_query("version.bind", "TXT", rdclass="CH").to_wire()
    try:
        r = tcp_exchange(port, q, 0.3, host) if tcp else udp_exchange(port, q, 0.3, host)
    except OSError:
        return False
    return r is not None


class Meshdns:
    """meshdns on HOST:port, with --no-interface and no ServiceEntry source."""

    BASE = ["--no-interface", "--serviceentries", "none", "--metrics", "off",
            "--health", "off"]

    def __init__(self, cleanup, tmp, args, port=None, wrap=None, ready=True, base=True,
                 env=None, host=HOST, listen=True):
        self.host = host
        self.port = port or free_port(host)
        argv = [MESHDNS] + (["--listen", hostport(host, self.port)] if listen else [])
        argv += (self.BASE if base else []) + list(args)
        argv += os.environ.get("MESHDNS_EXTRA_ARGS", "").split()  # e.g. --no-io-uring
        self.argv = (wrap or []) + argv
        if env is None:  # no cluster DNS from the environment unless a test asks for it
            env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE_DNS_")}
        self.proc = Process(self.argv, os.path.join(tmp, "meshdns-%d.log" % self.port), env)
        cleanup(self.proc.stop)
        if ready:
            self.wait_ready()

    def wait_ready(self, timeout=10):
        def ready():
            if not self.proc.alive():
                raise AssertionError("meshdns exited with %s:\n%s"
                                     % (self.proc.proc.returncode, self.proc.log()))
            return _probe(self.port, host=self.host) and _probe(self.port, True, self.host)
        wait_until(ready, timeout, "meshdns on port %d" % self.port)

    def alive(self):
        return self.proc.alive()

    def log(self):
        return self.proc.log()

    def dnsq(self, name=None, qtype="A", *opts, **kw):
        return run_dnsq(self.port, name, qtype, *opts, host=self.host, **kw)


class Unbound:
    """unbound authoritative for @zone_texts ({origin: text}) from auth-zones; every query
    is logged (log-queries) so that a test can count what reached it."""

    def __init__(self, cleanup, tmp, zone_texts, name="unbound", extra=""):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.logfile = os.path.join(self.dir, "unbound.log")
        auth = []
        nodefault = []
        for origin, text in zone_texts.items():
            path = os.path.join(self.dir, origin.rstrip(".") + ".zone")
            with open(path, "w") as f:
                f.write(text)
            auth.append('auth-zone:\n  name: "%s"\n  zonefile: "%s"\n  for-downstream: yes\n'
                        '  for-upstream: no\n  fallback-enabled: no\n' % (origin, path))
            # unbound's built-in zones (test., 10.in-addr.arpa., d.f.ip6.arpa. ...) would
            # shadow ours
            labels = origin.rstrip(".").split(".")
            for i in range(len(labels)):
                zone = ".".join(labels[i:]) + "."
                if zone != "arpa." and '"%s"' % zone not in "".join(nodefault):
                    nodefault.append('  local-zone: "%s" nodefault\n' % zone)
        conf = os.path.join(self.dir, "unbound.conf")
        with open(conf, "w") as f:
            f.write("server:\n"
                    "  interface: %s@%d\n  port: %d\n  do-ip6: no\n"
                    "  username: \"\"\n  chroot: \"\"\n  directory: \"%s\"\n"
                    "  pidfile: \"%s/unbound.pid\"\n  use-syslog: no\n  logfile: \"%s\"\n"
                    "  log-queries: yes\n  verbosity: 1\n  do-daemonize: no\n"
                    "  num-threads: 1\n  so-reuseport: no\n  module-config: \"iterator\"\n"
                    "  access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: yes\n"
                    "  msg-cache-size: 0\n  rrset-cache-size: 0\n"
                    "%s%s\n"
                    "remote-control:\n  control-enable: no\n%s"
                    % (HOST, self.port, self.port, self.dir, self.dir, self.logfile,
                       "".join(nodefault), extra, "".join(auth)))
        self.proc = Process(["unbound", "-d", "-c", conf], os.path.join(self.dir, "out.log"))
        cleanup(self.proc.stop)
        first = next(iter(zone_texts))

        def ready():
            if not self.proc.alive():
                raise AssertionError("unbound exited:\n%s\n%s" % (self.proc.log(),
                                                                  self._read_log()))
            r = query(self.port, first, "SOA", timeout=0.3)
            return r is not None and r.rcode() == dns.rcode.NOERROR and r.answer
        wait_until(ready, 10, "unbound on port %d" % self.port)

    def _read_log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def count(self, name, qtype=None):
        """Queries for @name (case-insensitive) [of @qtype] in unbound's query log."""
        n = 0
        want = name.lower().rstrip(".") + "."
        for m in re.finditer(r"info: \S+ (\S+) (\S+) IN", self._read_log()):
            if m.group(1).lower() == want and (qtype is None or m.group(2) == qtype):
                n += 1
        return n


class Dnsmasq:
    """dnsmasq as a kube-dns stand-in: host records (A and PTR) and --local domains, every
    query logged."""

    def __init__(self, cleanup, tmp, args, name="dnsmasq"):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.logfile = os.path.join(self.dir, "dnsmasq.log")
        argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--listen-address=%s" % HOST, "--bind-interfaces",
                "--port=%d" % self.port, "--user=root", "--group=root", "--pid-file",
                "--log-queries", "--log-facility=%s" % self.logfile, "--cache-size=0"]
        self.proc = Process(argv + list(args), os.path.join(self.dir, "out.log"))
        cleanup(self.proc.stop)

        def ready():
            if not self.proc.alive():
                raise AssertionError("dnsmasq exited:\n%s" % self.proc.log())
            return _probe(self.port)
        wait_until(ready, 10, "dnsmasq on port %d" % self.port)

    def count(self, name):
        want = name.lower().rstrip(".")
        try:
            with open(self.logfile, errors="replace") as f:
                text = f.read()
        except OSError:
            return 0
        return sum(1 for m in re.finditer(r"query\[\S+\] (\S+) from", text)
                   if m.group(1).lower() == want)


# ---- test case base -----------------------------------------------------------------------

class DnsTestCase(unittest.TestCase):
    """Helpers that start what a test needs and stop it afterwards, even on failure.

    Per test: self.start_*(). Per class (shared peers, started in setUpClass): the
    class_* classmethods.
    """

    maxDiff = None

    # per-test starters
    def tmp(self):
        if not getattr(self, "_tmp", None):
            self._tmp = make_tmpdir(self.addCleanup)
            self.addCleanup(setattr, self, "_tmp", None)
        return self._tmp

    def start_meshdns(self, *args, **kw):
        return Meshdns(self.addCleanup, self.tmp(), args, **kw)

    def start_fake(self, zone_texts=None, handler=None, host=HOST, port=0):
        """A fake upstream (example.test. from the upstream flavour unless @zone_texts)."""
        f = FakeUpstream(zone_texts if zone_texts is not None
                         else {"example.test.": zones.example_zone("upstream")},
                         handler, host, port).start()
        self.addCleanup(f.stop)
        return f

    def start_unbound(self, zone_texts, name="unbound", extra=""):
        return Unbound(self.addCleanup, self.tmp(), zone_texts, name, extra)

    def start_dnsmasq(self, args, name="dnsmasq"):
        return Dnsmasq(self.addCleanup, self.tmp(), args, name)

    # per-class starters
    @classmethod
    def class_tmp(cls):
        if not getattr(cls, "_class_tmp", None):
            cls._class_tmp = make_tmpdir(cls.addClassCleanup)
            cls.addClassCleanup(setattr, cls, "_class_tmp", None)
        return cls._class_tmp

    @classmethod
    def class_unbound(cls, zone_texts, name="unbound", extra=""):
        return Unbound(cls.addClassCleanup, cls.class_tmp(), zone_texts, name, extra)

    @classmethod
    def class_fake(cls, zone_texts=None, handler=None):
        f = FakeUpstream(zone_texts if zone_texts is not None
                         else {"example.test.": zones.example_zone("upstream")},
                         handler).start()
        cls.addClassCleanup(f.stop)
        return f

    # assertions
    def assertRcode(self, reply, rcode):
        self.assertNotIn("timeout", reply, "no reply")
        self.assertNotIn("error", reply, "no DNS reply: %r" % (reply,))
        self.assertEqual(reply["rcode"], rcode, "reply: %s" % json.dumps(reply, indent=1))

    def assertAlive(self, m):
        self.assertTrue(m.alive(), "meshdns died: status %s\n%s"
                        % (m.proc.proc.returncode, m.log()))


def main():
    unittest.main(verbosity=2)
