"""Plain-HTTP control endpoint on 127.0.0.1 for tests: POST /<call> with a JSON object of
arguments, answer {"result": ...} (200) or {"error": "..."} (4xx). GET /<call> works for calls
without arguments. The calls are the methods named in CALLS; README.md lists them all.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import tlsgen
from api import sort_versions
from faults import DEFAULT_CONFIG
from store import StoreError

MAX_BODY = 512 * 1024 * 1024


class Controller:
    """What the control calls do. Each method takes keyword arguments from the JSON body."""

    def __init__(self, app, listener, state_dir, extra_sans, initial_tokens, initial_config):
        self.app = app
        self.listener = listener
        self.state_dir = state_dir
        self.extra_sans = extra_sans
        self.initial_tokens = list(initial_tokens)
        self.initial_config = dict(initial_config)
        self.lock = threading.Lock()

    # ---- objects -------------------------------------------------------------------------

    @staticmethod
    def _summary(rec):
        meta = rec.obj()["metadata"]
        return {"namespace": rec.namespace, "name": rec.name, "resourceVersion": str(rec.rv),
                "uid": meta["uid"], "generation": meta.get("generation")}

    def _objects(self, args):
        if "objects" in args:
            objs = args["objects"]
        elif "object" in args:
            objs = [args["object"]]
        else:
            objs = [args]
        if not isinstance(objs, list):
            raise ValueError("objects must be a list")
        return [self._normalize(o) for o in objs]

    @staticmethod
    def _normalize(o):
        """Accepts a full object, {metadata, spec, status}, or {name, namespace, spec}."""
        if not isinstance(o, dict):
            raise ValueError("each object must be a JSON object")
        if "metadata" not in o and "name" in o:
            o = dict(o)
            o["metadata"] = {"name": o.pop("name"), "namespace": o.pop("namespace", "default")}
        if o.get("kind") not in (None, "ServiceEntry"):
            raise ValueError("kind must be ServiceEntry")
        return o

    def apply(self, **args):
        return [self._summary(self.app.store.apply(o, "apply")) for o in self._objects(args)]

    def create(self, **args):
        return [self._summary(self.app.store.apply(o, "create")) for o in self._objects(args)]

    def update(self, **args):
        return [self._summary(self.app.store.apply(o, "update")) for o in self._objects(args)]

    def update_status(self, namespace="default", name=None, status=None):
        obj = {"metadata": {"namespace": namespace, "name": name}, "status": status}
        return self._summary(self.app.store.apply(obj, "status"))

    def delete(self, namespace="default", name=None, objects=None):
        targets = objects if objects is not None else [{"namespace": namespace, "name": name}]
        out = []
        for t in targets:
            rec = self.app.store.delete(t.get("namespace", "default"), t["name"])
            out.append({"namespace": rec.namespace, "name": rec.name, "resourceVersion": str(rec.rv)})
        return out

    def delete_all(self, namespace=None):
        return {"deleted": self.app.store.delete_all(namespace),
                "resourceVersion": str(self.app.store.current_rv())}

    def generate(self, count, namespace="bulk", prefix="se", start=0, suffix="global"):
        t0 = time.monotonic()
        first, last = self.app.store.generate(count, namespace, prefix, start, suffix)
        return {"count": int(count), "firstResourceVersion": None if first is None else str(first),
                "resourceVersion": str(last), "seconds": round(time.monotonic() - t0, 3)}

    def get(self, namespace="default", name=None, version=None):
        rec = self.app.store.get(namespace, name)
        if rec is None:
            raise StoreError(404, "NotFound", "%s/%s not found" % (namespace, name))
        return json.loads(rec.item(version or (self.app.versions or ["v1"])[0]))

    # ---- server state --------------------------------------------------------------------

    def state(self):
        conns, watches = self.listener.registry.count()
        out = self.app.store.counts()
        out.update({"listening": self.listener.listening, "port": self.listener.port,
                    "connections": conns, "watches": watches, "versions": self.app.versions,
                    "group_present": self.app.group_present, "stall_watches": self.app.stall_watches,
                    "reset_connections": self.app.reset_connections,
                    "faults": self.app.faults.describe(), "token_hashes": self.app.tokens.hashes(),
                    "config": self.app.config.snapshot()})
        return out

    def config(self, **changes):
        self.app.config.update(changes)
        self._push_config()
        return self.app.config.snapshot()

    def _push_config(self):
        c = self.app.config
        st = self.app.store
        st.set_history(c.history_events, c.history_seconds)
        st.continue_ttl = c.continue_ttl
        st.managed_fields = c.managed_fields

    def set_tokens(self, tokens):
        if isinstance(tokens, str):
            tokens = [tokens]
        return {"valid": self.app.tokens.set(tokens)}

    def set_group(self, present=True):
        self.app.group_present = bool(present)
        return {"group_present": self.app.group_present}

    def set_versions(self, versions):
        if not isinstance(versions, list) or not all(isinstance(v, str) and v for v in versions):
            raise ValueError("versions must be a list of strings")
        self.app.versions = sort_versions(versions)
        return {"versions": self.app.versions,
                "preferred": self.app.versions[0] if self.app.versions else None}

    # ---- faults --------------------------------------------------------------------------

    def add_fault(self, **spec):
        return {"id": self.app.faults.add(spec)}

    def clear_faults(self):
        return {"cleared": self.app.faults.clear()}

    def faults(self):
        return self.app.faults.describe()

    def stall_watches(self, on=True):
        self.app.stall_watches = bool(on)
        self.app.store.notify()
        return {"stall_watches": self.app.stall_watches}

    def release_stalls(self):
        self.app.stall_gen += 1
        self.app.stall_watches = False
        self.app.store.notify()
        return {"released": True}

    def close_watches(self, mode="fin"):
        if mode not in ("fin", "rst", "graceful"):
            raise ValueError("mode must be fin, rst or graceful")
        _, watches = self.listener.registry.count()
        self.app.close_mode = mode
        self.app.close_gen += 1
        self.app.store.notify()
        return {"closed": watches, "mode": mode}

    def down(self, mode="refuse"):
        """Server down. "refuse": stop listening (clients get ECONNREFUSED; nothing can be
        logged). "reset": keep the port, reset every new connection before TLS and log it as
        kind "connect" (so tests can measure reconnect rates). Open connections are dropped."""
        if mode not in ("refuse", "reset"):
            raise ValueError("mode must be refuse or reset")
        if mode == "refuse":
            n = self.listener.stop()
        else:
            self.app.reset_connections = True
            n = self.listener.registry.kill_all()
            self.app.store.notify()
        return {"listening": mode == "reset", "mode": mode, "dropped_connections": n,
                "port": self.listener.port}

    def up(self):
        self.app.reset_connections = False
        port = self.listener.start()
        return {"listening": True, "port": port}

    def compact(self, rv=None):
        return {"compactedResourceVersion": str(self.app.store.compact(rv)),
                "resourceVersion": str(self.app.store.current_rv())}

    def expire_continue(self):
        return {"expired": self.app.store.expire_snapshots()}

    def rotate_ca(self):
        """New CA and server certificate; ca.crt is rewritten; new connections use them."""
        with self.lock:
            tlsgen.generate(self.state_dir, self.extra_sans)
            self.app.ctx = tlsgen.server_context(self.state_dir)
        return {"ca": tlsgen.paths(self.state_dir)["ca"]}

    # ---- request log ---------------------------------------------------------------------

    def log(self, since=0, kind=None, clear=False):
        entries, last = self.app.log.get(int(since), kind, bool(clear))
        for e in entries:
            e.pop("mono", None)
        return {"entries": entries, "last_id": last}

    def clear_log(self):
        self.app.log.clear()
        return {"cleared": True}

    def reset(self):
        """Back to the start-up knobs (objects are kept): faults, stalls, config, group, versions,
        tokens, closed watches, log."""
        self.app.faults.clear()
        self.app.stall_watches = False
        self.app.stall_gen += 1
        self.app.config.update({k: self.initial_config.get(k, v) for k, v in DEFAULT_CONFIG.items()})
        self._push_config()
        self.app.group_present = True
        self.app.versions = list(self.app.default_versions)
        self.app.tokens.set(self.initial_tokens)
        self.app.store.expire_snapshots()
        self.app.reset_connections = False
        if not self.listener.listening:
            self.listener.start()
        self.app.store.notify()
        self.app.log.clear()
        return self.state()


CALLS = ("apply", "create", "update", "update_status", "delete", "delete_all", "generate", "get",
         "state", "config", "set_tokens", "set_group", "set_versions", "add_fault", "clear_faults",
         "faults", "stall_watches", "release_stalls", "close_watches", "down", "up", "compact",
         "expire_continue", "rotate_ca", "log", "clear_log", "reset")


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    controller = None

    def log_message(self, fmt, *args):
        pass

    def _reply(self, code, obj):
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _call(self, args):
        name = self.path.strip("/").split("?")[0]
        if name not in CALLS:
            return self._reply(404, {"error": "unknown call %r" % name, "calls": list(CALLS)})
        try:
            result = getattr(self.controller, name)(**args)
        except StoreError as e:
            return self._reply(e.code, {"error": e.message, "reason": e.reason})
        except (ValueError, TypeError, KeyError) as e:
            return self._reply(400, {"error": "%s: %s" % (type(e).__name__, e)})
        return self._reply(200, {"result": result})

    def do_GET(self):
        self._call({})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > MAX_BODY:
            self.close_connection = True
            return self._reply(413, {"error": "body too large"})
        raw = self.rfile.read(n) if n else b"{}"
        try:
            args = json.loads(raw or b"{}")
            if not isinstance(args, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as e:
            return self._reply(400, {"error": "bad JSON: %s" % e})
        self._call(args)


class ControlServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def start(controller, port=0):
    """Starts the control endpoint on 127.0.0.1:@p port; returns (server, port)."""
    handler = type("BoundControlHandler", (ControlHandler,), {"controller": controller})
    srv = ControlServer(("127.0.0.1", port), handler)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                     name="control", daemon=True).start()
    return srv, srv.server_address[1]

