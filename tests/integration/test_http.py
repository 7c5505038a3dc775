"""HTTP endpoints of a real meshdns on 127.0.0.1: /health, /ready, /metrics (INTERFACE.md).

meshdns comes from $MESHDNS (default build/meshdns). The upstream is a small UDP DNS
responder in this process that counts what it is asked; queries are sent with kdig. Every
process is stopped by its PID in a cleanup, so a failing test leaves nothing behind. Waits
are bounded polls, never fixed sleeps.

Run alone:  MESHDNS=build/meshdns python3 tests/integration/test_http.py -v
"""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import harness

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MESHDNS = os.environ.get("MESHDNS") or os.path.join(ROOT, "build", "meshdns")
HOST = "127.0.0.1"
KDIG = shutil.which("kdig")


def free_port():
    """A port free for both UDP and TCP on HOST right now (the harness's)."""
    return harness.free_port(HOST)


def wait_for(what, pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


# ---- upstream stand-in ---------------------------------------------------------------------

class Upstream:
    """Answers every A query with 192.0.2.1 (TTL 300), and names starting with "nx" with
    NXDOMAIN. Counts the queries it receives."""

    def __init__(self, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @staticmethod
    def answer(q):
        if len(q) < 12:
            return None
        qid, flags, qd = struct.unpack("!HHH", q[:6])
        if qd != 1 or flags & 0x8000:
            return None
        i = 12
        labels = []
        while i < len(q) and q[i] != 0:
            labels.append(q[i + 1:i + 1 + q[i]])
            i += 1 + q[i]
        qend = i + 5
        if qend > len(q):
            return None
        question = q[12:qend]
        qtype = struct.unpack("!H", q[qend - 4:qend - 2])[0]
        rd = flags & 0x0100
        if labels and labels[0].lower().startswith(b"nx"):
            soa = (b"\xc0\x0c" + struct.pack("!HHIH", 6, 1, 60, 22) + b"\x00\x00"
                   + struct.pack("!IIIII", 1, 60, 60, 60, 60))
            return struct.pack("!HHHHHH", qid, 0x8083 | rd, 1, 0, 1, 0) + question + soa
        if qtype != 1:
            return struct.pack("!HHHHHH", qid, 0x8080 | rd, 1, 0, 0, 0) + question
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + bytes([192, 0, 2, 1])
        return struct.pack("!HHHHHH", qid, 0x8080 | rd, 1, 1, 0, 0) + question + rr

    def run(self):
        while not self.stopping:
            try:
                q, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.queries += 1
            r = self.answer(q)
            if r:
                self.sock.sendto(r, peer)

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


# ---- meshdns ----------------------------------------------------------------------------------

class Agent:
    def __init__(self, test, args, netns=None):
        self.log = tempfile.NamedTemporaryFile(prefix="meshdns-http-", suffix=".log",
                                               delete=False)
        test.addCleanup(os.unlink, self.log.name)
        cmd = [MESHDNS] + list(args)
        if netns:
            cmd = ["ip", "netns", "exec", netns] + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        test.addCleanup(self.kill)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()

    def stop(self):
        """SIGTERM, then the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def logtext(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()


def http(port, path, method="GET", host=HOST, timeout=3.0):
    """(status, headers, body text) of one request; status 0 when nothing answers."""
    req = urllib.request.Request("http://%s:%d%s" % (host, port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()
    except (urllib.error.URLError, ConnectionError, socket.timeout):
        return 0, None, ""


def raw_http(port, data, timeout=3.0):
    """Sends raw bytes, returns everything the server sends back before closing."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return out
            out += chunk


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def parse_metrics(text):
    """{(name, ((label, value), ...)): value} and {name: type}; fails on a malformed line."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert name not in types, "family %s declared twice" % name
            types[name] = typ
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels, rest = [], m.group(2) or ""
        while rest:
            lm = LABEL.match(rest)
            assert lm, "bad labels in %r" % line
            labels.append((lm.group(1), lm.group(2)))
            rest = rest[lm.end():]
        key = (m.group(1), tuple(sorted(labels)))
        assert key not in samples, "series twice: %r" % line
        samples[key] = float(m.group(3))
    return samples, types


def metric(samples, name, **labels):
    """A sample's value; 0 when the series is absent (counters start at 0)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class HttpTestCase(unittest.TestCase):

    def setUp(self):
        if not os.access(MESHDNS, os.X_OK):
            self.fail("no meshdns binary at %s (set $MESHDNS)" % MESHDNS)
        self.up = Upstream()
        self.addCleanup(self.up.stop)

    def start(self, *extra, dns_port=None, health=None, metrics=None, wait_http=True,
              wait_dns=True):
        """Starts meshdns on 127.0.0.1 with the upstream stand-in; returns the agent with
        .dns, .health and .metrics ports."""
        dns_port = dns_port or free_port()
        health = free_port() if health is None else health
        metrics = free_port() if metrics is None else metrics
        args = ["--no-interface", "--listen", "%s:%d" % (HOST, dns_port),
                "--upstream", "%s:%d" % (HOST, self.up.port),
                "--cluster-dns", "%s:%d" % (HOST, self.up.port)]
        if "--serviceentries" not in extra:
            args += ["--serviceentries", "none"]
        if "--health" not in extra:
            args += ["--health", "%s:%d" % (HOST, health)]
        if "--metrics" not in extra:
            args += ["--metrics", "%s:%d" % (HOST, metrics)]
        a = Agent(self, args + list(extra))
        a.dns, a.health, a.metrics = dns_port, health, metrics
        # its own log line: with a shared port, another instance may answer HTTP already.
        # DNS is served only after the first ServiceEntry sync; HTTP from the start.
        wait_for("meshdns to start serving",
                 lambda: a.proc.poll() is not None or "serving with" in a.logtext() or
                 (not wait_dns and "info [http] serving" in a.logtext()))
        if wait_http:
            self.assertIsNone(a.proc.poll(), "meshdns exited: %s" % a.logtext())
            self.assertEqual(http(health, "/health")[0], 200)
        return a

    def query(self, agent, name, qtype="A", tcp=False):
        cmd = [KDIG, "@%s" % HOST, "-p", str(agent.dns), "+retry=0", "+timeout=3",
               "+noall", "+header", name, qtype]
        if tcp:
            cmd.insert(-2, "+tcp")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, "kdig %s: %s%s" % (name, r.stdout, r.stderr))
        m = re.search(r"status: (\w+)", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        return m.group(1)

    def scrape(self, agent):
        status, headers, body = http(agent.metrics, "/metrics")
        self.assertEqual(status, 200, body)
        return parse_metrics(body)


@unittest.skipUnless(KDIG, "kdig (knot-dnsutils) is needed")
class Endpoints(HttpTestCase):

    def test_health_is_200_ok_while_the_loops_turn(self):
        a = self.start()
        status, headers, body = http(a.health, "/health")
        self.assertEqual((status, body), (200, "OK\n"))
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        self.assertTrue(headers["Server"].startswith("meshdns/"))
        status, _, body = http(a.health, "/health", method="HEAD")
        self.assertEqual((status, body), (200, ""))

    def test_ready_is_200_once_synced_with_no_source(self):
        a = self.start()
        self.assertEqual(http(a.health, "/ready")[::2], (200, "OK\n"))
        samples, _ = self.scrape(a)
        self.assertEqual(metric(samples, "meshdns_ready"), 1)

    def test_metrics_move_with_real_queries(self):
        a = self.start()
        srv = "dns://%s:%d" % (HOST, a.dns)
        to = "%s:%d" % (HOST, self.up.port)
        before, _ = self.scrape(a)
        n = 5
        for i in range(n):  # misses, forwarded
            self.assertEqual(self.query(a, "m%d.example.org" % i), "NOERROR")
        for i in range(n):  # the same names again: cache hits
            self.assertEqual(self.query(a, "m%d.example.org" % i), "NOERROR")
        self.assertEqual(self.query(a, "nx1.example.org"), "NXDOMAIN")
        self.assertEqual(self.query(a, "nx1.example.org"), "NXDOMAIN")
        self.assertEqual(self.query(a, "m0.example.org", tcp=True), "NOERROR")
        self.assertEqual(self.query(a, "web.default.svc.cluster.local"), "NOERROR")
        after, types = self.scrape(a)

        def grew(name, **labels):
            return metric(after, name, **labels) - metric(before, name, **labels)

        req = dict(server=srv, zone=".", family="1", type="A")
        self.assertEqual(grew("coredns_dns_requests_total", proto="udp", **req), 2 * n + 2)
        self.assertEqual(grew("coredns_dns_requests_total", proto="tcp", **req), 1)
        self.assertEqual(grew("coredns_dns_requests_total", server=srv, zone="cluster.local.",
                              proto="udp", family="1", type="A"), 1)
        self.assertEqual(grew("coredns_dns_responses_total", server=srv, zone=".",
                              rcode="NOERROR"), 2 * n + 1)
        self.assertEqual(grew("coredns_dns_responses_total", server=srv, zone=".",
                              rcode="NXDOMAIN"), 2)
        self.assertEqual(grew("coredns_cache_hits_total", server=srv, type="success"), n + 1)
        self.assertEqual(grew("coredns_cache_hits_total", server=srv, type="denial"), 1)
        self.assertEqual(grew("coredns_cache_misses_total", server=srv), n + 2)
        self.assertEqual(grew("coredns_forward_requests_total", to=to), n + 2)
        self.assertEqual(self.up.queries, n + 2)
        self.assertEqual(grew("coredns_forward_responses_total", to=to, rcode="NOERROR"), n + 1)
        self.assertEqual(metric(after, "coredns_cache_entries", server=srv, type="success"),
                         n + 1)
        # every answered query is in the duration histogram, over UDP and TCP alike
        self.assertEqual(types["coredns_dns_request_duration_seconds"], "histogram")
        self.assertEqual(grew("coredns_dns_request_duration_seconds_count", server=srv,
                              zone=".", type="A"), 2 * n + 3)
        inf = metric(after, "coredns_dns_request_duration_seconds_bucket", server=srv,
                     zone=".", type="A", le="+Inf")
        self.assertEqual(inf, metric(after, "coredns_dns_request_duration_seconds_count",
                                     server=srv, zone=".", type="A"))
        self.assertEqual(grew("coredns_forward_request_duration_seconds_count", to=to), n + 2)

    def test_metrics_text_is_prometheus_0_0_4_with_every_interface_name(self):
        a = self.start()
        status, headers, body = http(a.metrics, "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        samples, types = parse_metrics(body)
        for name in ("coredns_dns_requests_total", "coredns_dns_responses_total",
                     "coredns_dns_request_duration_seconds", "coredns_cache_entries",
                     "coredns_cache_hits_total", "coredns_cache_misses_total",
                     "coredns_cache_evictions_total", "coredns_forward_requests_total",
                     "coredns_forward_responses_total",
                     "coredns_forward_request_duration_seconds", "meshdns_serviceentries",
                     "meshdns_mesh_hosts", "meshdns_zones",
                     "meshdns_sync_last_success_timestamp_seconds",
                     "meshdns_watch_restarts_total", "meshdns_relists_total",
                     "meshdns_rejected_total", "meshdns_upstream_dropped_total",
                     "meshdns_coalesced_total", "meshdns_interface_repairs_total"):
            self.assertIn(name, types)
            self.assertIn("# HELP %s " % name, body)
        for (name, _), _ in samples.items():
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            self.assertTrue(name in types or types.get(family) == "histogram",
                            "%s has no TYPE" % name)
        self.assertGreater(metric(samples, "process_resident_memory_bytes"), 0)
        self.assertEqual(metric(samples, "meshdns_build_info",
                                version=re.search(r'version="([^"]+)"', body).group(1)), 1)

    def test_one_listener_serves_all_three_paths_when_the_addresses_match(self):
        port = free_port()
        a = self.start(health=port, metrics=port)
        self.assertEqual(http(port, "/health")[0], 200)
        self.assertEqual(http(port, "/ready")[0], 200)
        self.assertEqual(http(port, "/metrics")[0], 200)
        self.assertIn("serving /health, /ready and /metrics", a.logtext())

    def test_each_listener_serves_only_its_paths_and_refuses_the_rest(self):
        a = self.start()
        self.assertEqual(http(a.health, "/metrics")[0], 404)
        self.assertEqual(http(a.metrics, "/health")[0], 404)
        self.assertEqual(http(a.metrics, "/ready")[0], 404)
        self.assertEqual(http(a.health, "/")[0], 404)
        self.assertIn(http(a.health, "/health", method="POST")[0], (405, 501))
        self.assertEqual(http(a.metrics, "/metrics?x=1")[0], 200)
        # garbage (a TLS hello) with a line end gets 400; without one, the connection is
        # closed after the request timeout (libevent's evhttp reads requests line by line)
        self.assertTrue(raw_http(a.health, b"\x16\x03\x01\x00\x05hello\r\n\r\n").startswith(
            b"HTTP/1.1 400 "))
        self.assertEqual(raw_http(a.health, b"\x16\x03\x01\x00\x05hello", timeout=10), b"")
        # a request head over the limit is dropped without an answer
        self.assertEqual(raw_http(a.health, b"GET /health HTTP/1.1\r\n" + b"X: y\r\n" * 1000,
                                  timeout=10), b"")
        # still serving after all that
        self.assertEqual(http(a.health, "/health")[0], 200)

    def test_a_client_that_sends_nothing_is_dropped_and_others_still_served(self):
        a = self.start()
        idle = [socket.create_connection((HOST, a.health)) for _ in range(5)]
        self.addCleanup(lambda: [s.close() for s in idle])
        self.assertEqual(http(a.health, "/health")[0], 200)
        idle[0].settimeout(10)
        t0 = time.monotonic()
        self.assertEqual(idle[0].recv(100), b"")  # closed by the server
        self.assertLess(time.monotonic() - t0, 8)

    def test_off_disables_each_endpoint(self):
        a = self.start("--health", "off", wait_http=False)
        self.assertEqual(http(a.metrics, "/metrics")[0], 200)
        self.assertEqual(http(a.health, "/health")[0], 0)
        self.assertNotIn("/health", a.logtext())
        b = self.start("--metrics", "off")
        self.assertEqual(http(b.metrics, "/metrics")[0], 0)
        self.assertEqual(http(b.health, "/health")[0], 200)
        c = self.start("--metrics", "off", "--health", "off", wait_http=False)
        self.assertEqual(self.query(c, "x.example.org"), "NOERROR")
        self.assertNotIn("[http]", c.logtext())
        self.assertEqual(c.stop(), 0)

    def test_bad_metrics_value_exits_2_before_anything(self):
        for bad in ("nonsense", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", ""):
            port = free_port()
            r = subprocess.run([MESHDNS, "--no-interface", "--listen", "%s:%d" % (HOST, port),
                                "--upstream", "%s:%d" % (HOST, self.up.port),
                                "--serviceentries", "none", "--metrics", bad],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 2, "--metrics %r: %s" % (bad, r.stderr))
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertIn("--metrics", lines[0])
        self.assertEqual(self.up.queries, 0)

    def test_a_port_in_use_exits_1_naming_the_flag(self):
        for flag in ("--health", "--metrics"):
            holder = socket.socket()
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.bind((HOST, 0))
            holder.listen()
            port = holder.getsockname()[1]
            try:
                kw = {"health": port} if flag == "--health" else {"metrics": port}
                a = self.start(wait_http=False, **kw)
                self.assertEqual(a.proc.wait(10), 1)
                self.assertRegex(a.logtext(), r"%s 127\.0\.0\.1:%d: port in use" % (flag, port))
            finally:
                holder.close()

    def test_sigterm_closes_http_and_exits_0(self):
        a = self.start()
        self.assertEqual(a.stop(), 0)
        self.assertEqual(http(a.health, "/health")[0], 0)
        self.assertEqual(http(a.metrics, "/metrics")[0], 0)


@unittest.skipUnless(KDIG, "kdig (knot-dnsutils) is needed")
class RollingUpdate(HttpTestCase):
    """DaemonSet maxSurge: 1 puts a new pod next to the old one on the same node, with the
    same --health and --metrics addresses (hostNetwork)."""

    def test_a_new_instance_shares_the_ports_and_takes_the_probes(self):
        old = self.start()
        for i in range(3):
            self.query(old, "old%d.example.org" % i)
        new = self.start(health=old.health, metrics=old.metrics)
        self.assertIn("shared with another instance", new.logtext())
        # while both run, new connections reach the new instance: its counters are empty
        for _ in range(10):
            samples, _ = self.scrape(new)
            self.assertEqual(metric(samples, "coredns_cache_misses_total",
                                    server="dns://%s:%d" % (HOST, new.dns)), 0)
            self.assertEqual(metric(samples, "coredns_cache_misses_total",
                                    server="dns://%s:%d" % (HOST, old.dns)), 0)
        # the new one stops (a failed rollout): the old one answers again
        self.assertEqual(new.stop(), 0)
        samples, _ = self.scrape(old)
        self.assertEqual(metric(samples, "coredns_cache_misses_total",
                                server="dns://%s:%d" % (HOST, old.dns)), 3)
        self.assertEqual(http(old.health, "/health")[0], 200)

    def test_the_old_instance_leaves_the_ports_to_the_new_one_on_sigterm(self):
        old = self.start()
        new = self.start(health=old.health, metrics=old.metrics)
        self.query(new, "fresh.example.org")
        self.assertEqual(old.stop(), 0)
        for _ in range(10):
            self.assertEqual(http(new.health, "/health")[0], 200)
            samples, _ = self.scrape(new)
            self.assertEqual(metric(samples, "coredns_cache_misses_total",
                                    server="dns://%s:%d" % (HOST, new.dns)), 1)


@unittest.skipUnless(KDIG, "kdig (knot-dnsutils) is needed")
class ReadinessBeforeSync(HttpTestCase):
    """SEMANTICS.md rule 42 with the file source (--serviceentries PATH): a file that does
    not exist yet is not a sync.

    NEEDS THE FILE SOURCE (k8s/filesrc.c, branch "mesh"). In a build without it the table
    reports synced from the start and this test fails on purpose, saying so."""

    def test_ready_is_503_until_the_first_good_read(self):
        d = tempfile.mkdtemp(prefix="meshdns-http-se-")
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "serviceentries.json")
        a = self.start("--serviceentries", path, wait_dns=False)
        status, _, body = http(a.health, "/ready")
        if status == 200:
            self.fail("/ready is 200 with --serviceentries %s, a file that does not exist: this "
                      "build has no file source yet (k8s/filesrc.c not merged), or it counts a "
                      "missing file as a sync (rule 42)" % path)
        self.assertEqual(status, 503)
        self.assertIn("sync", body)
        self.assertEqual(len(body.strip().splitlines()), 1)
        self.assertEqual(http(a.health, "/health")[0], 200)
        samples, _ = self.scrape(a)
        self.assertEqual(metric(samples, "meshdns_ready"), 0)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write('{"apiVersion": "v1", "kind": "List", "items": []}\n')
        os.rename(tmp, path)
        wait_for("/ready 200 after the file appeared",
                 lambda: http(a.health, "/ready")[0] == 200)


NS = "meshdns-http-%d" % os.getpid()


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("ip") and shutil.which("curl"),
                     "needs root, ip and curl (network namespace)")
class NodeProbe(unittest.TestCase):
    """The DaemonSet's probes: the kubelet, in the node's network namespace, connects to
    169.254.20.10:8054, an address on the dummy interface meshdns creates. Checked in a
    namespace of our own with every default flag but the upstream."""

    def setUp(self):
        if not os.access(MESHDNS, os.X_OK):
            self.fail("no meshdns binary at %s (set $MESHDNS)" % MESHDNS)
        subprocess.run(["ip", "netns", "add", NS], check=True)
        self.addCleanup(subprocess.run, ["ip", "netns", "delete", NS])
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
        up = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-B",
                               os.path.abspath(__file__), "upstream", "5399"],
                              stdout=subprocess.DEVNULL)
        self.addCleanup(lambda: (up.kill(), up.wait(5)))

    def in_ns(self, *cmd):
        return subprocess.run(["ip", "netns", "exec", NS] + list(cmd), capture_output=True,
                              text=True, timeout=15)

    def link_kind(self):
        """dummy, as on a node, when this kernel has it; else bridge (the address is local
        on either, which is what the probe's route depends on)."""
        if self.in_ns("ip", "link", "add", "probe0", "type", "dummy").returncode == 0:
            self.in_ns("ip", "link", "del", "probe0")
            return "dummy"
        return "bridge"

    def test_kubelet_reaches_health_and_ready_on_the_link_local_address(self):
        a = Agent(self, ["--upstream", "127.0.0.1:5399", "--serviceentries", "none",
                         "--interface-kind", self.link_kind()], netns=NS)

        def probe(path):
            r = self.in_ns("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                           "--max-time", "2", "http://169.254.20.10:8054" + path)
            return r.stdout == "200"

        wait_for("/health on 169.254.20.10:8054",
                 lambda: a.proc.poll() is not None or probe("/health"))
        self.assertIsNone(a.proc.poll(), a.logtext())
        self.assertTrue(probe("/ready"))
        r = self.in_ns("ip", "-o", "addr", "show", "dev", "meshdns")
        self.assertIn("169.254.20.10/32", r.stdout)
        # metrics on 0.0.0.0:9253, scraped from outside through the node's addresses
        r = self.in_ns("curl", "-s", "--max-time", "2", "http://127.0.0.1:9253/metrics")
        self.assertIn('server="dns://169.254.20.10:53"', r.stdout)
        self.assertEqual(a.stop(), 0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["upstream"]:  # helper: the stand-in alone, in another namespace
        Upstream(int(sys.argv[2])).thread.join()  # until killed
    unittest.main()
