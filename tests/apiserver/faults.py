"""Runtime knobs of the fake API server: configuration, injected faults, tokens, request log."""

import collections
import hashlib
import os
import threading
import time

KINDS = ("any", "discovery", "list", "watch", "get", "other")
ACTIONS = ("status", "stall", "reset")

DEFAULT_CONFIG = {
    # Seconds between periodic BOOKMARK events on watches with allowWatchBookmarks=true (0 = off).
    "bookmark_interval": 60.0,
    # Also send one bookmark 2 s before timeoutSeconds ends the watch (the watch cache does).
    "bookmark_before_timeout": True,
    # How watch bytes are cut into HTTP chunks: "event" (one chunk per event), "batch" (every
    # pending event in one chunk), "random" (seeded random sizes 1..chunk_max, cutting events
    # anywhere), "bytes" (fixed chunk_max-byte chunks; 1 = one byte per chunk).
    "chunk_mode": "event",
    "chunk_seed": 1,
    "chunk_max": 512,
    # Pause between chunks of one write (seconds), so fragments really arrive separately.
    "chunk_delay": 0.0,
    # A watch from a compacted RV: "event" (200 + ERROR event, as the watch cache does) or
    # "status" (HTTP 410, as a watch served from etcd does).
    "watch_410_mode": "event",
    # resourceVersion=0 lists are served from the "watch cache", which ignores limit.
    "rv0_ignores_limit": True,
    # Continue tokens live this long (seconds) after the list's first page (etcd compaction).
    "continue_ttl": 300.0,
    # Watch timeout when the client sends no timeoutSeconds: this x random [1, 2).
    "default_watch_timeout": 1800.0,
    # How long a list/watch with a future resourceVersion waits before "Too large resource version".
    "too_large_wait": 3.0,
    # sendInitialEvents (streaming list) accepted; when false it is rejected with 422.
    "watch_list": True,
    # Watches from RV ""/"0" with bookmarks are defaulted to sendInitialEvents=true (server gate on).
    "watch_list_defaulting": False,
    # New objects get a realistic metadata.managedFields entry.
    "managed_fields": True,
    # Watch cache window: events kept (count) and age (seconds, 0 = unlimited).
    "history_events": 100000,
    "history_seconds": 0.0,
    # Longest a stall (fault or stall_watches) keeps a connection before closing it abruptly.
    "max_stall": 600.0,
}


class Config:
    """Typed knobs; update() rejects unknown keys and bad types."""

    def __init__(self, **overrides):
        self.lock = threading.Lock()
        self.values = dict(DEFAULT_CONFIG)
        self.update(overrides)

    def __getattr__(self, name):
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(name)

    def update(self, changes):
        with self.lock:
            for k, v in changes.items():
                if k not in DEFAULT_CONFIG:
                    raise ValueError("unknown config key %r" % k)
                want = type(DEFAULT_CONFIG[k])
                if want is bool:
                    if not isinstance(v, bool):
                        raise ValueError("%s must be a boolean" % k)
                elif want is float:
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                        raise ValueError("%s must be a non-negative number" % k)
                    v = float(v)
                elif want is int:
                    if isinstance(v, bool) or not isinstance(v, int):
                        raise ValueError("%s must be an integer" % k)
                elif want is str and not isinstance(v, str):
                    raise ValueError("%s must be a string" % k)
                if k == "chunk_mode" and v not in ("event", "batch", "random", "bytes"):
                    raise ValueError("chunk_mode must be event, batch, random or bytes")
                if k == "watch_410_mode" and v not in ("event", "status"):
                    raise ValueError("watch_410_mode must be event or status")
                if k == "chunk_max" and v < 1:
                    raise ValueError("chunk_max must be >= 1")
                if k == "history_events" and v < 0:
                    raise ValueError("history_events must be >= 0")
                self.values[k] = v

    def snapshot(self):
        with self.lock:
            return dict(self.values)


class Fault:
    """One injected fault rule: the next @p count requests of @p kind get @p action."""

    _next_id = 1

    def __init__(self, spec):
        kind = spec.get("kind", "any")
        action = spec.get("action", "status")
        if kind not in KINDS:
            raise ValueError("kind must be one of %s" % (KINDS,))
        if action not in ACTIONS:
            raise ValueError("action must be one of %s" % (ACTIONS,))
        self.kind = kind
        self.action = action
        self.code = int(spec.get("code", 503 if action == "status" else 0))
        if action == "status" and not 400 <= self.code <= 599:
            raise ValueError("code must be 400..599")
        self.count = int(spec.get("count", 1))
        if self.count < 1:
            raise ValueError("count must be >= 1")
        ra = spec.get("retry_after")
        self.retry_after = None if ra is None else int(ra)
        # For watches: "status" = HTTP status, "event" = 200 + one ERROR event.
        self.mode = spec.get("mode", "status")
        if self.mode not in ("status", "event"):
            raise ValueError("mode must be status or event")
        self.message = spec.get("message")
        # stall: how long (seconds) before the connection is closed; send_headers: for watches,
        # send "200 OK" + chunked headers before going silent.
        self.seconds = float(spec.get("seconds", 0) or 0)
        self.send_headers = bool(spec.get("send_headers", True))
        self.id = Fault._next_id
        Fault._next_id += 1

    def describe(self):
        return {"id": self.id, "kind": self.kind, "action": self.action, "code": self.code,
                "count": self.count, "retry_after": self.retry_after, "mode": self.mode,
                "message": self.message, "seconds": self.seconds, "send_headers": self.send_headers}


class Faults:
    """Ordered fault rules; the first rule matching a request's kind is consumed."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []

    def add(self, spec):
        f = Fault(spec)
        with self.lock:
            self.rules.append(f)
        return f.id

    def clear(self):
        with self.lock:
            n = len(self.rules)
            self.rules = []
            return n

    def take(self, kind):
        """Consumes and returns the first rule for @p kind (or "any"), else None."""
        with self.lock:
            for f in self.rules:
                if f.kind == kind or f.kind == "any":
                    f.count -= 1
                    if f.count <= 0:
                        self.rules.remove(f)
                    return f
        return None

    def describe(self):
        with self.lock:
            return [f.describe() for f in self.rules]


def token_hash(token):
    """First 12 hex digits of SHA-256 of the token: what the log records instead of tokens."""
    if token is None:
        return None
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class Tokens:
    """Valid bearer tokens, from a file (one per line) that is re-read whenever it changes."""

    def __init__(self, path, initial=()):
        self.path = path
        self.lock = threading.Lock()
        self.valid = frozenset()
        self.stamp = None
        if initial:
            self.set(initial)
        else:
            self._reload()

    def _reload(self):
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            self.valid, self.stamp = frozenset(), None
            return
        if stamp == self.stamp:
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError:
            return
        self.valid = frozenset(t.strip() for t in lines if t.strip() and not t.startswith("#"))
        self.stamp = stamp

    def check(self, token):
        with self.lock:
            self._reload()
            return token is not None and token in self.valid

    def set(self, tokens):
        tokens = [str(t).strip() for t in tokens]
        if any(not t or "\n" in t for t in tokens):
            raise ValueError("tokens must be non-empty single-line strings")
        with self.lock:
            tmp = self.path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("".join(t + "\n" for t in tokens))
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
            self.stamp = None
            self._reload()
            return len(self.valid)

    def hashes(self):
        with self.lock:
            self._reload()
            return sorted(token_hash(t) for t in self.valid)


class RequestLog:
    """Every API request, oldest first, bounded. Entries are dicts updated in place until the
    request ends (watches), read as copies."""

    MAX = 200000

    def __init__(self):
        self.lock = threading.Lock()
        self.entries = collections.deque(maxlen=self.MAX)
        self.next_id = 1

    def start(self, **fields):
        e = dict(fields)
        e.update({"time": time.time(), "mono": time.monotonic(), "status": None, "end": None,
                  "duration": None, "bytes": 0, "events": 0, "bookmarks": 0, "ended": None})
        with self.lock:
            e["id"] = self.next_id
            self.next_id += 1
            self.entries.append(e)
        return e

    def finish(self, e, how):
        with self.lock:
            if e["end"] is None:
                e["end"] = time.time()
                e["duration"] = round(time.monotonic() - e["mono"], 6)
                e["ended"] = how

    def get(self, since=0, kind=None, clear=False):
        with self.lock:
            out = [dict(e) for e in self.entries
                   if e["id"] > since and (kind is None or e.get("kind") == kind)]
            if clear:
                self.entries.clear()
            return out, self.next_id - 1

    def clear(self):
        with self.lock:
            self.entries.clear()
