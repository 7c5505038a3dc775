#!/usr/bin/env python3
"""Self-test of the fake kube-apiserver with real clients: curl (discovery, list, raw watch
framing) and Python's http.client / a raw TLS socket (exact status codes, bodies, chunk
boundaries, stalls and connection ends).

Each test asserts what a client would see. The shared server is started on port 0 and stopped
(SIGTERM, then SIGKILL) even when tests fail; tests that need a pristine server start their own.
"""

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from control import (ApiServerProcess, ControlError, request_gaps, service_entry,  # noqa: E402
                     token_hash)

G = "/apis/networking.istio.io"
SRV = None
CURL = shutil.which("curl")


def setUpModule():
    global SRV
    SRV = ApiServerProcess()
    SRV.start()


def tearDownModule():
    if SRV is not None:
        SRV.stop()


class RawHTTP:
    """One HTTP/1.1 connection over TLS that exposes the chunk framing of responses."""

    def __init__(self, srv, path, token=True, timeout=5.0, host="127.0.0.1"):
        self.ctx = ssl.create_default_context(cafile=srv.ca)
        self.srv = srv
        sock = socket.create_connection((host, srv.port), timeout=timeout)
        self.s = self.ctx.wrap_socket(sock, server_hostname=host)
        self.buf = b""
        self.request(path, srv.token if token is True else token)

    def request(self, path, token):
        self.chunks = []
        self.lines = b""
        self.ended = False
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: meshdns-selftest\r\n"
               "Accept: application/json, */*\r\n" % path)
        if token:
            req += "Authorization: Bearer %s\r\n" % token
        self.s.sendall((req + "\r\n").encode())
        head = self._until(b"\r\n\r\n").decode()
        lines = head.split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()

    def _fill(self):
        data = self.s.recv(65536)
        if not data:
            raise EOFError("connection closed by server")
        self.buf += data

    def _until(self, sep):
        for _ in range(1000000):
            if sep in self.buf:
                break
            self._fill()
        i = self.buf.index(sep)
        out, self.buf = self.buf[:i], self.buf[i + len(sep):]
        return out

    def _exact(self, n):
        for _ in range(1000000):
            if len(self.buf) >= n:
                break
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def body(self):
        if "content-length" in self.headers:
            return self._exact(int(self.headers["content-length"]))
        out = b""
        for _ in range(1000000):
            c = self.read_chunk()
            if not c:
                return out
            out += c
        raise AssertionError("body too long")

    def json(self):
        return json.loads(self.body())

    def read_chunk(self):
        """The next chunk's data; b"" for the terminating chunk. EOFError if the connection
        ends mid-stream (no terminating chunk)."""
        size = int(self._until(b"\r\n").split(b";")[0], 16)
        data = self._exact(size)
        if self._exact(2) != b"\r\n":
            raise AssertionError("chunk not followed by CRLF")
        if size:
            self.chunks.append(data)
        else:
            self.ended = True
        return data

    def events(self, n, timeout=5.0):
        """Reads until @p n complete events (or the stream's clean end); returns them."""
        self.s.settimeout(timeout)
        out = []
        for _ in range(1000000):
            while b"\n" in self.lines and len(out) < n:
                line, self.lines = self.lines.split(b"\n", 1)
                out.append(json.loads(line))
            if len(out) >= n or self.ended:
                return out
            self.lines += self.read_chunk()
        return out

    def all_events(self, timeout=10.0):
        return self.events(10 ** 9, timeout)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def parse_chunked(raw):
    """Splits raw HTTP/1.1 chunked bytes into chunk payloads; asserts the framing is exact and
    ends with the terminating chunk."""
    chunks = []
    i = 0
    for _ in range(len(raw) + 1):
        j = raw.index(b"\r\n", i)
        size = int(raw[i:j].split(b";")[0], 16)
        data = raw[j + 2:j + 2 + size]
        assert len(data) == size, "truncated chunk"
        assert raw[j + 2 + size:j + 4 + size] == b"\r\n", "chunk not followed by CRLF"
        i = j + 4 + size
        if size == 0:
            assert i == len(raw), "bytes after the terminating chunk"
            return chunks
        chunks.append(data)
    raise AssertionError("no terminating chunk")


class Base(unittest.TestCase):
    srv = None

    @classmethod
    def server(cls):
        return cls.srv or SRV

    def setUp(self):
        self.s = self.server()
        self.c = self.s.control
        self.c.reset()
        self.ctx = ssl.create_default_context(cafile=self.s.ca)
        self.ns = "t-" + self.id().rsplit(".", 1)[-1].replace("_", "-")[:50].lower()
        self.raws = []

    def tearDown(self):
        for r in self.raws:
            r.close()

    def conn(self, timeout=10):
        return http.client.HTTPSConnection("127.0.0.1", self.s.port, context=self.ctx,
                                           timeout=timeout)

    def get(self, path, token=True, conn=None, headers=None):
        """GET with http.client; returns (status, headers, body bytes)."""
        c = conn or self.conn()
        h = {"Accept": "application/json"}
        tok = self.s.token if token is True else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        h.update(headers or {})
        c.request("GET", path, headers=h)
        r = c.getresponse()
        body = r.read()
        if conn is None:
            c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    def get_json(self, path, **kw):
        st, hd, body = self.get(path, **kw)
        return st, hd, json.loads(body)

    def raw(self, path, **kw):
        r = RawHTTP(self.s, path, **kw)
        self.raws.append(r)
        return r

    def curl(self, *args, timeout=20):
        if CURL is None:
            self.skipTest("curl not installed")
        p = subprocess.run([CURL, "-sS", "--http1.1", "--cacert", self.s.ca] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def auth(self):
        return "Authorization: Bearer " + self.s.token

    def url(self, path):
        return "https://127.0.0.1:%d%s" % (self.s.port, path)

    def se_path(self, version="v1", ns=None):
        return "%s/%s/namespaces/%s/serviceentries" % (G, version, ns or self.ns)

    def assert_status(self, body, code, reason):
        self.assertEqual(body["kind"], "Status")
        self.assertEqual(body["apiVersion"], "v1")
        self.assertEqual(body["status"], "Failure")
        self.assertEqual(body["code"], code)
        self.assertEqual(body["reason"], reason)


class DiscoveryTest(Base):
    def test_curl_discovery_verifies_ca_and_sans(self):
        rc, out, err = self.curl("-H", self.auth(), self.url("/apis"))
        self.assertEqual(rc, 0, err)
        groups = {g["name"]: g for g in json.loads(out)["groups"]}
        self.assertIn("networking.istio.io", groups)
        rc, out, err = self.curl("-H", self.auth(), "https://localhost:%d%s" % (self.s.port, G))
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertEqual(doc["kind"], "APIGroup")
        self.assertEqual([v["version"] for v in doc["versions"]], ["v1", "v1beta1", "v1alpha3"])
        self.assertEqual(doc["preferredVersion"], {"groupVersion": "networking.istio.io/v1", "version": "v1"})
        rc, out, err = self.curl("-H", self.auth(), self.url(G + "/v1"))
        self.assertEqual(rc, 0, err)
        res = {r["name"]: r for r in json.loads(out)["resources"]}
        se = res["serviceentries"]
        self.assertEqual(se["kind"], "ServiceEntry")
        self.assertTrue(se["namespaced"])
        self.assertTrue({"get", "list", "watch"} <= set(se["verbs"]))
        # Without the CA the certificate must not verify (curl exit 60).
        p = subprocess.run([CURL, "-sS", self.url("/apis")], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        self.assertEqual(p.returncode, 60)

    def test_served_versions_configurable(self):
        self.c.apply(service_entry("a", self.ns))
        self.c.set_versions("v1alpha3", "v1beta1")
        st, _, doc = self.get_json(G)
        self.assertEqual(doc["preferredVersion"]["version"], "v1beta1")
        self.assertEqual([v["version"] for v in doc["versions"]], ["v1beta1", "v1alpha3"])
        st, _, body = self.get_json(G + "/v1")
        self.assertEqual(st, 404)
        self.assert_status(body, 404, "NotFound")
        st, _, body = self.get_json(self.se_path("v1"))
        self.assertEqual(st, 404)
        st, _, lst = self.get_json(self.se_path("v1beta1"))
        self.assertEqual(st, 200)
        self.assertEqual(lst["items"][0]["apiVersion"], "networking.istio.io/v1beta1")

    def test_group_removal_gives_404_everywhere(self):
        self.c.set_group(False)
        st, _, doc = self.get_json("/apis")
        self.assertNotIn("networking.istio.io", [g["name"] for g in doc["groups"]])
        for path in (G, G + "/v1", G + "/v1/serviceentries", self.se_path() + "?watch=1"):
            st, _, body = self.get_json(path)
            self.assertEqual(st, 404, path)
            self.assert_status(body, 404, "NotFound")
        self.c.set_group(True)
        self.assertEqual(self.get(G + "/v1/serviceentries")[0], 200)


class AuthTest(Base):
    def test_missing_and_wrong_token_get_401_status(self):
        want = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
        for tok in (None, "wrong-token"):
            st, hd, body = self.get_json(G + "/v1/serviceentries", token=tok)
            self.assertEqual(st, 401)
            self.assertEqual(body, want)
        log = self.c.log()
        self.assertEqual([e["token_hash"] for e in log], [None, token_hash("wrong-token")])
        self.assertEqual([e["status"] for e in log], [401, 401])
        # The token itself appears nowhere: not in the log, not in the server's output.
        self.assertNotIn(self.s.token, json.dumps(self.c.log()))
        for name in ("stdout.log", "stderr.log"):
            with open(os.path.join(self.s.state_dir, name), encoding="utf-8", errors="replace") as f:
                self.assertNotIn(self.s.token, f.read())

    def test_token_rotation_by_control_call_and_by_file(self):
        self.c.set_tokens("new-token-1")
        self.assertEqual(self.get("/apis")[0], 401)
        self.assertEqual(self.get("/apis", token="new-token-1")[0], 200)
        self.assertEqual(self.c.log()[-1]["token_hash"], token_hash("new-token-1"))
        # The server re-reads its tokens file when it changes.
        path = os.path.join(self.s.state_dir, "tokens")
        with open(path + ".x", "w", encoding="utf-8") as f:
            f.write("file-token-2\n")
        os.replace(path + ".x", path)
        self.assertEqual(self.get("/apis", token="new-token-1")[0], 401)
        self.assertEqual(self.get("/apis", token="file-token-2")[0], 200)

    def test_injected_401_once(self):
        self.c.add_fault(kind="list", code=401)
        st, _, body = self.get_json(self.se_path())
        self.assertEqual((st, body["reason"]), (401, "Unauthorized"))
        self.assertEqual(self.get(self.se_path())[0], 200)


class ListTest(Base):
    def test_items_follow_requested_version_and_carry_metadata(self):
        obj = {"apiVersion": "networking.istio.io/v1alpha3", "kind": "ServiceEntry",
               "metadata": {"name": "reviews.default.cluster-2", "namespace": self.ns,
                            "uid": "7c1c2f4e-4d7b-4c55-9f0e-2b8f0d7a1e11",
                            "creationTimestamp": "2020-06-02T14:07:35Z"},
               "spec": {"hosts": ["reviews.default.cluster-2"], "addresses": ["240.0.0.3"],
                        "location": "MESH_INTERNAL", "resolution": "DNS",
                        "ports": [{"number": 9080, "protocol": "TCP", "name": "http"}]},
               "status": {"addresses": [{"value": "240.240.0.1", "host": "reviews.default.cluster-2"}]}}
        rv = self.c.apply(obj)[0]["resourceVersion"]
        for v in ("v1", "v1beta1", "v1alpha3"):
            st, _, lst = self.get_json(self.se_path(v))
            self.assertEqual(st, 200)
            self.assertEqual(lst["kind"], "ServiceEntryList")
            self.assertEqual(lst["apiVersion"], "networking.istio.io/" + v)
            self.assertIsInstance(lst["metadata"]["resourceVersion"], str)
            self.assertNotIn("continue", lst["metadata"])
            item = lst["items"][0]
            self.assertEqual(item["apiVersion"], "networking.istio.io/" + v)
            self.assertEqual(item["kind"], "ServiceEntry")
            m = item["metadata"]
            self.assertEqual((m["name"], m["namespace"], m["uid"], m["resourceVersion"], m["generation"],
                              m["creationTimestamp"]),
                             ("reviews.default.cluster-2", self.ns, obj["metadata"]["uid"], rv, 1,
                              "2020-06-02T14:07:35Z"))
            self.assertEqual(item["spec"], obj["spec"])
            self.assertEqual(item["status"], obj["status"])
        st, _, one = self.get_json(self.se_path("v1") + "/reviews.default.cluster-2")
        self.assertEqual((st, one["metadata"]["resourceVersion"]), (200, rv))
        st, _, body = self.get_json(self.se_path("v1") + "/missing")
        self.assertEqual(st, 404)
        self.assert_status(body, 404, "NotFound")

    def test_generation_grows_on_spec_change_only(self):
        a = self.c.apply(service_entry("a", self.ns, addresses=["240.0.0.1"]))[0]
        same = self.c.apply(service_entry("a", self.ns, addresses=["240.0.0.1"]))[0]
        self.assertEqual(same["resourceVersion"], a["resourceVersion"])  # no-op write
        b = self.c.apply(service_entry("a", self.ns, addresses=["240.0.0.2"]))[0]
        self.assertEqual(b["generation"], 2)
        self.assertGreater(int(b["resourceVersion"]), int(a["resourceVersion"]))
        c = self.c.update_status(self.ns, "a", {"addresses": [{"value": "240.240.0.9", "host": "a"}]})
        self.assertEqual(c["generation"], 2)
        self.assertGreater(int(c["resourceVersion"]), int(b["resourceVersion"]))
        self.assertEqual(b["uid"], c["uid"])

    def test_pagination_is_a_consistent_snapshot(self):
        self.c.generate(25, namespace=self.ns, prefix="p")
        st, _, p1 = self.get_json(self.se_path() + "?limit=10")
        self.assertEqual(len(p1["items"]), 10)
        self.assertEqual(p1["metadata"]["remainingItemCount"], 15)
        tok = p1["metadata"]["continue"]
        decoded = json.loads(base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)))
        self.assertEqual(set(decoded), {"v", "rv", "start"})
        list_rv = p1["metadata"]["resourceVersion"]
        # Writes between pages must not show up in later pages.
        self.c.apply(service_entry("zzz-new", self.ns))
        self.c.generate(1, namespace=self.ns, prefix="p", start=24)  # modifies p-24
        names = [i["metadata"]["name"] for i in p1["items"]]
        seen_rv = []
        for _ in range(10):
            st, _, p = self.get_json(self.se_path() + "?limit=10&continue=" + quote(tok))
            self.assertEqual(st, 200)
            seen_rv.append(p["metadata"]["resourceVersion"])
            names += [i["metadata"]["name"] for i in p["items"]]
            for i in p["items"]:
                if i["metadata"]["name"] == "p-24":
                    self.assertEqual(i["metadata"]["generation"], 1)
            tok = p["metadata"].get("continue")
            if not tok:
                self.assertNotIn("remainingItemCount", p["metadata"])
                break
        self.assertEqual(seen_rv, [list_rv, list_rv])
        self.assertEqual(sorted(names), sorted("p-%d" % i for i in range(25)))
        self.assertEqual(len(names), 25)
        self.assertNotIn("zzz-new", names)

    def test_continue_with_resource_version_is_400(self):
        self.c.generate(3, namespace=self.ns)
        st, _, p1 = self.get_json(self.se_path() + "?limit=1")
        tok = quote(p1["metadata"]["continue"])
        st, _, body = self.get_json(self.se_path() + "?limit=1&resourceVersion=%s&continue=%s"
                                    % (p1["metadata"]["resourceVersion"], tok))
        self.assertEqual(st, 400)
        self.assert_status(body, 400, "BadRequest")
        self.assertEqual(body["message"], "specifying resource version is not allowed when using continue")
        st, _, _ = self.get_json(self.se_path() + "?limit=1&resourceVersion=0&continue=" + tok)
        self.assertEqual(st, 200)  # "0" is tolerated, as by the real server
        st, _, body = self.get_json(self.se_path() + "?limit=1&continue=bm90LWpzb24")
        self.assertEqual(st, 400)

    def test_continue_tokens_expire_with_410(self):
        self.c.generate(6, namespace=self.ns)
        self.c.config(continue_ttl=0.3)
        st, _, p1 = self.get_json(self.se_path() + "?limit=2")
        time.sleep(0.5)
        st, _, body = self.get_json(self.se_path() + "?limit=2&continue=" + quote(p1["metadata"]["continue"]))
        self.assertEqual(st, 410)
        self.assert_status(body, 410, "Expired")
        fresh = body["metadata"]["continue"]  # the "inconsistent continue" token
        st, _, rest = self.get_json(self.se_path() + "?continue=" + quote(fresh))
        self.assertEqual(st, 200)
        self.assertEqual(len(rest["items"]), 4)
        # Explicit expiry through the control API.
        self.c.config(continue_ttl=300)
        st, _, p1 = self.get_json(self.se_path() + "?limit=2")
        self.c.expire_continue()
        st, _, body = self.get_json(self.se_path() + "?limit=2&continue=" + quote(p1["metadata"]["continue"]))
        self.assertEqual((st, body["reason"]), (410, "Expired"))

    def test_rv0_ignores_limit_only_when_configured(self):
        self.c.generate(12, namespace=self.ns)
        st, _, lst = self.get_json(self.se_path() + "?resourceVersion=0&limit=5")
        self.assertEqual(len(lst["items"]), 12)
        self.assertNotIn("continue", lst["metadata"])
        self.c.config(rv0_ignores_limit=False)
        st, _, lst = self.get_json(self.se_path() + "?resourceVersion=0&limit=5")
        self.assertEqual(len(lst["items"]), 5)
        self.assertEqual(lst["metadata"]["remainingItemCount"], 7)

    def test_exact_too_large_and_compacted_resource_versions(self):
        a = self.c.apply(service_entry("x", self.ns, addresses=["240.0.0.1"]))[0]
        b = self.c.apply(service_entry("x", self.ns, addresses=["240.0.0.2"]))[0]
        rv_a = a["resourceVersion"]
        # limit + RV = exact: the state at rv_a.
        st, _, lst = self.get_json(self.se_path() + "?limit=50&resourceVersion=" + rv_a)
        self.assertEqual(lst["metadata"]["resourceVersion"], rv_a)
        self.assertEqual(lst["items"][0]["spec"]["addresses"], ["240.0.0.1"])
        st, _, lst = self.get_json(self.se_path() + "?resourceVersionMatch=Exact&resourceVersion=" + rv_a)
        self.assertEqual(lst["items"][0]["spec"]["addresses"], ["240.0.0.1"])
        # RV without limit = not older than: current state.
        st, _, lst = self.get_json(self.se_path() + "?resourceVersion=" + rv_a)
        self.assertEqual(lst["items"][0]["spec"]["addresses"], ["240.0.0.2"])
        self.assertGreaterEqual(int(lst["metadata"]["resourceVersion"]), int(b["resourceVersion"]))
        # Newer than the server: 504 "Too large resource version".
        self.c.config(too_large_wait=0.2)
        st, _, body = self.get_json(self.se_path() + "?resourceVersion=%d" % (int(b["resourceVersion"]) + 10 ** 6))
        self.assertEqual(st, 504)
        self.assert_status(body, 504, "Timeout")
        self.assertIn("Too large resource version", body["message"])
        self.assertEqual(body["details"]["causes"][0]["reason"], "ResourceVersionTooLarge")
        # Compacted: 410 Expired.
        self.c.compact()
        st, _, body = self.get_json(self.se_path() + "?limit=50&resourceVersion=" + rv_a)
        self.assertEqual(st, 410)
        self.assert_status(body, 410, "Expired")

    def test_injected_status_faults_with_retry_after(self):
        self.c.add_fault(kind="list", code=429, count=2, retry_after=5)
        for _ in range(2):
            st, hd, body = self.get(self.se_path())
            self.assertEqual((st, hd.get("retry-after")), (429, "5"))
            self.assertIn(b"Too many requests", body)
        self.assertEqual(self.get(self.se_path())[0], 200)
        self.c.add_fault(kind="discovery", code=503, retry_after=3)
        self.assertEqual(self.get(self.se_path())[0], 200)  # lists are not affected
        st, hd, body = self.get(G)
        self.assertEqual((st, hd.get("retry-after")), (503, "3"))
        self.assert_status(json.loads(body), 503, "ServiceUnavailable")
        self.c.add_fault(kind="watch", code=500)
        st, _, body = self.get_json(self.se_path() + "?watch=1")
        self.assertEqual(st, 500)
        self.assert_status(body, 500, "InternalError")
        self.c.add_fault(kind="list", code=410)
        st, _, body = self.get_json(self.se_path())
        self.assert_status(body, 410, "Expired")
        self.assertEqual([e["status"] for e in self.c.log()], [429, 429, 200, 200, 503, 500, 410])

    def test_reset_fault_drops_the_connection(self):
        self.c.add_fault(kind="list", action="reset")
        with self.assertRaises((ConnectionError, http.client.RemoteDisconnected, ssl.SSLError)):
            self.get(self.se_path())
        self.assertEqual(self.get(self.se_path())[0], 200)

    def test_stalled_list_sends_nothing_then_drops(self):
        self.c.add_fault(kind="list", action="stall", seconds=1.0)
        t0 = time.monotonic()
        with self.assertRaises((ConnectionError, http.client.RemoteDisconnected, ssl.SSLError)):
            self.get(self.se_path())
        self.assertGreater(time.monotonic() - t0, 0.9)
        # A released stall answers normally.
        self.c.add_fault(kind="list", action="stall", seconds=30)
        threading.Timer(0.5, self.c.release_stalls).start()
        t0 = time.monotonic()
        self.assertEqual(self.get(self.se_path())[0], 200)
        self.assertGreater(time.monotonic() - t0, 0.4)


class WatchTest(Base):
    def watch(self, query, **kw):
        return self.raw(self.se_path() + "?watch=1&" + query, **kw)

    def test_events_and_resume_from_resource_version(self):
        st, _, lst = self.get_json(self.se_path())
        rv0 = lst["metadata"]["resourceVersion"]
        w = self.watch("resourceVersion=%s&timeoutSeconds=10" % rv0)
        self.assertEqual(w.status, 200)
        self.assertEqual(w.headers.get("transfer-encoding"), "chunked")
        a = self.c.apply(service_entry("a", self.ns, addresses=["240.0.0.1"]))[0]
        m = self.c.apply(service_entry("a", self.ns, addresses=["240.0.0.2"]))[0]
        d = self.c.delete(self.ns, "a")
        evs = w.events(3)
        self.assertEqual([e["type"] for e in evs], ["ADDED", "MODIFIED", "DELETED"])
        self.assertEqual([e["object"]["metadata"]["resourceVersion"] for e in evs],
                         [a["resourceVersion"], m["resourceVersion"], d["resourceVersion"]])
        self.assertEqual(evs[2]["object"]["spec"]["addresses"], ["240.0.0.2"])  # last state
        self.assertEqual(evs[0]["object"]["apiVersion"], "networking.istio.io/v1")
        w2 = self.watch("resourceVersion=%s&timeoutSeconds=10" % m["resourceVersion"])
        evs = w2.events(1)
        self.assertEqual((evs[0]["type"], evs[0]["object"]["metadata"]["resourceVersion"]),
                         ("DELETED", d["resourceVersion"]))
        watches = self.c.log(kind="watch")
        self.assertEqual(watches[-1]["query"]["resourceVersion"], m["resourceVersion"])

    def test_watch_from_zero_or_empty_sends_synthetic_added(self):
        self.c.generate(3, namespace=self.ns)
        for q in ("resourceVersion=0", "resourceVersion=", ""):
            w = self.watch(q + "&timeoutSeconds=10")
            evs = w.events(3)
            self.assertEqual([e["type"] for e in evs], ["ADDED"] * 3, q)
            self.c.apply(service_entry("late" + str(len(q)), self.ns))
            self.assertEqual(w.events(1)[0]["type"], "ADDED")
            w.close()

    def test_namespaced_watch_sees_only_its_namespace(self):
        st, _, lst = self.get_json(self.se_path())
        w = self.watch("resourceVersion=%s&timeoutSeconds=10" % lst["metadata"]["resourceVersion"])
        self.c.apply(service_entry("other", self.ns + "-x"))
        self.c.apply(service_entry("mine", self.ns))
        ev = w.events(1)[0]
        self.assertEqual(ev["object"]["metadata"]["name"], "mine")

    def test_bookmarks_only_when_allowed(self):
        self.c.config(bookmark_interval=0.3)
        rv = self.c.state()["resourceVersion"]
        w = self.watch("resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=2" % rv)
        evs = w.all_events()
        self.assertTrue(w.ended)
        self.assertGreaterEqual(len(evs), 3)
        for e in evs:
            self.assertEqual(e["type"], "BOOKMARK")
            self.assertEqual(set(e["object"]), {"apiVersion", "kind", "metadata"})
            self.assertEqual(e["object"]["metadata"], {"resourceVersion": rv})
        w = self.watch("resourceVersion=%s&timeoutSeconds=1" % rv)
        self.assertEqual(w.all_events(), [])
        self.assertTrue(w.ended)

    def test_timeout_ends_stream_cleanly_and_keeps_connection(self):
        rv = self.c.state()["resourceVersion"]
        t0 = time.monotonic()
        w = self.watch("resourceVersion=%s&timeoutSeconds=1" % rv)
        self.assertEqual(w.all_events(), [])
        took = time.monotonic() - t0
        self.assertTrue(w.ended)
        self.assertTrue(0.8 < took < 3.0, took)
        w.request(G, self.s.token)  # same connection, next request
        self.assertEqual(w.status, 200)
        self.assertEqual(w.json()["kind"], "APIGroup")

    def test_random_chunking_splits_events_and_packs_several(self):
        self.c.config(chunk_mode="random", chunk_seed=7, chunk_max=2000)
        rv = self.c.state()["resourceVersion"]
        w = self.watch("resourceVersion=%s&timeoutSeconds=10" % rv)
        self.c.generate(30, namespace=self.ns)
        evs = w.events(30)
        self.assertEqual([e["object"]["metadata"]["name"] for e in evs], ["se-%d" % i for i in range(30)])
        self.assertTrue(any(not c.endswith(b"\n") for c in w.chunks), "no event split across chunks")
        self.assertTrue(any(c.count(b"\n") >= 2 for c in w.chunks), "no chunk with several events")

    def test_one_byte_chunks(self):
        self.c.config(chunk_mode="bytes", chunk_max=1)
        rv = self.c.state()["resourceVersion"]
        w = self.watch("resourceVersion=%s&timeoutSeconds=10" % rv)
        self.c.generate(2, namespace=self.ns)
        evs = w.events(2)
        self.assertEqual(len(evs), 2)
        self.assertTrue(all(len(c) == 1 for c in w.chunks))
        self.assertGreater(len(w.chunks), 200)

    def test_curl_raw_watch_framing(self):
        self.c.config(chunk_mode="random", chunk_seed=3, chunk_max=300)
        rv = self.c.state()["resourceVersion"]
        threading.Timer(0.5, lambda: self.c.generate(5, namespace=self.ns)).start()
        rc, out, err = self.curl("-N", "--raw", "-H", self.auth(), self.url(
            self.se_path() + "?watch=1&resourceVersion=%s&timeoutSeconds=2" % rv))
        self.assertEqual(rc, 0, err)
        chunks = parse_chunked(out)
        self.assertTrue(any(not c.endswith(b"\n") for c in chunks))
        lines = b"".join(chunks).split(b"\n")
        self.assertEqual(lines[-1], b"")
        evs = [json.loads(x) for x in lines[:-1]]
        self.assertEqual([e["type"] for e in evs], ["ADDED"] * 5)
        # Without --raw curl de-chunks to the same newline-delimited JSON.
        rc, out2, err = self.curl("-N", "-H", self.auth(), self.url(
            self.se_path() + "?watch=1&resourceVersion=%s&timeoutSeconds=1" % rv))
        self.assertEqual(out2, b"".join(chunks))

    def test_410_as_status_and_as_error_event(self):
        rv = self.c.state()["resourceVersion"]
        self.c.add_fault(kind="watch", code=410, mode="status")
        w = self.watch("resourceVersion=%s" % rv)
        self.assertEqual(w.status, 410)
        self.assert_status(w.json(), 410, "Expired")
        self.c.add_fault(kind="watch", code=410, mode="event")
        w = self.watch("resourceVersion=%s" % rv)
        self.assertEqual(w.status, 200)
        evs = w.all_events()
        self.assertEqual(len(evs), 1)
        self.assertEqual(evs[0]["type"], "ERROR")
        self.assert_status(evs[0]["object"], 410, "Expired")
        self.assertTrue(w.ended)
        # Natural expiry after compaction: ERROR event by default, HTTP 410 if configured.
        self.c.apply(service_entry("c", self.ns))
        self.c.compact()
        w = self.watch("resourceVersion=%s" % rv)
        evs = w.all_events()
        self.assertEqual((w.status, evs[0]["type"], evs[0]["object"]["code"]), (200, "ERROR", 410))
        self.assertIn("too old resource version", evs[0]["object"]["message"])
        self.c.config(watch_410_mode="status")
        w = self.watch("resourceVersion=%s" % rv)
        self.assertEqual(w.status, 410)

    def test_send_initial_events_ends_with_annotated_bookmark(self):
        self.c.generate(2, namespace=self.ns)
        w = self.watch("sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=10")
        evs = w.events(3)
        self.assertEqual([e["type"] for e in evs], ["ADDED", "ADDED", "BOOKMARK"])
        self.assertEqual(evs[2]["object"]["metadata"]["annotations"], {"k8s.io/initial-events-end": "true"})
        w = self.watch("sendInitialEvents=true&resourceVersionMatch=NotOlderThan")
        self.assertEqual(w.status, 422)
        self.c.config(watch_list=False)
        w = self.watch("sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")
        self.assertEqual(w.status, 422)

    def test_stall_fault_sends_headers_then_nothing(self):
        self.c.config(bookmark_interval=0.2)
        self.c.add_fault(kind="watch", action="stall", seconds=20)
        rv = self.c.state()["resourceVersion"]
        w = self.watch("resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=20" % rv)
        self.assertEqual(w.status, 200)
        self.c.apply(service_entry("s", self.ns))
        with self.assertRaises(TimeoutError):
            w.events(1, timeout=1.0)
        self.assertEqual(w.buf, b"")
        self.c.release_stalls()
        ev = w.events(1, timeout=5)[0]
        self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "s"))

    def test_stall_of_open_watches(self):
        self.c.config(bookmark_interval=0.2)
        rv = self.c.state()["resourceVersion"]
        w = self.watch("resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=20" % rv)
        self.assertEqual(w.events(1)[0]["type"], "BOOKMARK")
        self.c.stall_watches(True)
        w.s.settimeout(0.3)
        t0 = time.monotonic()
        with self.assertRaises(TimeoutError):  # take in what was sent before the stall; must dry up
            while time.monotonic() - t0 < 1.5:
                w._fill()
        self.c.apply(service_entry("s", self.ns))
        w.s.settimeout(1.0)
        with self.assertRaises(TimeoutError):  # then: not one byte, not even a bookmark
            w._fill()
        self.c.stall_watches(False)
        evs = w.events(30, timeout=5)
        added = [e for e in evs if e["type"] == "ADDED"]
        self.assertEqual(added[0]["object"]["metadata"]["name"], "s")
        self.assertFalse(w.ended)

    def test_watcher_left_behind_by_compaction_gets_410_event(self):
        rv = self.c.state()["resourceVersion"]
        w = self.watch("resourceVersion=%s&timeoutSeconds=20" % rv)
        time.sleep(0.2)
        self.c.stall_watches(True)
        self.c.apply(service_entry("gone", self.ns))
        self.c.compact()
        self.c.stall_watches(False)
        evs = w.all_events()
        self.assertEqual([e["type"] for e in evs], ["ERROR"])
        self.assert_status(evs[0]["object"], 410, "Expired")
        self.assertTrue(w.ended)

    def test_close_all_watches(self):
        rv = self.c.state()["resourceVersion"]
        path = self.se_path() + "?watch=1&resourceVersion=%s&timeoutSeconds=20" % rv
        for mode, expect in (("fin", EOFError), ("graceful", None)):
            ws = [self.watch("resourceVersion=%s&timeoutSeconds=20" % rv) for _ in range(2)]
            time.sleep(0.2)
            self.assertEqual(self.c.close_watches(mode)["closed"], 2)
            for w in ws:
                if expect is None:
                    self.assertEqual(w.all_events(), [])
                    self.assertTrue(w.ended)
                else:  # no terminating chunk: the client sees a truncated stream
                    with self.assertRaises(expect, msg=mode):
                        w.all_events()
                w.close()
        # curl tells FIN (18: transfer closed with outstanding read data) from RST (56).
        if CURL is None:
            self.skipTest("curl not installed")
        for mode, code in (("fin", 18), ("rst", 56)):
            p = subprocess.Popen([CURL, "-sS", "-N", "--http1.1", "--cacert", self.s.ca, "-H", self.auth(),
                                  self.url(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                for _ in range(50):
                    if self.c.state()["watches"] >= 1:
                        break
                    time.sleep(0.05)
                self.c.close_watches(mode)
                _, err = p.communicate(timeout=10)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            self.assertEqual(p.returncode, code, err)

    def test_server_down_and_up_on_same_port(self):
        rv = self.c.state()["resourceVersion"]
        w = self.watch("resourceVersion=%s&timeoutSeconds=20" % rv)
        port = self.s.port
        self.c.down()
        with self.assertRaises(EOFError):
            w.all_events()
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        self.assertEqual(self.c.up()["port"], port)
        self.assertEqual(self.get(G)[0], 200)
        # "reset" mode: connections are accepted, logged and reset, so rates can be measured.
        self.c.down(mode="reset")
        self.c.clear_log()
        for _ in range(3):
            with self.assertRaises((ConnectionError, ssl.SSLError)):
                self.get(G)
        log = self.c.log()
        self.assertEqual([e["kind"] for e in log], ["connect"] * 3)
        self.assertEqual(len(request_gaps(log)), 2)
        self.c.up()
        self.assertEqual(self.get(G)[0], 200)

    def test_request_log_records_what_clients_sent(self):
        self.get(self.se_path() + "?resourceVersion=0&limit=500")
        rv = self.c.state()["resourceVersion"]
        w = self.watch("resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=1" % rv)
        w.all_events()
        time.sleep(0.1)
        lst, wat = self.c.log()
        self.assertEqual((lst["method"], lst["path"], lst["kind"], lst["watch"], lst["status"]),
                         ("GET", self.se_path(), "list", False, 200))
        self.assertEqual(lst["query"], {"resourceVersion": "0", "limit": "500"})
        self.assertEqual(lst["token_hash"], token_hash(self.s.token))
        self.assertGreaterEqual(lst["end"], lst["time"])
        self.assertTrue(wat["watch"])
        self.assertEqual(wat["query"]["resourceVersion"], rv)
        self.assertEqual(wat["ended"], "timeout")
        self.assertGreaterEqual(wat["end"] - wat["time"], 0.9)


class OwnServerTest(unittest.TestCase):
    """Tests that need a server of their own."""

    def test_100k_entries_listed_in_pages_of_500(self):
        with ApiServerProcess() as srv:
            gen = srv.control.generate(100000)
            ctx = ssl.create_default_context(cafile=srv.ca)
            conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=30)
            hdr = {"Authorization": "Bearer " + srv.token, "Accept": "application/json"}
            for label, first in (("rv=\"\"", ""), ("rv=0", "resourceVersion=0&")):
                if first:
                    srv.control.config(rv0_ignores_limit=False)
                srv.control.clear_log()
                names = set()
                pages = 0
                nbytes = 0
                cont = None
                parse = 0.0
                t0 = time.monotonic()
                for _ in range(1000):
                    q = "limit=500&" + ("continue=" + quote(cont) if cont else first)
                    conn.request("GET", G + "/v1/serviceentries?" + q, headers=hdr)
                    r = conn.getresponse()
                    body = r.read()
                    self.assertEqual(r.status, 200)
                    nbytes += len(body)
                    tp = time.monotonic()
                    page = json.loads(body)
                    names.update(i["metadata"]["name"] for i in page["items"])
                    parse += time.monotonic() - tp
                    pages += 1
                    cont = page["metadata"].get("continue")
                    if not cont:
                        break
                wall = time.monotonic() - t0
                server = sum(e["duration"] for e in srv.control.log())
                self.assertEqual((len(names), pages), (100000, 200))
                sys.stderr.write("\n100k list %s: generate %.2fs; %d pages, %.1f MB; wall %.2fs = "
                                 "transfer %.2fs + Python JSON decoding %.2fs; server time %.2fs\n"
                                 % (label, gen["seconds"], pages, nbytes / 1e6, wall, wall - parse,
                                    parse, server))
                self.assertLess(server, 3.0)
                self.assertLess(wall - parse, 5.0)
            conn.close()

    def test_ipv6_ca_rotation_and_clean_sigterm_exit(self):
        srv = ApiServerProcess(args=["--address", "::1"])
        srv.start()
        try:
            self.assertTrue(srv.api_url.startswith("https://[::1]:"))
            if CURL:
                p = subprocess.run([CURL, "-sS", "--cacert", srv.ca, "-H", "Authorization: Bearer " + srv.token,
                                    srv.api_url + "/version"], stdout=subprocess.PIPE, timeout=20)
                self.assertEqual(p.returncode, 0)
                self.assertEqual(json.loads(p.stdout)["major"], "1")
            old_ctx = ssl.create_default_context(cafile=srv.ca)
            srv.control.rotate_ca()
            with self.assertRaises(ssl.SSLCertVerificationError):
                old_ctx.wrap_socket(socket.create_connection(("::1", srv.port), timeout=5),
                                    server_hostname="::1").close()
            new_ctx = ssl.create_default_context(cafile=srv.ca)
            new_ctx.wrap_socket(socket.create_connection(("::1", srv.port), timeout=5),
                                server_hostname="::1").close()
            with self.assertRaises(ControlError):
                srv.control.config(no_such_knob=1)
            t0 = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            self.assertEqual(srv.proc.wait(timeout=10), 0)
            self.assertLess(time.monotonic() - t0, 5)
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
