"""Request handling of the fake kube-apiserver: authentication, fault injection, discovery, LIST,
GET. WATCH streams live in watch.py.
"""

import json
import re
import ssl
import time
import traceback
import uuid
from urllib.parse import parse_qs, urlsplit

import watch
from faults import token_hash
from store import GROUP, KIND, LIST_KIND, StoreError, decode_continue, dumps, encode_continue

FLOWSCHEMA_UID = "2a9d9b6c-6f0e-4d2e-9a4b-0c6d7e8f9a01"
PRIORITY_UID = "7e1f3a2b-4c5d-4e6f-8a9b-0c1d2e3f4a02"

REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 406: "NotAcceptable", 409: "AlreadyExists", 410: "Expired",
           422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
           503: "ServiceUnavailable", 504: "Timeout"}

NOT_FOUND_MSG = "the server could not find the requested resource"
CONTINUE_EXPIRED_MSG = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted between "
    "the time the first chunk was returned and now may show up in the list.")

# Groups listed besides ours so that clients must pick theirs out of a real-looking /apis.
EXTRA_GROUPS = {
    "apps": {"v1": [("deployments", "Deployment"), ("daemonsets", "DaemonSet")]},
    "security.istio.io": {"v1": [("authorizationpolicies", "AuthorizationPolicy"),
                                 ("peerauthentications", "PeerAuthentication")],
                          "v1beta1": [("authorizationpolicies", "AuthorizationPolicy"),
                                      ("peerauthentications", "PeerAuthentication")]},
}
OTHER_ISTIO_RESOURCES = [("destinationrules", "DestinationRule", "destinationrule", ["dr"]),
                         ("virtualservices", "VirtualService", "virtualservice", ["vs"]),
                         ("workloadentries", "WorkloadEntry", "workloadentry", ["we"])]
SE_VERBS = ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]


def status_obj(code, message, reason=None, details=None, metadata=None):
    """A metav1.Status, fields in Go struct order (kind, apiVersion, metadata, status, message,
    reason, details, code)."""
    d = {"kind": "Status", "apiVersion": "v1", "metadata": metadata or {}, "status": "Failure",
         "message": message, "reason": reason or REASONS.get(code, ""), "code": code}
    if details:
        d = {k: d[k] for k in ("kind", "apiVersion", "metadata", "status", "message", "reason")}
        d["details"] = details
        d["code"] = code
    return d


def version_key(v):
    """Kubernetes version priority: GA > beta > alpha, then higher numbers first."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (0, 0, 0)
    stage = {None: 3, "beta": 2, "alpha": 1}[m.group(2)]
    return (stage, int(m.group(1)), int(m.group(3) or 0))


def sort_versions(versions):
    return sorted(set(versions), key=version_key, reverse=True)


def parse_bool(s):
    """Go's strconv.ParseBool."""
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(s)


class HttpError(Exception):
    def __init__(self, code, message, reason=None, details=None, metadata=None, headers=()):
        super().__init__(message)
        self.status = status_obj(code, message, reason, details, metadata)
        self.code = code
        self.headers = list(headers)


def classify(path, query):
    """Returns (kind, route) for a request path. kind: discovery, list, watch, get, other."""
    parts = [p for p in path.split("/") if p]
    if parts in (["apis"], ["api"], ["api", "v1"], ["version"]):
        return "discovery", parts
    if len(parts) in (2, 3) and parts[0] == "apis":
        return "discovery", parts
    coll = None
    if len(parts) == 4 and parts[0] == "apis":
        coll = ("list", parts[1], parts[2], None, parts[3], None)
    elif len(parts) in (6, 7) and parts[0] == "apis" and parts[3] == "namespaces":
        coll = ("list" if len(parts) == 6 else "get", parts[1], parts[2], parts[4], parts[5],
                parts[6] if len(parts) == 7 else None)
    if coll is None:
        return "other", parts
    kind = coll[0]
    if kind == "list":
        try:
            if parse_bool(query.get("watch", "false") or "false"):
                kind = "watch"
        except ValueError:
            pass
    return kind, coll


class App:
    """The API server's behaviour, shared by all connections. Knobs are changed by control.py."""

    def __init__(self, store, config, tokens, faults, log, versions, verbose=False):
        self.store = store
        self.config = config
        self.tokens = tokens
        self.faults = faults
        self.log = log
        self.ctx = None  # the server SSLContext; rotate_ca() replaces it
        self.default_versions = sort_versions(versions)
        self.versions = list(self.default_versions)
        self.group_present = True
        self.stall_watches = False   # freeze every watch stream (no bytes at all)
        self.stall_gen = 0           # release_stalls() bumps it
        self.close_gen = 0           # close_watches() bumps it
        self.close_mode = "fin"
        self.reset_connections = False  # down(mode="reset"): accept, log, RST before TLS
        self.listener = None
        self.verbose = verbose

    # ---- entry point ---------------------------------------------------------------------

    def handle(self, h):
        url = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        token = None
        auth = h.headers.get("Authorization") or ""
        if auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
        kind, route = classify(url.path, query)
        entry = self.log.start(method=h.command, path=url.path, query=query,
                               token_hash=token_hash(token), kind=kind, watch=(kind == "watch"),
                               peer="%s:%s" % h.client_address[:2],
                               user_agent=h.headers.get("User-Agent"))
        how = "done"
        try:
            how = self._serve(h, entry, kind, route, query, token) or "done"
        except (OSError, ssl.SSLError):
            how = "client-gone"
            h.close_connection = True
        except Exception:  # a bug here: say so, answer 500 if nothing was sent yet
            traceback.print_exc()
            how = "server-error"
            h.close_connection = True
            if entry["status"] is None:
                try:
                    self.send_error(h, entry, HttpError(500, "Internal error occurred: fake apiserver bug"))
                except (OSError, ssl.SSLError):
                    pass
        finally:
            self.log.finish(entry, how)
            if self.verbose:
                print("%s %s %s -> %s (%s)" % (h.command, url.path, kind, entry["status"], how),
                      flush=True)

    def _serve(self, h, entry, kind, route, query, token):
        if h.command != "GET":
            h.close_connection = True  # we do not read request bodies
            return self.send_error(h, entry, HttpError(405, "the server does not allow this method on the requested resource"))
        if not self.tokens.check(token):
            return self.send_error(h, entry, HttpError(401, "Unauthorized"))
        fault = self.faults.take(kind)
        if fault is not None:
            return self.apply_fault(h, entry, kind, fault, route, query)
        return self.route(h, entry, kind, route, query)

    def route(self, h, entry, kind, route, query):
        try:
            accept = h.headers.get("Accept")
            if accept and not any(t in accept for t in ("application/json", "*/*", "application/*")):
                raise HttpError(406, "only the following media types are accepted: application/json, application/yaml")
            if kind == "discovery":
                return self.send_json(h, entry, 200, self.discovery(route))
            if kind in ("list", "watch", "get"):
                op, group, version, ns, resource, name = route
                if group != GROUP or not self.group_present or version not in self.versions \
                        or resource != "serviceentries":
                    raise HttpError(404, NOT_FOUND_MSG)
                if kind == "get":
                    return self.get_one(h, entry, version, ns, name)
                if kind == "list":
                    if "watch" in query:
                        try:
                            parse_bool(query["watch"] or "false")
                        except ValueError as e:
                            raise HttpError(400, 'strconv.ParseBool: parsing "%s": invalid syntax' % query["watch"]) from e
                    return self.list(h, entry, version, ns, query)
                return watch.serve(self, h, entry, version, ns, query)
            if route in (["healthz"], ["livez"], ["readyz"]):
                return self.send_bytes(h, entry, 200, b"ok", "text/plain; charset=utf-8")
            raise HttpError(404, NOT_FOUND_MSG)
        except HttpError as e:
            return self.send_error(h, entry, e)
        except StoreError as e:
            return self.send_error(h, entry, HttpError(e.code, e.message, e.reason))

    # ---- responses -----------------------------------------------------------------------

    def common_headers(self, h, code, ctype):
        h.send_response(code)
        h.send_header("Audit-Id", str(uuid.uuid4()))
        h.send_header("Cache-Control", "no-cache, private")
        h.send_header("Content-Type", ctype)
        h.send_header("X-Kubernetes-Pf-Flowschema-Uid", FLOWSCHEMA_UID)
        h.send_header("X-Kubernetes-Pf-Prioritylevel-Uid", PRIORITY_UID)

    def send_bytes(self, h, entry, code, body, ctype="application/json", headers=()):
        self.common_headers(h, code, ctype)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        entry["status"] = code
        # Headers and body in one write (one TLS record train, no small-segment stall).
        h._headers_buffer.append(b"\r\n")
        h._headers_buffer.append(body)
        h.flush_headers()
        entry["bytes"] = len(body)
        return "done"

    def send_json(self, h, entry, code, obj, headers=()):
        return self.send_bytes(h, entry, code, json.dumps(obj, separators=(",", ":")).encode(),
                               headers=headers)

    def send_error(self, h, entry, err):
        return self.send_json(h, entry, err.code, err.status, err.headers)

    # ---- faults --------------------------------------------------------------------------

    def fault_error(self, f, kind, query):
        """The HttpError an injected status fault produces (messages as the real server's)."""
        code = f.code
        headers = []
        details = None
        if f.retry_after is not None:
            headers.append(("Retry-After", str(f.retry_after)))
            details = {"retryAfterSeconds": f.retry_after}
        if code == 401:
            return HttpError(401, f.message or "Unauthorized", headers=headers)
        if code == 403:
            scope = "at the cluster scope"
            msg = ('serviceentries.networking.istio.io is forbidden: User '
                   '"system:serviceaccount:kube-system:meshdns" cannot %s resource "serviceentries" '
                   'in API group "networking.istio.io" %s' % (kind if kind in ("list", "watch", "get") else "get", scope))
            return HttpError(403, f.message or msg, details={"group": GROUP, "kind": "serviceentries"}, headers=headers)
        if code == 410:
            if kind == "watch":
                rv = query.get("resourceVersion") or "0"
                msg = "too old resource version: %s (%d)" % (rv, self.store.oldest_rv())
            else:
                msg = "The resourceVersion for the provided list is too old."
            return HttpError(410, f.message or msg, "Expired", headers=headers)
        if code == 500:
            return HttpError(500, f.message or "Internal error occurred: injected fault",
                             details={"causes": [{"message": "injected fault"}]}, headers=headers)
        if code == 503:
            return HttpError(503, f.message or "the server is currently unable to handle the request",
                             details=details, headers=headers)
        if code == 504:
            return HttpError(504, f.message or "Timeout: request did not complete within the allotted timeout",
                             details=details, headers=headers)
        return HttpError(code, f.message or "injected fault", details=details, headers=headers)

    def apply_fault(self, h, entry, kind, f, route, query):
        entry["fault"] = f.describe()
        if f.action == "reset":
            entry["status"] = 0
            h.abort(rst=True)
            return "fault-reset"
        if f.action == "stall":
            return self.stall(h, entry, kind, f, route, query)
        if f.code == 429 and f.message is None:
            # The max-in-flight / priority-and-fairness filters answer in plain text.
            ra = str(f.retry_after if f.retry_after is not None else 1)
            body = b"Too many requests, please try again later.\n"
            return self.send_bytes(h, entry, 429, body, "text/plain; charset=utf-8",
                                   [("Retry-After", ra), ("X-Content-Type-Options", "nosniff")])
        err = self.fault_error(f, kind, query)
        if kind == "watch" and f.mode == "event":
            return watch.serve_error_event(self, h, entry, err.status)
        return self.send_error(h, entry, err)

    def stall(self, h, entry, kind, f, route, query):
        """Sends nothing (a watch: headers, then nothing) until released, the client leaves or
        the stall times out (then the connection is dropped abruptly)."""
        gen = self.stall_gen
        if kind == "watch" and f.send_headers:
            watch.send_headers(self, h, entry)
        limit = f.seconds or self.config.max_stall
        deadline = time.monotonic() + limit
        entry["stalled"] = True
        while time.monotonic() < deadline:
            if h.killed or self.stall_gen != gen:
                break
            if watch.client_gone(h):
                h.close_connection = True
                return "client-gone"
            with self.store.cond:
                self.store.cond.wait(0.1)
        if h.killed or self.stall_gen == gen:
            h.abort()
            return "stall-closed"
        entry["stalled"] = False
        if kind == "watch" and f.send_headers:
            try:
                return watch.serve(self, h, entry, route[2], route[3], query, headers_sent=True)
            except StoreError as e:
                return watch.serve_error_event(self, h, entry, status_obj(e.code, e.message, e.reason),
                                               headers_sent=True)
        return self.route(h, entry, kind, route, query)

    # ---- discovery -----------------------------------------------------------------------

    def group_doc(self, name, versions):
        vs = [{"groupVersion": "%s/%s" % (name, v), "version": v} for v in versions]
        return {"name": name, "versions": vs, "preferredVersion": vs[0]}

    def discovery(self, parts):
        if parts == ["version"]:
            return {"major": "1", "minor": "30", "gitVersion": "v1.30.0-meshdns-fake",
                    "gitCommit": "0" * 40, "gitTreeState": "clean",
                    "buildDate": "2024-04-17T00:00:00Z", "goVersion": "go1.22.2",
                    "compiler": "gc", "platform": "linux/amd64"}
        if parts == ["api"]:
            port = self.listener.port if self.listener else 0
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:%d" % port}]}
        if parts == ["api", "v1"]:
            return {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "namespaces", "singularName": "namespace", "namespaced": False,
                 "kind": "Namespace", "verbs": ["get", "list", "watch"], "shortNames": ["ns"]}]}
        groups = {}
        if self.group_present and self.versions:
            groups[GROUP] = self.versions
        for g, vmap in EXTRA_GROUPS.items():
            groups[g] = sort_versions(vmap)
        if parts == ["apis"]:
            order = ["apps", GROUP, "security.istio.io"]
            return {"kind": "APIGroupList", "apiVersion": "v1",
                    "groups": [self.group_doc(g, groups[g]) for g in order if g in groups]}
        group = parts[1]
        if group not in groups:
            raise HttpError(404, NOT_FOUND_MSG)
        if len(parts) == 2:
            doc = {"kind": "APIGroup", "apiVersion": "v1"}
            doc.update(self.group_doc(group, groups[group]))
            return doc
        version = parts[2]
        if version not in groups[group]:
            raise HttpError(404, NOT_FOUND_MSG)
        gv = "%s/%s" % (group, version)
        if group != GROUP:
            res = [{"name": n, "singularName": k.lower(), "namespaced": True, "kind": k,
                    "verbs": ["get", "list", "watch"]} for n, k in EXTRA_GROUPS[group][version]]
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": res}
        res = []
        for plural, kind, singular, short in OTHER_ISTIO_RESOURCES[:1]:
            res.append({"name": plural, "singularName": singular, "namespaced": True, "kind": kind,
                        "verbs": SE_VERBS, "shortNames": short,
                        "categories": ["istio-io", "networking-istio-io"]})
        res.append({"name": "serviceentries", "singularName": "serviceentry", "namespaced": True,
                    "kind": KIND, "verbs": SE_VERBS, "shortNames": ["se"],
                    "categories": ["istio-io", "networking-istio-io"],
                    "storageVersionHash": "Ei0Xjqx1q9c="})
        res.append({"name": "serviceentries/status", "singularName": "", "namespaced": True,
                    "kind": KIND, "verbs": ["get", "patch", "update"]})
        for plural, kind, singular, short in OTHER_ISTIO_RESOURCES[1:]:
            res.append({"name": plural, "singularName": singular, "namespaced": True, "kind": kind,
                        "verbs": SE_VERBS, "shortNames": short,
                        "categories": ["istio-io", "networking-istio-io"]})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": res}

    # ---- GET / LIST ----------------------------------------------------------------------

    def get_one(self, h, entry, version, ns, name):
        rec = self.store.get(ns, name)
        if rec is None:
            raise HttpError(404, 'serviceentries.%s "%s" not found' % (GROUP, name),
                            details={"name": name, "group": GROUP, "kind": "serviceentries"})
        return self.send_bytes(h, entry, 200, rec.item(version))

    def parse_rv(self, value):
        try:
            rv = int(value)
            if rv < 0:
                raise ValueError(value)
            return rv
        except ValueError as e:
            raise HttpError(400, 'resourceVersion: Invalid value: "%s": strconv.ParseUint: parsing "%s": invalid syntax' % (value, value)) from e

    def too_large(self, rv):
        """Waits for @p rv to arrive; raises the real server's 504 if it does not."""
        if self.store.wait_for_rv(rv, self.config.too_large_wait):
            return
        cur = self.store.current_rv()
        raise HttpError(504, "Timeout: Too large resource version: %d, current: %d" % (rv, cur),
                        "Timeout", details={"causes": [{"reason": "ResourceVersionTooLarge",
                                                        "message": "Too large resource version"}],
                                            "retryAfterSeconds": 1})

    def list(self, h, entry, version, ns, q):
        rv_s = q.get("resourceVersion")
        match = q.get("resourceVersionMatch", "")
        cont = q.get("continue", "")
        try:
            limit = int(q.get("limit") or 0)
        except ValueError as e:
            raise HttpError(400, "limit: Invalid value: %r" % q.get("limit")) from e
        if q.get("labelSelector") or q.get("fieldSelector"):
            raise HttpError(400, "labelSelector/fieldSelector are not supported by this fake server")
        if match and match not in ("Exact", "NotOlderThan"):
            raise HttpError(422, 'resourceVersionMatch: Unsupported value: "%s": supported values: "Exact", "NotOlderThan"' % match, "Invalid")
        if match and not rv_s:
            raise HttpError(422, "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided", "Invalid")
        if match == "Exact" and rv_s == "0":
            raise HttpError(422, 'resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"', "Invalid")
        start = None
        if cont:
            if rv_s not in (None, "", "0"):
                raise HttpError(400, "specifying resource version is not allowed when using continue")
            tok_rv, rel = decode_continue(cont)
            start = ((ns + "/") if ns else "") + rel
            if tok_rv == -1:
                snap = self.store.snapshot(remember=True)
            else:
                snap = self.store.find_snapshot(tok_rv)
                if snap is None:
                    fresh = encode_continue(-1, rel)
                    raise HttpError(410, CONTINUE_EXPIRED_MSG, "Expired", metadata={"continue": fresh})
        elif not rv_s:
            snap = self.store.snapshot(remember=limit > 0)
        elif rv_s == "0":
            if self.config.rv0_ignores_limit:
                limit = 0
            snap = self.store.snapshot(remember=limit > 0)
        else:
            rv = self.parse_rv(rv_s)
            exact = match == "Exact" or (not match and limit > 0)
            if rv > self.store.current_rv():
                self.too_large(rv)
            if exact:
                snap = self.store.snapshot(rv, remember=limit > 0)
            else:
                snap = self.store.snapshot(remember=limit > 0)
        recs, last, remaining = self.store.page(snap, ns, start, limit)
        meta = {"resourceVersion": str(snap.rv)}
        if last is not None:
            rel = last.split("/", 1)[1] if ns else last
            meta["continue"] = encode_continue(snap.rv, rel + "\x00")
            meta["remainingItemCount"] = remaining
        parts = [b'{"apiVersion":"%s/%s","items":[' % (GROUP.encode(), version.encode())]
        prefix = b'{"apiVersion":"%s/%s","kind":"%s",' % (GROUP.encode(), version.encode(), KIND.encode())
        sep = b","
        first = True
        for r in recs:
            if not first:
                parts.append(sep)
            parts.append(prefix)
            parts.append(r.tail)
            first = False
        parts.append(b'],"kind":"%s","metadata":' % LIST_KIND.encode())
        parts.append(dumps(meta))
        parts.append(b"}")
        entry["items"] = len(recs)
        entry["list_rv"] = meta["resourceVersion"]
        return self.send_bytes(h, entry, 200, b"".join(parts))
