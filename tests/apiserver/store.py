"""In-memory ServiceEntry storage with etcd-like resourceVersions and a watch-cache history.

* Objects are kept as immutable Records holding their JSON serialization (without apiVersion and
  kind, which depend on the version a client asks for), so lists and watches only join bytes.
* resourceVersion is one global counter; every create, update and delete takes the next value.
* History: one event per write, trimmed by count and age (the watch cache window). Everything at
  or below `compacted_rv` is gone: a watch from an older RV gets 410, an exact list too.
* Snapshots: (rv, sorted keys, key->Record) taken for paginated lists; continue tokens name the
  snapshot's rv. A token whose snapshot has aged out (continue_ttl) or was compacted gets 410.
"""

import base64
import bisect
import collections
import copy
import json
import random
import threading
import time
import uuid

GROUP = "networking.istio.io"
KIND = "ServiceEntry"
LIST_KIND = "ServiceEntryList"
MAX_SNAPSHOTS = 16


class StoreError(Exception):
    """A failure with an HTTP status, a Kubernetes Status reason and a message."""

    def __init__(self, code, reason, message):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def dumps(obj):
    """Compact JSON with sorted keys, as Go encodes the unstructured objects of custom resources."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


_PREFIX_CACHE = {}


def item_prefix(version):
    """b'{"apiVersion":"networking.istio.io/<version>","kind":"ServiceEntry",'."""
    p = _PREFIX_CACHE.get(version)
    if p is None:
        p = b'{"apiVersion":"%s/%s","kind":"%s",' % (GROUP.encode(), version.encode(), KIND.encode())
        _PREFIX_CACHE[version] = p
    return p


class Record:
    """One stored state of one object. Immutable once made.

    tail is the JSON of the object minus apiVersion/kind and minus the leading '{', so that
    item_prefix(version) + tail is the full object for that version.
    """
    __slots__ = ("key", "namespace", "name", "rv", "tail")

    def __init__(self, namespace, name, rv, tail):
        self.key = namespace + "/" + name
        self.namespace = namespace
        self.name = name
        self.rv = rv
        self.tail = tail

    def obj(self):
        """A fresh dict of the object (metadata/spec/status, no apiVersion/kind)."""
        return json.loads(b"{" + self.tail)

    def item(self, version):
        return item_prefix(version) + self.tail


def make_record(obj, rv):
    """Builds a Record from @p obj (metadata/spec/status), setting metadata.resourceVersion."""
    meta = obj["metadata"]
    meta["resourceVersion"] = str(rv)
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return Record(meta["namespace"], meta["name"], rv, dumps(body)[1:])


class Snapshot:
    __slots__ = ("rv", "keys", "items", "created")

    def __init__(self, rv, keys, items):
        self.rv = rv
        self.keys = keys
        self.items = items
        self.created = time.monotonic()


def encode_continue(rv, start):
    """The continue token of the real API server: base64url (no padding) of {v, rv, start}."""
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_continue(token):
    """Returns (rv, start) or raises StoreError 400 like the real server does."""
    try:
        pad = "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(token + pad).decode())
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError) as e:
        raise StoreError(400, "BadRequest", "continue key is not valid: %s" % e) from e
    if data.get("v") != "meta.k8s.io/v1":
        raise StoreError(400, "BadRequest",
                         "continue key is not valid: server does not recognize this encoded key")
    start = data.get("start")
    rv = data.get("rv")
    if not isinstance(start, str) or not start or not isinstance(rv, int):
        raise StoreError(400, "BadRequest", "continue key is not valid: encoded start key missing")
    if start.startswith("/") or ".." in start.split("/"):
        raise StoreError(400, "BadRequest", "continue key is not valid: path traversal")
    return rv, start


class Store:
    """All ServiceEntries, the RV counter, the event history and list snapshots.

    `cond` (a Condition over `lock`) is notified on every write and on control changes; watch
    streams wait on it.
    """

    def __init__(self, initial_rv=1000, history_events=100000, history_seconds=0.0,
                 continue_ttl=300.0, managed_fields=True):
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.rv = int(initial_rv)
        self.items = {}
        self._keys = None
        self.hist = []          # (rv, type, Record, prev Record or None, monotonic time)
        self.hist_rvs = []
        self.compacted_rv = self.rv
        self.history_events = int(history_events)
        self.history_seconds = float(history_seconds)
        self.continue_ttl = float(continue_ttl)
        self.managed_fields = managed_fields
        self.snaps = collections.OrderedDict()

    # ---- notifications -------------------------------------------------------------------

    def notify(self):
        with self.cond:
            self.cond.notify_all()

    # ---- writes --------------------------------------------------------------------------

    def _sorted_keys(self):
        if self._keys is None:
            self._keys = sorted(self.items)
        return self._keys

    def _append(self, etype, rec, prev):
        self.hist.append((rec.rv, etype, rec, prev, time.monotonic()))
        self.hist_rvs.append(rec.rv)
        self._prune()

    def _prune(self):
        drop = max(0, len(self.hist) - self.history_events)
        if self.history_seconds > 0:
            limit = time.monotonic() - self.history_seconds
            n = len(self.hist)
            while drop < n and self.hist[drop][4] < limit:
                drop += 1
        if drop:
            self.compacted_rv = max(self.compacted_rv, self.hist[drop - 1][0])
            del self.hist[:drop]
            del self.hist_rvs[:drop]

    def _new_meta(self, meta, namespace, name, now):
        out = {"name": name, "namespace": namespace,
               "uid": meta.get("uid") or str(uuid.uuid4()),
               "creationTimestamp": meta.get("creationTimestamp") or rfc3339(now),
               "generation": 1}
        for k in ("labels", "annotations", "ownerReferences", "finalizers"):
            if meta.get(k):
                out[k] = copy.deepcopy(meta[k])
        if meta.get("managedFields"):
            out["managedFields"] = copy.deepcopy(meta["managedFields"])
        elif self.managed_fields:
            out["managedFields"] = [{
                "apiVersion": GROUP + "/v1", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {".": {}, "f:hosts": {}}}, "manager": "meshdns-test",
                "operation": "Update", "time": out["creationTimestamp"]}]
        return out

    @staticmethod
    def _names(obj):
        if not isinstance(obj, dict):
            raise StoreError(400, "BadRequest", "object must be a JSON object")
        meta = obj.get("metadata") or {}
        if not isinstance(meta, dict):
            raise StoreError(400, "BadRequest", "metadata must be an object")
        name = meta.get("name")
        ns = meta.get("namespace") or "default"
        if not isinstance(name, str) or not name or "/" in name or not isinstance(ns, str) or "/" in ns:
            raise StoreError(422, "Invalid", "metadata.name (and namespace) must be non-empty, no '/'")
        return ns, name, meta

    def apply(self, obj, mode="apply"):
        """Creates or updates one object; returns its Record (unchanged Record for a no-op).

        @p obj holds metadata (name, namespace, optional uid/labels/annotations/
        creationTimestamp) plus spec and optionally status. Missing spec on update keeps the old
        one; status is replaced when given. generation grows only when spec changes.
        mode: "apply" (create or update), "create" (409 if present), "update" (404 if absent),
        "status" (update status only, 404 if absent).
        """
        ns, name, meta = self._names(obj)
        key = ns + "/" + name
        now = time.time()
        with self.cond:
            old = self.items.get(key)
            if old is None:
                if mode in ("update", "status"):
                    raise StoreError(404, "NotFound", '%s.%s "%s" not found' % ("serviceentries", GROUP, name))
                body = {"metadata": self._new_meta(meta, ns, name, now),
                        "spec": copy.deepcopy(obj.get("spec") or {})}
                if obj.get("status") is not None:
                    body["status"] = copy.deepcopy(obj["status"])
                self.rv += 1
                rec = make_record(body, self.rv)
                self.items[key] = rec
                self._keys = None
                self._append("ADDED", rec, None)
                self.cond.notify_all()
                return rec
            if mode == "create":
                raise StoreError(409, "AlreadyExists", '%s.%s "%s" already exists' % ("serviceentries", GROUP, name))
            body = old.obj()
            changed = False
            if mode != "status":
                if "spec" in obj and obj["spec"] != body.get("spec"):
                    body["spec"] = copy.deepcopy(obj["spec"])
                    body["metadata"]["generation"] = int(body["metadata"].get("generation", 1)) + 1
                    changed = True
                for k in ("labels", "annotations"):
                    if k in meta and meta[k] != body["metadata"].get(k):
                        if meta[k]:
                            body["metadata"][k] = copy.deepcopy(meta[k])
                        else:
                            body["metadata"].pop(k, None)
                        changed = True
            if "status" in obj and obj["status"] != body.get("status"):
                if obj["status"] is None:
                    body.pop("status", None)
                else:
                    body["status"] = copy.deepcopy(obj["status"])
                changed = True
            if not changed:
                return old
            self.rv += 1
            rec = make_record(body, self.rv)
            self.items[key] = rec
            self._append("MODIFIED", rec, old)
            self.cond.notify_all()
            return rec

    def delete(self, namespace, name):
        """Deletes one object; returns the DELETED Record (last state, deletion RV)."""
        key = namespace + "/" + name
        with self.cond:
            old = self.items.get(key)
            if old is None:
                raise StoreError(404, "NotFound", '%s.%s "%s" not found' % ("serviceentries", GROUP, name))
            self.rv += 1
            body = old.obj()
            rec = make_record(body, self.rv)
            del self.items[key]
            self._keys = None
            self._append("DELETED", rec, old)
            self.cond.notify_all()
            return rec

    def delete_all(self, namespace=None):
        """Deletes every object (of @p namespace if given), one event each; returns the count."""
        with self.lock:
            keys = [k for k in self._sorted_keys() if namespace is None or k.startswith(namespace + "/")]
        n = 0
        for k in keys:
            ns, name = k.split("/", 1)
            try:
                self.delete(ns, name)
                n += 1
            except StoreError:
                pass
        return n

    def _generate_template(self, suffix_ns):
        """A %-format template of a generated object's tail (same bytes dumps() would give)."""
        meta = {"name": "ZZNAMEZZ", "namespace": "ZZNSZZ", "uid": "ZZUIDZZ",
                "creationTimestamp": "ZZTSZZ", "generation": "ZZGENZZ", "resourceVersion": "ZZRVZZ"}
        if self.managed_fields:
            meta["managedFields"] = [{
                "apiVersion": GROUP + "/v1", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {".": {}, "f:addresses": {}, "f:endpoints": {},
                                        "f:hosts": {}, "f:location": {}, "f:ports": {},
                                        "f:resolution": {}}},
                "manager": "meshdns-test", "operation": "Update", "time": "ZZTSZZ"}]
        body = {"metadata": meta, "spec": {
            "hosts": ["ZZNAMEZZ." + suffix_ns], "addresses": ["ZZADDRZZ"],
            "location": "MESH_INTERNAL", "resolution": "DNS",
            "ports": [{"number": 9080, "protocol": "HTTP", "name": "http"}],
            "endpoints": [{"address": "34.83.120.17", "ports": {"http": 15443}}]}}
        t = dumps(body)[1:].decode().replace("%", "%%")
        for ph, fmt in (('"ZZGENZZ"', "%(gen)d"), ("ZZNAMEZZ", "%(name)s"), ("ZZNSZZ", "%(ns)s"),
                        ("ZZUIDZZ", "%(uid)s"), ("ZZTSZZ", "%(ts)s"), ("ZZRVZZ", "%(rv)d"),
                        ("ZZADDRZZ", "%(addr)s")):
            t = t.replace(ph, fmt)
        return t

    def generate(self, count, namespace="bulk", prefix="se", start=0, suffix="global"):
        """Creates @p count realistic ServiceEntries fast; returns (first_rv, last_rv).

        Names: <prefix>-<i>; host <prefix>-<i>.<namespace>.<suffix>; address from 240.0.0.0/4.
        Existing names are overwritten as updates (MODIFIED, generation + 1).
        """
        count = int(count)
        if count < 0 or count > 2000000:
            raise StoreError(400, "BadRequest", "count must be 0..2000000")
        for v in (namespace, prefix, suffix):
            if not isinstance(v, str) or not v or "/" in v or not v.isprintable():
                raise StoreError(400, "BadRequest", "namespace, prefix and suffix must be printable, no '/'")
        esc = lambda v: json.dumps(v)[1:-1]  # noqa: E731
        tmpl = self._generate_template(esc(namespace + "." + suffix))
        ts = rfc3339(time.time())
        ns_esc = esc(namespace)
        prefix_esc = esc(prefix)
        rand = random.SystemRandom().getrandbits
        first = None
        now = time.monotonic()
        with self.cond:
            hist, hist_rvs = self.hist, self.hist_rvs
            for i in range(int(start), int(start) + count):
                name = "%s-%d" % (prefix, i)
                key = namespace + "/" + name
                old = self.items.get(key)
                a = 0xF0000000 | (i & 0x0FFFFFFF)
                u = rand(122)  # a version-4 UUID: 122 random bits
                uid = "%08x-%04x-4%03x-%04x-%012x" % (u >> 90, (u >> 74) & 0xFFFF, (u >> 62) & 0xFFF,
                                                      0x8000 | ((u >> 48) & 0x3FFF), u & 0xFFFFFFFFFFFF)
                vals = {"name": "%s-%d" % (prefix_esc, i), "ns": ns_esc, "uid": uid, "ts": ts,
                        "gen": 1,
                        "addr": "%d.%d.%d.%d" % (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)}
                if old is not None:
                    ometa = old.obj()["metadata"]
                    vals["uid"] = esc(ometa["uid"])
                    vals["ts"] = esc(ometa["creationTimestamp"])
                    vals["gen"] = int(ometa.get("generation", 1)) + 1
                self.rv += 1
                vals["rv"] = self.rv
                if first is None:
                    first = self.rv
                rec = Record(namespace, name, self.rv, (tmpl % vals).encode())
                self.items[key] = rec
                hist.append((self.rv, "MODIFIED" if old else "ADDED", rec, old, now))
                hist_rvs.append(self.rv)
            self._prune()
            self._keys = None
            self.cond.notify_all()
            return first, self.rv

    def compact(self, rv=None):
        """Drops history up to @p rv (default: everything). Returns the new compacted_rv."""
        with self.cond:
            target = self.rv if rv is None else min(int(rv), self.rv)
            i = bisect.bisect_right(self.hist_rvs, target)
            del self.hist[:i]
            del self.hist_rvs[:i]
            self.compacted_rv = max(self.compacted_rv, target)
            for srv in list(self.snaps):
                if srv < self.compacted_rv:
                    del self.snaps[srv]
            self.cond.notify_all()
            return self.compacted_rv

    def expire_snapshots(self):
        with self.lock:
            n = len(self.snaps)
            self.snaps.clear()
            return n

    def set_history(self, events=None, seconds=None):
        with self.cond:
            if events is not None:
                self.history_events = int(events)
            if seconds is not None:
                self.history_seconds = float(seconds)
            self._prune()

    # ---- reads ---------------------------------------------------------------------------

    def get(self, namespace, name):
        with self.lock:
            return self.items.get(namespace + "/" + name)

    def current_rv(self):
        with self.lock:
            return self.rv

    def counts(self):
        with self.lock:
            self._prune()
            return {"resourceVersion": str(self.rv), "compactedResourceVersion": str(self.compacted_rv),
                    "objects": len(self.items), "history": len(self.hist), "snapshots": len(self.snaps)}

    def wait_for_rv(self, rv, timeout):
        """Waits until the store reaches @p rv or @p timeout passes; True if reached."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self.cond:
            while self.rv < rv:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.1))
            return True

    def snapshot(self, rv=None, remember=False):
        """A Snapshot of the current state (rv None) or the exact state at @p rv.

        Raises StoreError 410 if @p rv is compacted. With @p remember the snapshot is cached for
        continue tokens.
        """
        with self.lock:
            self._prune()
            if rv is None or rv == self.rv:
                snap = self.snaps.get(self.rv)
                if snap is None:
                    snap = Snapshot(self.rv, self._sorted_keys(), dict(self.items))
            else:
                if rv < self.compacted_rv:
                    raise StoreError(410, "Expired", "The resourceVersion for the provided list is too old.")
                snap = self.snaps.get(rv)
                if snap is None:
                    items = dict(self.items)
                    i = len(self.hist) - 1
                    while i >= 0 and self.hist[i][0] > rv:
                        _, _, rec, prev, _ = self.hist[i]
                        if prev is None:
                            items.pop(rec.key, None)
                        else:
                            items[rec.key] = prev
                        i -= 1
                    snap = Snapshot(rv, sorted(items), items)
            if remember and snap.rv not in self.snaps:
                self.snaps[snap.rv] = snap
                while len(self.snaps) > MAX_SNAPSHOTS:
                    self.snaps.popitem(last=False)
            return snap

    def find_snapshot(self, rv):
        """The cached Snapshot for a continue token's rv, or None if expired/compacted/evicted."""
        with self.lock:
            snap = self.snaps.get(rv)
            if snap is None:
                return None
            if rv < self.compacted_rv or time.monotonic() - snap.created > self.continue_ttl:
                del self.snaps[rv]
                return None
            return snap

    @staticmethod
    def page(snap, namespace, start_key, limit):
        """Records of one page: returns (records, last_key or None, remaining count)."""
        keys = snap.keys
        if namespace:
            lo = bisect.bisect_left(keys, namespace + "/")
            hi = bisect.bisect_left(keys, namespace + "0")
        else:
            lo, hi = 0, len(keys)
        if start_key:
            lo = max(lo, bisect.bisect_left(keys, start_key, lo, hi))
        end = hi if limit <= 0 else min(hi, lo + limit)
        recs = [snap.items[k] for k in keys[lo:end]]
        remaining = hi - end
        last = keys[end - 1] if remaining > 0 and end > lo else None
        return recs, last, remaining

    def poll(self, pos, namespace=None):
        """Events after @p pos: returns (events, current rv), or (None, rv) if @p pos is compacted.

        events are (rv, type, Record) tuples, filtered by @p namespace if given.
        """
        with self.lock:
            self._prune()
            if pos < self.compacted_rv:
                return None, self.rv
            i = bisect.bisect_right(self.hist_rvs, pos)
            evs = [(e[0], e[1], e[2]) for e in self.hist[i:]
                   if namespace is None or e[2].namespace == namespace]
            return evs, self.rv

    def oldest_rv(self):
        with self.lock:
            return self.hist_rvs[0] if self.hist_rvs else self.rv
