"""Client for the fake kube-apiserver's control endpoint, and a launcher for the server process.

    from control import ApiServerProcess
    with ApiServerProcess(args=["--set", "bookmark_interval=1"]) as srv:
        srv.control.apply(service_entry("reviews", "istio-system", ["reviews.global"], ["240.0.0.3"]))
        srv.control.add_fault(kind="watch", code=410, mode="event")
        entries = srv.control.log()

Stdlib only. Every call raises ControlError on a non-200 answer.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "kube_apiserver.py")


class ControlError(Exception):
    def __init__(self, code, body):
        super().__init__("control call failed (%s): %s" % (code, body))
        self.code = code
        self.body = body


def token_hash(token):
    """The hash the request log records for @p token (first 12 hex digits of SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def service_entry(name, namespace="default", hosts=None, addresses=None, ports=None,
                  resolution="STATIC", location="MESH_INTERNAL", endpoints=None, export_to=None,
                  labels=None, status_addresses=None):
    """A ServiceEntry object ({metadata, spec[, status]}) as the control API accepts it."""
    spec = {"hosts": hosts or ["%s.%s.global" % (name, namespace)], "location": location,
            "resolution": resolution,
            "ports": ports or [{"number": 80, "protocol": "HTTP", "name": "http"}]}
    if addresses:
        spec["addresses"] = addresses
    if endpoints:
        spec["endpoints"] = endpoints
    if export_to:
        spec["exportTo"] = export_to
    obj = {"metadata": {"name": name, "namespace": namespace}, "spec": spec}
    if labels:
        obj["metadata"]["labels"] = labels
    if status_addresses:
        obj["status"] = {"addresses": status_addresses}
    return obj


def request_gaps(entries):
    """Seconds between consecutive log entries (by start time), e.g. to check a backoff."""
    times = sorted(e["time"] for e in entries)
    return [b - a for a, b in zip(times, times[1:])]


def request_rate(entries, start, end):
    """Requests per second among @p entries that started in [@p start, @p end) (epoch s)."""
    n = sum(1 for e in entries if start <= e["time"] < end)
    return n / (end - start) if end > start else 0.0


def backoff_envelope(attempt, initial=0.8, factor=2.0, cap=30.0, jitter=1.0):
    """(low, high) bounds of client-go's reflector delay before retry number @p attempt
    (0-based): d = min(initial * factor**attempt, cap), delay in [d, d * (1 + jitter)).
    Clients with "full jitter" draw from [0, d) instead: compare their gaps with high only."""
    d = min(initial * factor ** attempt, cap)
    return d, d * (1.0 + jitter)


class Control:
    """One method per control call (see README.md). @p url is http://127.0.0.1:<control port>."""

    def __init__(self, url, timeout=120):
        self.url = url.rstrip("/")
        self.timeout = timeout

    @classmethod
    def from_state_dir(cls, state_dir):
        with open(os.path.join(state_dir, "ready.json"), encoding="utf-8") as f:
            return cls(json.load(f)["control_url"])

    def call(self, call_name, /, **args):
        data = json.dumps(args).encode()
        req = urllib.request.Request(self.url + "/" + call_name, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read())["result"]
        except urllib.error.HTTPError as e:
            raise ControlError(e.code, e.read().decode(errors="replace")) from None

    # objects
    def apply(self, *objects):
        """Creates or updates objects (full objects or {metadata, spec[, status]})."""
        return self.call("apply", objects=list(objects))

    def create(self, *objects):
        return self.call("create", objects=list(objects))

    def update(self, *objects):
        return self.call("update", objects=list(objects))

    def update_status(self, namespace, name, status):
        return self.call("update_status", namespace=namespace, name=name, status=status)

    def delete(self, namespace, name):
        return self.call("delete", namespace=namespace, name=name)[0]

    def delete_all(self, namespace=None):
        return self.call("delete_all", namespace=namespace)

    def generate(self, count, namespace="bulk", prefix="se", start=0, suffix="global"):
        return self.call("generate", count=count, namespace=namespace, prefix=prefix,
                         start=start, suffix=suffix)

    def get(self, namespace, name, version=None):
        return self.call("get", namespace=namespace, name=name, version=version)

    # state and knobs
    def state(self):
        return self.call("state")

    def config(self, **changes):
        return self.call("config", **changes)

    def set_tokens(self, *tokens):
        return self.call("set_tokens", tokens=list(tokens))

    def set_group(self, present):
        return self.call("set_group", present=present)

    def set_versions(self, *versions):
        return self.call("set_versions", versions=list(versions))

    # faults
    def add_fault(self, kind="any", code=503, count=1, retry_after=None, mode="status",
                  action="status", message=None, seconds=0, send_headers=True):
        """Next @p count requests of @p kind (any/discovery/list/watch/get) get @p action:
        "status" (HTTP @p code; for watches @p mode "event" = 200 + ERROR event), "stall"
        (no bytes for @p seconds or until release_stalls) or "reset" (TCP RST)."""
        spec = {"kind": kind, "code": code, "count": count, "mode": mode, "action": action,
                "seconds": seconds, "send_headers": send_headers}
        if retry_after is not None:
            spec["retry_after"] = retry_after
        if message is not None:
            spec["message"] = message
        return self.call("add_fault", **spec)["id"]

    def clear_faults(self):
        return self.call("clear_faults")

    def faults(self):
        return self.call("faults")

    def stall_watches(self, on=True):
        return self.call("stall_watches", on=on)

    def release_stalls(self):
        return self.call("release_stalls")

    def close_watches(self, mode="fin"):
        return self.call("close_watches", mode=mode)

    def down(self, mode="refuse"):
        """"refuse": stop listening (ECONNREFUSED). "reset": accept, log (kind "connect") and
        reset every connection before TLS, so reconnect attempts show in the log."""
        return self.call("down", mode=mode)

    def up(self):
        return self.call("up")

    def compact(self, rv=None):
        return self.call("compact", rv=rv)

    def expire_continue(self):
        return self.call("expire_continue")

    def rotate_ca(self):
        return self.call("rotate_ca")

    # request log
    def log(self, since=0, kind=None, clear=False):
        """Request log entries (dicts) with id > @p since, optionally only @p kind."""
        return self.call("log", since=since, kind=kind, clear=clear)["entries"]

    def clear_log(self):
        return self.call("clear_log")

    def reset(self):
        return self.call("reset")


class ApiServerProcess:
    """Starts kube_apiserver.py on port 0 in a (temporary) state dir and waits for READY.

    Attributes once started: pid, port, api_url, ca, token, token_file, state_dir, control.
    stop() sends SIGTERM (SIGKILL after a grace period) and removes a temporary state dir.
    """

    def __init__(self, args=(), state_dir=None, ready_timeout=30):
        self.args = list(args)
        self.own_dir = state_dir is None
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="fake-apiserver-")
        self.ready_timeout = ready_timeout
        self.proc = None
        self.returncode = None

    def start(self):
        out_path = os.path.join(self.state_dir, "stdout.log")
        with open(out_path, "wb") as out, \
                open(os.path.join(self.state_dir, "stderr.log"), "wb") as err:
            self.proc = subprocess.Popen([sys.executable, SERVER, "--state-dir", self.state_dir,
                                          "--port", "0"] + self.args, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.ready_timeout
        line = b""
        while time.monotonic() < deadline and self.proc.poll() is None:
            with open(out_path, "rb") as f:
                line = f.readline()
            if line.endswith(b"\n"):
                break
            time.sleep(0.05)
        if not line.startswith(b"READY "):
            self.stop()
            raise RuntimeError("fake apiserver did not start: %r" % line)
        info = json.loads(line[6:])
        self.pid = info["pid"]
        self.port = info["port"]
        self.api_url = info["api_url"]
        self.ca = info["ca"]
        self.token_file = info["token_file"]
        with open(self.token_file, encoding="utf-8") as f:
            self.token = f.read().strip()
        self.control = Control(info["control_url"])
        return self

    def stop(self, timeout=10):
        """SIGTERM, wait up to @p timeout, SIGKILL if needed; returns the exit status."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        if self.proc is not None:
            self.returncode = self.proc.returncode
        if self.own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        return self.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
