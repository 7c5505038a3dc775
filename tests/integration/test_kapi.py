#!/usr/bin/env python3
"""Integration tests for --serviceentries kubernetes against the test API server.

Each test starts its own fake kube-apiserver (tests/apiserver, HTTPS with its own CA) and its
own meshdns on 127.0.0.1, then asserts what a user sees: kdig answers, and the API server's
request log (which requests, from which resourceVersion, how often). Covers SEMANTICS.md rules
38-42 and the fault tests F5-F8 and F10 of reference/reliability.md 7.4.

    MESHDNS=build/meshdns python3 tests/integration/test_kapi.py [-k NAME]

Stdlib only, plus kdig (knot-dnsutils) and openssl. Every process started is stopped by PID,
even when a test fails.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "apiserver"))

from control import (ApiServerProcess, backoff_envelope, request_gaps,  # noqa: E402
                     request_rate, service_entry, token_hash)

MESHDNS = os.environ.get("MESHDNS") or os.path.join(HERE, "..", "..", "build", "meshdns")
ANSWER_RE = re.compile(r"^\S+\s+\d+\s+IN\s+(?:A|AAAA)\s+(\S+)$")
STATUS_RE = re.compile(r"status: (\w+)")


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def se(name, addr, namespace="default"):
    return service_entry(name, namespace, ["%s.global" % name], [addr])


def kdig(port, name, qtype="A"):
    """(status, [addresses]) of one query; status is None when nothing came back."""
    out = subprocess.run(["kdig", "@127.0.0.1", "-p", str(port), "+timeout=1", "+retry=0",
                          name, qtype], capture_output=True, text=True, timeout=10).stdout
    m = STATUS_RE.search(out)
    addrs = [a.group(1) for a in (ANSWER_RE.match(l) for l in out.splitlines()) if a]
    return (m.group(1) if m else None), sorted(addrs)


class Agent:
    """meshdns with --serviceentries kubernetes against @srv, on a free loopback port."""

    def __init__(self, srv, token_file=None, ca_file=None, env=None, log_level="info",
                 extra=()):
        self.srv = srv
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="meshdns-kapi-")
        self.log_path = os.path.join(self.dir, "stderr.log")
        self.args = [MESHDNS, "--no-interface", "--listen", "127.0.0.1:%d" % self.port,
                     "--serviceentries", "kubernetes", "--kube-api", srv.api_url,
                     "--kube-token-file", token_file or srv.token_file,
                     "--kube-ca-file", ca_file or srv.ca,
                     "--upstream", "127.0.0.1:%d" % free_port(), "--zone", "global",
                     "--metrics", "off", "--health", "off", "--log-level", log_level] + list(extra)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None

    def start(self):
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err, env=self.env)
        return self

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def query(self, name, qtype="A"):
        return kdig(self.port, name, qtype)

    def wait_answer(self, name, want, timeout):
        """Polls until @name answers @want (a list of addresses, or a status such as
        "NXDOMAIN"); returns the seconds it took, or fails with the agent's log."""
        start = time.monotonic()
        got = None
        while True:
            status, addrs = self.query(name)
            got = (status, addrs)
            if (isinstance(want, str) and status == want) or \
                    (not isinstance(want, str) and status == "NOERROR" and addrs == sorted(want)):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise AssertionError("%s: wanted %s within %.1f s, got %s\n--- agent log:\n%s"
                                     % (name, want, timeout, got, self.tail()))
            if self.proc.poll() is not None:
                raise AssertionError("agent exited with %s\n%s" % (self.proc.returncode,
                                                                    self.tail()))
            time.sleep(0.01)

    def stop(self):
        """SIGTERM; returns the exit status (SIGKILL after 10 s)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode if self.proc else None

    def cleanup(self):
        self.stop()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


class KapiTest(unittest.TestCase):
    maxDiff = None

    def server(self, *args, bookmarks=1):
        srv = ApiServerProcess(args=["--set", "bookmark_interval=%s" % bookmarks] + list(args))
        srv.start()
        self.addCleanup(srv.stop)
        return srv

    def agent(self, srv, **kw):
        a = Agent(srv, **kw)
        self.addCleanup(a.cleanup)
        return a.start()

    def wait_for(self, what, fn, timeout, agent=None):
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            v = fn()
            if v:
                return v
            time.sleep(0.05)
        self.fail("%s: not within %.0f s%s" % (what, timeout,
                                               "\n--- agent log:\n" + agent.tail() if agent else ""))

    def open_watch(self, srv, agent, since=0.0, path_part="serviceentries", timeout=20):
        """The newest watch request started after @since that is still streaming."""
        def find():
            ws = [e for e in srv.control.log(kind="watch") if e["time"] >= since and
                  e["status"] == 200 and not e.get("end") and path_part in e["path"]]
            return ws[-1] if ws else None
        return self.wait_for("an open watch", find, timeout, agent)

    def assert_clean_stop(self, agent):
        self.assertEqual(agent.stop(), 0, agent.tail())

    # ---- rules 40, 13: list, watch, events within 1 s -------------------------------------

    def test_changes_during_a_watch_show_in_answers_within_1s(self):
        # events cut at random byte positions across chunks
        srv = self.server("--set", "chunk_mode=random", "--set", "chunk_max=7")
        srv.control.apply(se("reviews", "240.0.0.3"))
        agent = self.agent(srv)
        agent.wait_answer("reviews.global", ["240.0.0.3"], 5)
        self.open_watch(srv, agent)

        srv.control.apply(se("ratings", "240.0.0.4"))
        self.assertLess(agent.wait_answer("ratings.global", ["240.0.0.4"], 1.0), 1.0)
        srv.control.apply(service_entry("ratings", "default", ["ratings.global"],
                                        ["240.0.0.5", "240.0.0.6"]))
        self.assertLess(agent.wait_answer("ratings.global", ["240.0.0.5", "240.0.0.6"], 1.0), 1.0)
        srv.control.delete("default", "ratings")
        self.assertLess(agent.wait_answer("ratings.global", "NXDOMAIN", 1.0), 1.0)
        agent.wait_answer("reviews.global", ["240.0.0.3"], 1)

        log = srv.control.log()
        lists = [e for e in log if e["kind"] == "list"]
        watches = [e for e in log if e["kind"] == "watch"]
        self.assertEqual(len(lists), 1)
        self.assertEqual(lists[0]["query"], {"resourceVersion": "0", "limit": "500"})
        self.assertEqual(watches[0]["query"]["resourceVersion"], lists[0]["list_rv"])
        self.assertEqual(watches[0]["query"]["allowWatchBookmarks"], "true")
        self.assertIn(int(watches[0]["query"]["timeoutSeconds"]), range(300, 601))
        self.assertEqual(len(watches), 1)
        self.assert_clean_stop(agent)

    def test_events_cut_into_one_byte_chunks_are_all_applied(self):
        srv = self.server("--set", "chunk_mode=bytes", "--set", "chunk_max=1")
        agent = self.agent(srv)
        agent.wait_answer("none.global", "NXDOMAIN", 5)
        self.open_watch(srv, agent)
        srv.control.apply(*[se("svc%d" % i, "240.0.1.%d" % i) for i in range(1, 6)])
        for i in range(1, 6):
            agent.wait_answer("svc%d.global" % i, ["240.0.1.%d" % i], 2)
        self.assert_clean_stop(agent)

    def test_large_list_is_paged_with_continue_and_no_resource_version(self):
        srv = self.server("--set", "rv0_ignores_limit=false")
        srv.control.generate(1200, namespace="bulk")
        agent = self.agent(srv)
        agent.wait_answer("se-1199.bulk.global", ["240.0.4.175"], 10)
        agent.wait_answer("se-0.bulk.global", ["240.0.0.0"], 1)
        lists = srv.control.log(kind="list")
        self.assertEqual(len(lists), 3)
        self.assertEqual(lists[0]["query"], {"resourceVersion": "0", "limit": "500"})
        for e in lists[1:]:
            self.assertEqual(sorted(e["query"]), ["continue", "limit"])
        self.assertEqual(sum(e["items"] for e in lists), 1200)
        w = self.open_watch(srv, agent)
        self.assertEqual(w["query"]["resourceVersion"], lists[0]["list_rv"])
        self.assert_clean_stop(agent)

    # ---- rule 41, F6: 410 -> relist at the last RV, then RV="" ---------------------------

    def check_410_relist(self, watch_410_mode):
        srv = self.server("--set", "watch_410_mode=%s" % watch_410_mode, bookmarks=0)
        srv.control.apply(se("stays", "240.0.2.1"), se("goes", "240.0.2.2"))
        agent = self.agent(srv)
        agent.wait_answer("goes.global", ["240.0.2.2"], 5)
        w = self.open_watch(srv, agent)
        last_rv = w["query"]["resourceVersion"]

        # changes the agent cannot see as events: made while the server is down, then the
        # history is compacted, so the resumed watch gets 410 and the first relist too
        srv.control.down()
        srv.control.delete("default", "goes")
        srv.control.apply(se("comes", "240.0.2.3"), se("stays", "240.0.2.4"))
        srv.control.compact()
        srv.control.add_fault(kind="list", code=410)
        t_up = time.time()
        srv.control.up()

        agent.wait_answer("comes.global", ["240.0.2.3"], 20)
        agent.wait_answer("goes.global", "NXDOMAIN", 1)
        agent.wait_answer("stays.global", ["240.0.2.4"], 1)
        log = [e for e in srv.control.log() if e["time"] >= t_up]
        watches = [e for e in log if e["kind"] == "watch"]
        lists = [e for e in log if e["kind"] == "list"]
        self.assertEqual(watches[0]["query"]["resourceVersion"], last_rv)
        if watch_410_mode == "status":
            self.assertEqual(watches[0]["status"], 410)
        else:
            self.assertEqual(watches[0]["status"], 200)
            self.assertEqual(watches[0]["ended"], "expired")  # a 410 ERROR event
        self.assertEqual(len(lists), 2, lists)
        self.assertEqual(lists[0]["query"], {"resourceVersion": last_rv})
        self.assertEqual(lists[0]["status"], 410)
        self.assertEqual(lists[1]["query"], {"resourceVersion": ""})
        self.assertEqual(lists[1]["status"], 200)
        # then a watch from the consistent list's RV, and no further list
        w2 = self.open_watch(srv, agent, since=t_up)
        self.assertEqual(w2["query"]["resourceVersion"], lists[1]["list_rv"])
        self.assertEqual(len(srv.control.log(kind="list")), 3)
        self.assert_clean_stop(agent)

    def test_410_event_relists_and_a_second_410_uses_consistent_read(self):
        self.check_410_relist("event")

    def test_410_status_relists_and_a_second_410_uses_consistent_read(self):
        self.check_410_relist("status")

    # ---- F5: API server down and back -----------------------------------------------------

    def test_outage_keeps_answers_and_resumes_the_watch_from_the_last_rv(self):
        srv = self.server(bookmarks=0)
        srv.control.apply(se("a", "240.0.3.1"))
        agent = self.agent(srv)
        agent.wait_answer("a.global", ["240.0.3.1"], 5)
        self.open_watch(srv, agent)
        rv = srv.control.apply(se("b", "240.0.3.2"))[0]["resourceVersion"]
        agent.wait_answer("b.global", ["240.0.3.2"], 1)

        srv.control.down()
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            self.assertEqual(agent.query("a.global"), ("NOERROR", ["240.0.3.1"]))
            self.assertEqual(agent.query("b.global"), ("NOERROR", ["240.0.3.2"]))
            time.sleep(0.2)
        t_up = time.time()
        srv.control.up()
        w = self.open_watch(srv, agent, since=t_up)
        self.assertEqual(w["query"]["resourceVersion"], rv)
        self.assertEqual(len(srv.control.log(kind="list")), 1, "no relist while the RV is valid")
        srv.control.apply(se("c", "240.0.3.3"))
        agent.wait_answer("c.global", ["240.0.3.3"], 1)
        self.assert_clean_stop(agent)

    # ---- F7: request rate during a 60 s outage ------------------------------------------

    def test_request_rate_during_an_outage_stays_within_the_backoff_envelope(self):
        srv = self.server()
        srv.control.apply(se("a", "240.0.3.1"))
        agent = self.agent(srv)
        agent.wait_answer("a.global", ["240.0.3.1"], 5)
        self.open_watch(srv, agent)
        time.sleep(1.5)  # the watch is older than 1 s: its loss is not a "very short watch"
        t0 = time.time()
        srv.control.down(mode="reset")  # connections accepted, reset, and logged as "connect"
        time.sleep(60)
        t1 = time.time()
        self.assertEqual(agent.query("a.global"), ("NOERROR", ["240.0.3.1"]))
        attempts = [e for e in srv.control.log(kind="connect") if t0 <= e["time"] < t1]
        srv.control.up()
        gaps = request_gaps(attempts)
        self.assertGreaterEqual(len(attempts), 5, attempts)
        # the dropped watch is retried at once, then retry n waits [d, 2d), d = 0.8 s x 2^n
        # capped at 30 s (client-go's reflector); a little slack for the connect itself
        for n, gap in enumerate(gaps):
            low, high = backoff_envelope(n)
            self.assertGreaterEqual(gap, low - 0.05, (n, gaps))
            self.assertLess(gap, high + 0.5, (n, gaps))
        self.assertLessEqual(request_rate(attempts, t0, t1), 0.25)
        # and the watch comes back after the current delay (at most 60 s)
        self.open_watch(srv, agent, since=t1, timeout=65)
        self.assert_clean_stop(agent)

    # ---- rule 41: Retry-After -------------------------------------------------------------

    def test_retry_after_on_429_and_503_is_honoured(self):
        srv = self.server()
        srv.control.add_fault(kind="list", code=429, retry_after=2)
        srv.control.apply(se("a", "240.0.3.1"))
        agent = self.agent(srv)
        agent.wait_answer("a.global", ["240.0.3.1"], 10)
        lists = srv.control.log(kind="list")
        self.assertEqual([e["status"] for e in lists], [429, 200])
        self.assertGreaterEqual(lists[1]["time"] - lists[0]["time"], 1.95)

        self.open_watch(srv, agent)
        t = time.time()
        srv.control.add_fault(kind="watch", code=429, retry_after=3)
        srv.control.add_fault(kind="watch", code=503, retry_after=3)
        srv.control.close_watches("graceful")
        self.open_watch(srv, agent, since=t)
        ws = [e for e in srv.control.log(kind="watch") if e["time"] >= t]
        self.assertEqual([e["status"] for e in ws], [429, 503, 200])
        self.assertGreaterEqual(ws[1]["time"] - ws[0]["time"], 2.95)
        self.assertGreaterEqual(ws[2]["time"] - ws[1]["time"], 2.95)
        self.assertEqual(len(srv.control.log(kind="list")), 2)
        self.assert_clean_stop(agent)

    # ---- F8: a silent watch ---------------------------------------------------------------

    def test_silent_watch_is_detected_and_restarted(self):
        srv = self.server(bookmarks=0.3)
        srv.control.apply(se("a", "240.0.3.1"))
        agent = self.agent(srv, env={"MESHDNS_KUBE_IDLE_TIMEOUT_MS": "2000"})
        agent.wait_answer("a.global", ["240.0.3.1"], 5)
        self.open_watch(srv, agent)
        t = time.time()
        srv.control.add_fault(kind="watch", action="stall", seconds=600, send_headers=True)
        srv.control.close_watches("graceful")
        time.sleep(0.5)
        srv.control.apply(se("late", "240.0.3.9"))  # while the watch says nothing
        took = agent.wait_answer("late.global", ["240.0.3.9"], 10)
        self.assertLess(took, 5.0)
        ws = [e for e in srv.control.log(kind="watch") if e["time"] >= t]
        self.assertTrue(ws[0].get("stalled"), ws[0])
        self.assertGreaterEqual(ws[1]["time"] - ws[0]["time"], 2.0)
        self.assertEqual(ws[1]["query"]["resourceVersion"], ws[0]["query"]["resourceVersion"])
        self.assertEqual(len(srv.control.log(kind="list")), 1)
        self.assertIn("no byte for 2000 ms", agent.log())
        self.assert_clean_stop(agent)

    # ---- rule 38, F10: tokens -------------------------------------------------------------

    def test_rotated_token_is_used_and_never_logged(self):
        tokens = ["tok-one-%s" % os.urandom(8).hex(), "tok-two-%s" % os.urandom(8).hex(),
                  "tok-three-%s" % os.urandom(8).hex()]
        srv = self.server("--token", tokens[0])
        d = tempfile.mkdtemp(prefix="meshdns-token-")
        link = os.path.join(d, "token")

        def rotate(i):
            # the kubelet's way: a new file, then a symlink renamed over the old one
            with open(os.path.join(d, "t%d" % i), "w") as f:
                f.write(tokens[i] + "\n")
            os.symlink("t%d" % i, link + ".new")
            os.rename(link + ".new", link)

        def cleanup():
            for n in os.listdir(d):
                os.unlink(os.path.join(d, n))
            os.rmdir(d)
        self.addCleanup(cleanup)
        rotate(0)
        srv.control.apply(se("a", "240.0.3.1"))
        agent = self.agent(srv, token_file=link, log_level="debug")
        agent.wait_answer("a.global", ["240.0.3.1"], 5)
        self.open_watch(srv, agent)

        # 1. the file is rotated while both tokens are valid: the periodic re-read (60 s)
        srv.control.set_tokens(tokens[0], tokens[1])
        rotate(1)
        time.sleep(61)
        t = time.time()
        srv.control.close_watches("graceful")
        w = self.open_watch(srv, agent, since=t)
        self.assertEqual(w["token_hash"], token_hash(tokens[1]))

        # 2. the old token is revoked: a 401, the file is read again, the retry succeeds
        srv.control.set_tokens(tokens[2])
        rotate(2)
        t = time.time()
        srv.control.close_watches("graceful")
        w = self.open_watch(srv, agent, since=t)
        self.assertEqual(w["token_hash"], token_hash(tokens[2]))
        ws = [e for e in srv.control.log(kind="watch") if e["time"] >= t]
        self.assertEqual([e["status"] for e in ws], [401, 200])
        self.assertLess(ws[1]["time"] - ws[0]["time"], 0.5, "retried at once after a 401")

        # 3. an injected 401 with a valid token: re-read, one retry at once
        t = time.time()
        srv.control.add_fault(kind="any", code=401)
        srv.control.close_watches("graceful")
        self.open_watch(srv, agent, since=t)
        ws = [e for e in srv.control.log(kind="watch") if e["time"] >= t]
        self.assertEqual([e["status"] for e in ws], [401, 200])
        self.assertEqual(ws[1]["token_hash"], token_hash(tokens[2]))
        srv.control.apply(se("b", "240.0.3.2"))
        agent.wait_answer("b.global", ["240.0.3.2"], 1)
        self.assert_clean_stop(agent)

        log = agent.log()
        self.assertIn("changed", log)
        for tok in tokens:
            self.assertNotIn(tok, log)
            self.assertNotIn(tok[4:], log)

    # ---- rule 39: discovery ---------------------------------------------------------------

    def test_discovery_picks_v1beta1_and_follows_a_removed_version(self):
        srv = self.server("--versions", "v1beta1,v1alpha3")
        srv.control.apply(se("a", "240.0.3.1"))
        agent = self.agent(srv)
        agent.wait_answer("a.global", ["240.0.3.1"], 5)
        lists = srv.control.log(kind="list")
        self.assertTrue(lists[0]["path"].endswith("/networking.istio.io/v1beta1/serviceentries"),
                        lists[0]["path"])
        self.open_watch(srv, agent, path_part="/v1beta1/")

        # an Istio upgrade removes the version: the watch gets 404, discovery runs again
        t = time.time()
        srv.control.set_versions("v1alpha3")
        srv.control.close_watches("graceful")
        self.open_watch(srv, agent, since=t, path_part="/v1alpha3/")
        srv.control.apply(se("b", "240.0.3.2"))
        agent.wait_answer("b.global", ["240.0.3.2"], 1)
        log = [e for e in srv.control.log() if e["time"] >= t]
        self.assertEqual([(e["kind"], e["status"]) for e in log[:3]],
                         [("watch", 404), ("discovery", 200), ("list", 200)])
        self.assert_clean_stop(agent)

    def test_absent_group_is_an_empty_synced_table_until_it_appears(self):
        srv = self.server("--no-group")
        srv.control.apply(se("a", "240.0.3.1"))
        agent = self.agent(srv, extra=("--zone", "mesh.internal"))
        # synced and empty: an authoritative NXDOMAIN, not the SERVFAIL of "not synced yet"
        agent.wait_answer("a.global", "NXDOMAIN", 5)
        agent.wait_answer("x.mesh.internal", "NXDOMAIN", 1)
        self.assertIn("networking.istio.io is not served", agent.log())
        t = time.time()
        srv.control.set_group(True)
        took = agent.wait_answer("a.global", ["240.0.3.1"], 75)
        self.assertGreater(took, 1.0)  # found by the next discovery poll, not at once
        disc = srv.control.log(kind="discovery")
        self.assertEqual(disc[0]["status"], 404)
        self.assertEqual(disc[-1]["status"], 200)
        self.assertGreater(disc[-1]["time"], t)
        self.assertGreaterEqual(disc[-1]["time"] - disc[-2]["time"], 59)
        self.assert_clean_stop(agent)

    # ---- rule 38: TLS ---------------------------------------------------------------------

    def test_wrong_ca_fails_with_a_clear_message_and_invents_no_answer(self):
        srv = self.server()
        srv.control.apply(se("a", "240.0.3.1"))
        d = tempfile.mkdtemp(prefix="meshdns-ca-")
        ca = os.path.join(d, "other-ca.crt")
        key = os.path.join(d, "other-ca.key")

        def cleanup():
            for n in os.listdir(d):
                os.unlink(os.path.join(d, n))
            os.rmdir(d)
        self.addCleanup(cleanup)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=not the cluster CA",
                        "-days", "1", "-keyout", key, "-out", ca], check=True,
                       capture_output=True)
        # --sync-wait 1: serve after 1 s although nothing synced, as after an API outage at
        # start; a name in a --zone zone then gets SERVFAIL (rule 23), never an invention
        agent = self.agent(srv, ca_file=ca, extra=("--sync-wait", "1"))
        time.sleep(3)
        self.assertEqual(agent.query("a.global"), ("SERVFAIL", []))
        log = agent.log()
        self.assertIn("cannot be verified with the CA in %s" % ca, log)
        self.assertEqual(srv.control.log(kind="list"), [])
        self.assert_clean_stop(agent)

    def test_rotated_ca_is_read_again_for_new_connections(self):
        srv = self.server()
        srv.control.apply(se("a", "240.0.3.1"))
        agent = self.agent(srv)
        agent.wait_answer("a.global", ["240.0.3.1"], 5)
        self.open_watch(srv, agent)
        t = time.time()
        srv.control.rotate_ca()  # ca.crt rewritten; new connections get the new certificate
        srv.control.close_watches("fin")  # as an API server restart does
        self.open_watch(srv, agent, since=t)
        srv.control.apply(se("b", "240.0.3.2"))
        agent.wait_answer("b.global", ["240.0.3.2"], 1)
        self.assertNotIn("cannot be verified", agent.log())
        self.assertEqual(len(srv.control.log(kind="list")), 1)
        self.assert_clean_stop(agent)

    def test_403_is_logged_loudly_and_backed_off(self):
        srv = self.server()
        srv.control.apply(se("a", "240.0.3.1"))
        agent = self.agent(srv)
        agent.wait_answer("a.global", ["240.0.3.1"], 5)
        self.open_watch(srv, agent)
        time.sleep(1.2)  # an older watch: its end is not a "very short watch"
        t = time.time()
        srv.control.add_fault(kind="watch", code=403, count=3)
        srv.control.close_watches("graceful")
        self.open_watch(srv, agent, since=t)
        ws = [e for e in srv.control.log(kind="watch") if e["time"] >= t]
        self.assertEqual([e["status"] for e in ws], [403, 403, 403, 200])
        for n, gap in enumerate(request_gaps(ws)):
            low, high = backoff_envelope(n)
            self.assertGreaterEqual(gap, low - 0.05, (n, gap))
            self.assertLess(gap, high + 0.5, (n, gap))
        self.assertEqual(agent.query("a.global"), ("NOERROR", ["240.0.3.1"]))
        self.assertIn("403 Forbidden", agent.log())
        self.assertIn("RBAC", agent.log())
        self.assert_clean_stop(agent)

    def test_missing_ca_file_stops_the_agent_at_start(self):
        srv = self.server()
        agent = self.agent(srv, ca_file="/nonexistent/ca.crt")
        self.assertEqual(agent.proc.wait(timeout=10), 1)
        self.assertIn("cannot read the CA file /nonexistent/ca.crt", agent.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
