#!/usr/bin/env python3
"""ServiceEntry sync benchmark of --serviceentries kubernetes (PERF.md: 100,000 entries listed
and served within 3 s of start, peak RSS under 64 MiB, a watch event visible within 50 ms).

Starts the fake kube-apiserver (tests/apiserver) on 127.0.0.1 with N generated ServiceEntries
(default 100,000, one namespace, hosts se-<i>.bulk.global), then meshdns against it, and
reports:

  - sync_s: from the agent's start to the first answer for the entry the list sends last
    (se-<N-1>.bulk.global), polled every 2 ms with a UDP query;
  - server_list_s: how long a plain HTTPS GET of the same list takes (the server's share);
  - peak_rss_kB (VmHWM) and steady_rss_kB (VmRSS 3 s after the sync) of the agent;
  - event-to-answer delay: M times, one new ServiceEntry through the control API, then UDP
    queries every 0.5 ms until it answers; median and p95, measured from the start of the
    control call (so the figure includes the control round trip and the server's write);
    the last one is checked with kdig too;
  - idle RSS of `--serviceentries none` (the PERF.md idle_kB case) for comparison.

Usage: MESHDNS=build/meshdns python3 bench/sync_bench.py [--count N] [--events M] [--json]
Loopback only; every process it starts is stopped by PID.
"""

import argparse
import json
import os
import random
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "apiserver"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from control import ApiServerProcess, service_entry  # noqa: E402
from test_kapi import free_port  # noqa: E402

MESHDNS = os.environ.get("MESHDNS") or os.path.join(HERE, "..", "build", "meshdns")


def dns_query(name, qid):
    q = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + b"\0" + struct.pack(">HH", 1, 1)


def skip_name(msg, off):
    while True:
        n = msg[off]
        if n >= 0xC0:
            return off + 2
        if n == 0:
            return off + 1
        off += n + 1


def parse_reply(msg):
    """(rcode, [IPv4 addresses]) of a reply."""
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        off = skip_name(msg, off) + 4
    addrs = []
    for _ in range(an):
        off = skip_name(msg, off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
        off += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(msg[off:off + 4]))
        off += rdlen
    return flags & 0xF, addrs


class Resolver:
    def __init__(self, port):
        self.addr = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.02)  # short: a query sent before the agent binds is lost
        self.qid = random.randrange(65536)

    def ask(self, name):
        self.qid = (self.qid + 1) & 0xFFFF
        self.sock.sendto(dns_query(name, self.qid), self.addr)
        while True:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                return None, []
            if struct.unpack(">H", data[:2])[0] == self.qid:
                return parse_reply(data)


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def start_agent(args, log):
    return subprocess.Popen([MESHDNS, "--no-interface", "--upstream",
                             "127.0.0.1:%d" % free_port(), "--metrics", "off", "--health",
                             "off"] + args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=log)


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def idle_rss_none():
    port = free_port()
    with tempfile.TemporaryFile() as log:
        p = start_agent(["--listen", "127.0.0.1:%d" % port, "--serviceentries", "none"], log)
        try:
            r = Resolver(port)
            deadline = time.monotonic() + 5
            while r.ask("x.example")[0] is None and time.monotonic() < deadline:
                pass
            time.sleep(1)
            return proc_status(p.pid)["VmRSS"]
        finally:
            stop(p)


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    opt = ap.parse_args()
    res = {"count": opt.count}

    res["idle_rss_none_kB"] = idle_rss_none()
    with ApiServerProcess() as srv:
        t = time.monotonic()
        srv.control.generate(opt.count, namespace="bulk")
        res["generate_s"] = round(time.monotonic() - t, 3)
        # the server's share: one plain GET of the list the agent will ask for (this also
        # warms the server's serialisation, as a real API server's watch cache is warm)
        t = time.monotonic()
        subprocess.run(["curl", "-sS", "-o", "/dev/null", "--cacert", srv.ca, "-H",
                        "Authorization: Bearer " + srv.token,
                        srv.api_url + "/apis/networking.istio.io/v1/serviceentries"
                        "?resourceVersion=0&limit=500"], check=True)
        res["server_list_s"] = round(time.monotonic() - t, 3)

        port = free_port()
        last = "se-%d.bulk.global" % (opt.count - 1)
        want_last = "240.%d.%d.%d" % (((opt.count - 1) >> 16) & 255, ((opt.count - 1) >> 8) & 255,
                                      (opt.count - 1) & 255)
        log = tempfile.NamedTemporaryFile(prefix="sync-bench-", suffix=".log", delete=False)
        t0 = time.monotonic()
        p = start_agent(["--listen", "127.0.0.1:%d" % port, "--serviceentries", "kubernetes",
                         "--kube-api", srv.api_url, "--kube-token-file", srv.token_file,
                         "--kube-ca-file", srv.ca, "--zone", "global"], log)
        try:
            r = Resolver(port)
            peak = 0
            while True:
                rcode, addrs = r.ask(last)
                if rcode == 0 and addrs == [want_last]:
                    break
                peak = max(peak, proc_status(p.pid)["VmHWM"])
                if time.monotonic() - t0 > 60 or p.poll() is not None:
                    raise SystemExit("no sync within 60 s; see %s" % log.name)
                time.sleep(0.002)
            res["sync_s"] = round(time.monotonic() - t0, 3)
            time.sleep(3)
            st = proc_status(p.pid)
            res["peak_rss_kB"] = st["VmHWM"]
            res["steady_rss_kB"] = st["VmRSS"]

            delays = []
            for i in range(opt.events):
                name = "lat-%d" % i
                addr = "241.0.%d.%d" % (i >> 8, i & 255)
                t = time.monotonic()
                srv.control.apply(service_entry(name, "bench", ["%s.bench.global" % name], [addr]))
                while r.ask("%s.bench.global" % name) != (0, [addr]):
                    if time.monotonic() - t > 5:
                        raise SystemExit("event %d not visible within 5 s" % i)
                    time.sleep(0.0005)
                delays.append((time.monotonic() - t) * 1000.0)
            kd = subprocess.run(["kdig", "@127.0.0.1", "-p", str(port), "+short",
                                 "lat-%d.bench.global" % (opt.events - 1)],
                                capture_output=True, text=True).stdout.split()
            res["kdig_check"] = kd == [addr]
            res["event_ms_median"] = round(statistics.median(delays), 2)
            res["event_ms_p95"] = round(percentile(delays, 95), 2)
            res["event_ms_max"] = round(max(delays), 2)
            res["rss_after_events_kB"] = proc_status(p.pid)["VmRSS"]
        finally:
            stop(p)
            log.close()
        with open(log.name) as f:
            res["agent_list_line"] = next((ln.strip() for ln in f if "listed" in ln), "")
        os.unlink(log.name)

    if opt.json:
        print(json.dumps(res))
        return
    print("ServiceEntries                      %d" % res["count"])
    print("server: plain GET of the list       %.3f s" % res["server_list_s"])
    print("agent start -> last entry answered  %.3f s   (target < 3 s)" % res["sync_s"])
    print("peak RSS (VmHWM)                    %d kB   (target < 65536 kB)" % res["peak_rss_kB"])
    print("steady RSS (VmRSS, 3 s after sync)  %d kB" % res["steady_rss_kB"])
    print("event -> answer, median / p95 / max %.2f / %.2f / %.2f ms over %d   (target < 50 ms)"
          % (res["event_ms_median"], res["event_ms_p95"], res["event_ms_max"], opt.events))
    print("kdig sees the last event            %s" % ("yes" if res["kdig_check"] else "NO"))
    print("idle RSS, --serviceentries none     %d kB   (target <= 3000 kB)"
          % res["idle_rss_none_kB"])
    print("agent: %s" % res["agent_list_line"])


if __name__ == "__main__":
    main()
