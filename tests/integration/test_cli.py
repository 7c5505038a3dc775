"""The binary's interface (INTERFACE.md "Binary and flags" and "Exit status"): flags, help,
version, signals, and start-up failures.
"""

import os
import re
import signal
import socket
import subprocess
import threading

import dns.message

import harness
import zones
from harness import DnsTestCase, MESHDNS, answer_data

# The flags INTERFACE.md fixes by name.
INTERFACE_FLAGS = [
    "--listen", "--interface", "--interface-kind", "--no-interface", "--skip-teardown",
    "--cluster-domain", "--cluster-dns", "--upstream", "--resolv-conf", "--zone",
    "--no-auto-zones", "--serviceentries", "--kube-api", "--kube-token-file",
    "--kube-ca-file", "--mesh-ttl", "--cache-size", "--max-ttl", "--neg-ttl", "--threads",
    "--health", "--metrics", "--log-level", "--help", "--version",
]

# (argv, the flag the one-line message must name)
BAD = [
    (["--threads", "0"], "--threads"),
    (["--threads", "many"], "--threads"),
    (["--threads", "100000"], "--threads"),
    (["--threads", ""], "--threads"),
    (["--max-ttl", "-1"], "--max-ttl"),
    (["--neg-ttl", "1e3"], "--neg-ttl"),
    (["--mesh-ttl", "99999999999"], "--mesh-ttl"),
    (["--cache-size", "1k"], "--cache-size"),
    (["--cache-size", "12X"], "--cache-size"),
    (["--listen", "not-an-address"], "--listen"),
    (["--listen", "127.0.0.1:99999"], "--listen"),
    (["--listen", "[::1"], "--listen"),
    (["--upstream", "1.2.3"], "--upstream"),
    (["--upstream", "127.0.0.1:0"], "--upstream"),
    (["--cluster-dns", "kube-dns.example"], "--cluster-dns"),
    (["--log-level", "loud"], "--log-level"),
    (["--upstream-timeout", "5"], "--upstream-timeout"),
    (["--tcp-idle-timeout", "abc"], "--tcp-idle-timeout"),
    (["--max-tcp-connections", "0"], "--max-tcp-connections"),
    (["--health", "nowhere"], "--health"),
    (["--metrics", "1.2.3.4"], "--metrics"),
    (["--kube-api", "http://10.0.0.1"], "--kube-api"),
    (["--cluster-domain", "a..b"], "--cluster-domain"),
    (["--zone", "bad..zone"], "--zone"),
    (["--interface", "x" * 20], "--interface"),
    (["--no-such-flag"], "--no-such-flag"),
    (["--listen"], "--listen"),
    (["stray-argument"], "stray-argument"),
]


def run(argv, timeout=10, env=None):
    return subprocess.run([MESHDNS] + argv, capture_output=True, text=True, timeout=timeout,
                          env=env)


def help_entries(text):
    """{flag: its help text (the flag's line and its continuation lines)}."""
    entries, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"\s{2}(--[a-z0-9-]+)", line)
        if m:
            cur = m.group(1)
            entries[cur] = line
        elif cur and line.startswith("      "):
            entries[cur] += " " + line.strip()
        else:
            cur = None
    return entries


def source_flags():
    """Long options the binary knows: every `struct option` table in agent/*.c."""
    names = []
    agent = os.path.join(harness.ROOT, "agent")
    for fn in sorted(os.listdir(agent)):
        if not fn.endswith(".c"):
            continue
        with open(os.path.join(agent, fn)) as f:
            text = f.read()
        for m in re.finditer(r"struct option \w+\[\]\s*=\s*\{(.*?)\};", text, re.S):
            names += ["--" + n for n in re.findall(r'\{\s*"([a-z0-9-]+)"', m.group(1))]
    return names


class Flags(DnsTestCase):

    def test_bad_values_exit_2_with_one_line_naming_the_flag(self):
        for argv, flag in BAD:
            with self.subTest(argv=argv):
                out = run(argv)
                self.assertEqual(out.returncode, 2, "%s: %s" % (argv, out.stderr))
                lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
                self.assertEqual(len(lines), 1, "one line expected: %r" % out.stderr)
                self.assertIn(flag, lines[0])
                self.assertEqual(out.stdout, "")

    def test_bad_kube_dns_service_host_exits_2_naming_it(self):
        env = dict(os.environ, KUBE_DNS_SERVICE_HOST="kube-dns.example")
        out = run(["--upstream", "127.0.0.1"], env=env)
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn("KUBE_DNS_SERVICE_HOST", out.stderr)

    def test_help_lists_every_flag_with_its_default(self):
        out = run(["--help"])
        self.assertEqual(out.returncode, 0)
        entries = help_entries(out.stdout)
        known = source_flags()
        self.assertIn("--listen", known, "the option table was not found in agent/*.c")
        for flag in sorted(set(INTERFACE_FLAGS) | set(known)):
            self.assertIn(flag, entries, "--help does not list " + flag)
            if flag not in ("--help", "--version"):
                self.assertIn("default", entries[flag], "no default given for " + flag)

    def test_every_flag_in_help_is_accepted(self):
        entries = help_entries(run(["--help"]).stdout)
        for flag in entries:
            with self.subTest(flag=flag):
                # A known flag either takes "--bogus-1" as its value or leaves it to be
                # rejected; either way "--bogus-2" or "--bogus-1" ends the parse with
                # status 2 before the agent starts. Only an unknown flag is named as such.
                out = run([flag, "--bogus-1", "--bogus-2"])
                self.assertNotIn("unknown flag '%s'" % flag, out.stderr)
                self.assertIn(out.returncode, (0, 2), out.stderr)

    def test_version(self):
        out = run(["--version"])
        self.assertEqual(out.returncode, 0)
        self.assertRegex(out.stdout.strip(), r"^meshdns \d+\.\d+\.\d+")


class Lifecycle(DnsTestCase):

    def setUp(self):
        self.up = self.start_fake()

    def start(self, *extra, **kw):
        return self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port, *extra, **kw)

    def test_sigterm_exits_0(self):
        m = self.start()
        self.assertEqual(answer_data(m.dnsq("www.example.test", "A")), [zones.WWW_IP])
        self.assertEqual(m.proc.stop(signal.SIGTERM, timeout=10), 0, m.log())

    def test_sigint_exits_0(self):
        m = self.start()
        self.assertEqual(m.proc.stop(signal.SIGINT, timeout=10), 0, m.log())

    def test_sigterm_answers_the_query_in_flight_then_exits_0(self):
        self.up.delay = 1.0
        m = self.start("--upstream-timeout", "3000")
        result = {}
        t = threading.Thread(target=lambda: result.update(
            r=harness.query(m.port, "www.example.test", "A", timeout=8)))
        t.start()
        harness.wait_until(lambda: self.up.count("www.example.test") == 1, 5,
                           "the query to reach the upstream")
        m.proc.send_signal(signal.SIGTERM)
        t.join(timeout=15)
        self.assertIsNotNone(result.get("r"), "the client in flight got no answer")
        self.assertEqual(harness.rrs(result["r"]),
                         {("www.example.test.", "A"): [zones.WWW_IP]})
        self.assertEqual(m.proc.wait(10), 0, m.log())

    def test_sigterm_answers_a_tcp_query_in_flight(self):
        self.up.delay = 1.0
        m = self.start("--upstream-timeout", "3000")
        s = socket.create_connection((harness.HOST, m.port), timeout=8)
        self.addCleanup(s.close)
        wire = harness.make_query("www.example.test", "A", qid=31).to_wire()
        s.sendall(len(wire).to_bytes(2, "big") + wire)
        harness.wait_until(lambda: self.up.count("www.example.test") == 1, 5,
                           "the query to reach the upstream")
        m.proc.send_signal(signal.SIGTERM)
        reply = harness.tcp_read_msg(s)
        self.assertIsNotNone(reply, "the TCP client in flight got no answer")
        self.assertEqual(dns.message.from_wire(reply).id, 31)
        self.assertEqual(m.proc.wait(10), 0, m.log())

    def check_port_taken(self, kind):
        port = harness.free_port()
        s = socket.socket(socket.AF_INET, kind)  # no SO_REUSEPORT
        self.addCleanup(s.close)
        s.bind((harness.HOST, port))
        if kind == socket.SOCK_STREAM:
            s.listen(1)
        m = self.start(port=port, ready=False)
        status = m.proc.wait(10)
        self.assertEqual(status, 1, "exit status with port %d taken: %s\n%s"
                         % (port, status, m.log()))
        self.assertRegex(m.log(), r"127\.0\.0\.1:%d" % port)
        self.assertRegex(m.log().lower(), r"in use")

    def test_udp_port_taken_exits_1_with_a_message(self):
        self.check_port_taken(socket.SOCK_DGRAM)

    def test_tcp_port_taken_exits_1_with_a_message(self):
        self.check_port_taken(socket.SOCK_STREAM)

    def test_second_instance_on_the_same_port_shares_it(self):
        """SO_REUSEPORT: a newer instance starts beside a running one (rolling update),
        and serves once the old one is gone."""
        old = self.start()
        new = self.start(port=old.port)
        self.assertEqual(old.proc.stop(signal.SIGTERM, timeout=10), 0)
        for _ in range(5):
            r = harness.query(new.port, "www.example.test", "A", timeout=2)
            self.assertIsNotNone(r, "the remaining instance does not answer")
        self.assertAlive(new)

    def test_missing_resolv_conf_exits_1_naming_it(self):
        path = os.path.join(self.tmp(), "no-such-resolv.conf")
        m = self.start_meshdns("--resolv-conf", path, ready=False)
        self.assertEqual(m.proc.wait(10), 1, m.log())
        self.assertIn(path, m.log())

    def test_resolv_conf_without_nameservers_exits_1(self):
        path = os.path.join(self.tmp(), "resolv.conf")
        with open(path, "w") as f:
            f.write("search example.test\n")
        m = self.start_meshdns("--resolv-conf", path, ready=False)
        self.assertEqual(m.proc.wait(10), 1, m.log())
        self.assertIn("no upstream", m.log())


if __name__ == "__main__":
    harness.main()
