"""Helpers shared by the test_reliability_*.py files (reliability.md sections 4 and 7).

- figure(): prints a measured figure as `FIGURE name: value` (collected in the README, "Reliability").
- mesh_file(): a ServiceEntry list for --serviceentries FILE.
- UdpLoad: a bounded UDP query sender/receiver on one socket that times every reply.
- dnsperf(): runs dnsperf and parses its summary.
- NetNs: a network namespace made for one test, and sockets opened inside it.
- rss_kib(), server_side_conns(): from test_tcp.py, re-exported.
"""

import ctypes
import json
import os
import re
import select
import socket
import subprocess
import threading
import time

import dns.edns
import dns.message
import dns.rcode

import harness
from test_tcp import rss_kib, server_side_conns  # noqa: F401 (shared)


def figure(name, value):
    """Prints one figure a test measured, in a form the README quotes."""
    print("FIGURE %s: %s" % (name, value), flush=True)


def ede_codes(msg):
    """EDE codes (RFC 8914) of a dns.message reply."""
    return [o.code for o in (msg.options or []) if isinstance(o, dns.edns.EDEOption)]


def mesh_file(path, hosts):
    """Writes a ServiceEntry List to @path: one MESH_INTERNAL entry per host of @hosts
    ({host: [address, ...]}). Returns @path."""
    items = []
    for i, (host, addrs) in enumerate(sorted(hosts.items())):
        items.append({
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": "se-%d" % i, "namespace": "default",
                         "creationTimestamp": "2024-01-01T00:00:%02dZ" % (i % 60),
                         "resourceVersion": str(100 + i)},
            "spec": {"hosts": [host], "addresses": list(addrs),
                     "location": "MESH_INTERNAL", "resolution": "STATIC",
                     "ports": [{"name": "http", "number": 80, "protocol": "HTTP"}]},
        })
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
    return path


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100.0))]


class UdpLoad:
    """Sends queries from one UDP socket (bound to @src) at a bounded rate and records the
    time of each send and of its reply (matched by ID and name).

    run(names, qps, seconds) is bounded by len(names), qps*seconds and a wall-clock
    deadline; results() then waits up to @grace seconds for late replies.
    """

    def __init__(self, port, src="127.0.0.1", host=harness.HOST, edns=1232):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((src, 0))
        self.sock.setblocking(False)
        self.dest = (host, port)
        self.edns = edns
        self.sent = {}      # id -> (name, t_sent)
        self.replies = {}   # id -> (t_reply, dns.message)
        self.stop = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def close(self):
        self.stop.set()
        self.reader.join(timeout=3)
        self.sock.close()

    def _read(self):
        while not self.stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if not r:
                continue
            for _ in range(256):
                try:
                    data = self.sock.recv(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    return
                t = time.monotonic()
                try:
                    msg = dns.message.from_wire(data)
                except Exception:
                    continue
                if msg.id in self.sent and msg.id not in self.replies:
                    self.replies[msg.id] = (t, msg)

    def run(self, names, qps, seconds, qtype="A"):
        """Sends up to qps*seconds queries cycling over @names (each ID used once)."""
        total = min(int(qps * seconds), 65535 - len(self.sent))
        t0 = time.monotonic()
        deadline = t0 + seconds + 5
        next_id = len(self.sent) + 1
        for i in range(total):
            due = t0 + i / float(qps)
            now = time.monotonic()
            if now > deadline:
                break
            if due > now:
                time.sleep(due - now)
            name = names[i % len(names)]
            q = harness.make_query(name, qtype, edns=self.edns, qid=next_id)
            self.sent[next_id] = (name, time.monotonic())
            next_id += 1
            try:
                self.sock.sendto(q.to_wire(), self.dest)
            except BlockingIOError:
                pass
        return time.monotonic() - t0

    def results(self, grace=3.0):
        """{id: (name, latency s or None, reply or None)} after waiting up to @grace s for
        every reply."""
        deadline = time.monotonic() + grace
        while len(self.replies) < len(self.sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        out = {}
        for qid, (name, ts) in self.sent.items():
            if qid in self.replies:
                t, msg = self.replies[qid]
                out[qid] = (name, t - ts, msg)
            else:
                out[qid] = (name, None, None)
        return out


def summarize(results):
    """Counts and latencies of UdpLoad.results(): a dict with sent, answered, lost, rcodes
    {text: n}, p50_ms, p99_ms, max_ms."""
    lat = [r[1] for r in results.values() if r[1] is not None]
    rcodes = {}
    for _, _, msg in results.values():
        if msg is not None:
            k = dns.rcode.to_text(msg.rcode())
            rcodes[k] = rcodes.get(k, 0) + 1
    ms = lambda v: None if v is None else round(v * 1000, 2)  # noqa: E731
    return {"sent": len(results), "answered": len(lat), "lost": len(results) - len(lat),
            "rcodes": rcodes, "p50_ms": ms(percentile(lat, 50)),
            "p99_ms": ms(percentile(lat, 99)), "max_ms": ms(max(lat) if lat else None)}


# ---- dnsperf --------------------------------------------------------------------------------

def dnsperf(port, datafile, seconds, qps, timeout=2, clients=10, host=harness.HOST,
            extra=()):
    """Starts dnsperf (returns the Popen; its output goes to a pipe)."""
    argv = ["dnsperf", "-s", host, "-p", str(port), "-d", datafile, "-l", str(seconds),
            "-Q", str(qps), "-t", str(timeout), "-c", str(clients), "-q", "1000"] + list(extra)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True)


def parse_dnsperf(text):
    """{sent, completed, lost, rcodes {text: n}} from dnsperf's summary."""
    def num(label):
        m = re.search(r"%s:\s+(\d+)" % re.escape(label), text)
        if not m:
            raise AssertionError("no '%s' in dnsperf output:\n%s" % (label, text))
        return int(m.group(1))
    rcodes = {}
    m = re.search(r"Response codes:\s+(.*)", text)
    if m:
        for code, n in re.findall(r"([A-Z]+) (\d+) \(", m.group(1)):
            rcodes[code] = int(n)
    return {"sent": num("Queries sent"), "completed": num("Queries completed"),
            "lost": num("Queries lost"), "rcodes": rcodes}


# ---- network namespaces ---------------------------------------------------------------------

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetNs:
    """A network namespace named @name (created, loopback up; deleted by cleanup)."""

    def __init__(self, cleanup, name):
        self.name = name
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "netns", "add", name], check=True)
        cleanup(subprocess.run, ["ip", "netns", "del", name], capture_output=True)
        self.ip("link", "set", "lo", "up")

    def ip(self, *args, check=True):
        """Runs `ip -n NS ARGS`; returns its stdout."""
        out = subprocess.run(["ip", "-n", self.name] + list(args), capture_output=True,
                             text=True)
        if check and out.returncode != 0:
            raise AssertionError("ip -n %s %s: %s" % (self.name, " ".join(args), out.stderr))
        return out.stdout

    def exec_argv(self, argv):
        return ["ip", "netns", "exec", self.name] + list(argv)

    def socket(self, family=socket.AF_INET, kind=socket.SOCK_DGRAM):
        """A socket that belongs to the namespace: made by a thread that entered it (setns
        changes only the calling thread)."""
        out = {}

        def make():
            fd = os.open("/run/netns/%s" % self.name, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    out["err"] = OSError(ctypes.get_errno(), "setns")
                    return
                out["sock"] = socket.socket(family, kind)
            finally:
                os.close(fd)
        t = threading.Thread(target=make)
        t.start()
        t.join(timeout=5)
        if "sock" not in out:
            raise out.get("err") or AssertionError("setns thread failed")
        return out["sock"]

    def query(self, host, port, name, qtype="A", timeout=1.0, tcp=False):
        """One query from inside the namespace; the reply (dns.message) or None."""
        wire = harness.make_query(name, qtype).to_wire()
        s = self.socket(kind=socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        s.settimeout(timeout)
        try:
            s.connect((host, port))
            if tcp:
                s.sendall(len(wire).to_bytes(2, "big") + wire)
                data = harness.tcp_read_msg(s)
            else:
                s.send(wire)
                data = s.recv(65535)
            return dns.message.from_wire(data) if data else None
        except (socket.timeout, OSError):
            return None
        finally:
            s.close()
