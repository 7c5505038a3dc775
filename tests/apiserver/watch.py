"""WATCH streams: 200 + Transfer-Encoding: chunked, one JSON event per line, chunk boundaries
chosen by the configured chunk mode (so events can be cut anywhere), bookmarks, timeoutSeconds,
410 handling, stalls and abrupt closes.
"""

import json
import random
import select
import ssl
import time

import api
from store import GROUP, KIND, dumps

INITIAL_BATCH = 1000  # synthetic ADDED events are written this many at a time
WAIT_STEP = 0.25      # longest single wait; every loop re-checks kills, closes and stalls


def event_bytes(etype, obj):
    return b'{"type":"%s","object":%s}\n' % (etype.encode(), obj)


def bookmark_bytes(version, rv, initial_end=False):
    meta = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    obj = {"apiVersion": "%s/%s" % (GROUP, version), "kind": KIND, "metadata": meta}
    return event_bytes("BOOKMARK", dumps(obj))


def error_bytes(status):
    return event_bytes("ERROR", json.dumps(status, separators=(",", ":")).encode())


class ChunkWriter:
    """Writes event bytes as HTTP/1.1 chunks, cut as the config says."""

    def __init__(self, h, entry, cfg):
        self.h = h
        self.entry = entry
        self.mode = cfg.chunk_mode
        self.max = max(1, int(cfg.chunk_max))
        self.delay = cfg.chunk_delay
        self.rng = random.Random(cfg.chunk_seed)
        self.chunks = 0

    def _chunk(self, data):
        if self.chunks and self.delay:
            time.sleep(self.delay)
        self.h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.chunks += 1
        self.entry["bytes"] += len(data)
        self.entry["chunks"] = self.chunks

    def write(self, events):
        if not events:
            return
        if self.mode == "event":
            for e in events:
                self._chunk(e)
            return
        data = b"".join(events)
        if self.mode == "batch":
            self._chunk(data)
            return
        i = 0
        n = len(data)
        while i < n:
            size = self.max if self.mode == "bytes" else self.rng.randint(1, self.max)
            self._chunk(data[i:i + size])
            i += size

    def end(self):
        self.h.wfile.write(b"0\r\n\r\n")


def send_headers(app, h, entry):
    app.common_headers(h, 200, "application/json")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    entry["status"] = 200
    # The generation of close_watches() this watch answers to is taken when it starts to
    # count as a watch: a close that counted it must also end it.
    h.close_gen = app.close_gen
    h.is_watch = True


def serve_error_event(app, h, entry, status, headers_sent=False):
    """200, one ERROR event carrying @p status, clean end (what the watch cache does)."""
    if not headers_sent:
        send_headers(app, h, entry)
    w = ChunkWriter(h, entry, app.config)
    w.write([error_bytes(status)])
    w.end()
    entry["error_event"] = status.get("code")
    return "error-event"


def client_gone(h):
    """True if the peer closed (or reset) the connection; never blocks."""
    sock = h.request
    try:
        r, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    if not r:
        return False
    try:
        sock.settimeout(0.01)
        data = sock.recv(1)
        return data == b""
    except (TimeoutError, ssl.SSLWantReadError):
        return False
    except (OSError, ssl.SSLError):
        return True
    finally:
        try:
            sock.settimeout(h.timeout)
        except OSError:
            pass


def _flag(q, name):
    v = q.get(name)
    if v is None:
        return None
    try:
        return api.parse_bool(v)
    except ValueError as e:
        raise api.HttpError(400, 'strconv.ParseBool: parsing "%s": invalid syntax' % v) from e


def serve(app, h, entry, version, ns, q, headers_sent=False):
    """Validates a watch request and streams it. With @p headers_sent (after a released stall)
    request errors become ERROR events."""
    try:
        params = _parse(app, q)
    except api.HttpError as e:
        if not headers_sent:
            raise
        w = ChunkWriter(h, entry, app.config)
        w.write([error_bytes(e.status)])
        w.end()
        return "error-event"
    return stream(app, h, entry, version, ns, params, headers_sent)


def _parse(app, q):
    bookmarks = bool(_flag(q, "allowWatchBookmarks"))
    sie = _flag(q, "sendInitialEvents")
    match = q.get("resourceVersionMatch", "")
    rv_s = q.get("resourceVersion")
    if q.get("labelSelector") or q.get("fieldSelector"):
        raise api.HttpError(400, "labelSelector/fieldSelector are not supported by this fake server")
    if sie is not None:
        if not app.config.watch_list:
            raise api.HttpError(422, "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled", "Invalid")
        if match != "NotOlderThan":
            raise api.HttpError(422, "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan", "Invalid")
        if sie and not bookmarks:
            raise api.HttpError(422, "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true", "Invalid")
    elif match:
        raise api.HttpError(422, "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided", "Invalid")
    elif app.config.watch_list_defaulting and rv_s in (None, "", "0") and bookmarks:
        sie = True
    ts = q.get("timeoutSeconds")
    if ts is not None and ts != "":
        try:
            timeout = float(int(ts))
            if timeout < 0:
                raise ValueError(ts)
        except ValueError as e:
            raise api.HttpError(400, "timeoutSeconds: Invalid value: %r" % ts) from e
        if timeout == 0:
            timeout = app.config.default_watch_timeout * (1 + random.random())
    else:
        timeout = app.config.default_watch_timeout * (1 + random.random())
    rv = None if rv_s in (None, "", "0") else app.parse_rv(rv_s)
    return {"bookmarks": bookmarks, "sie": sie, "rv": rv, "rv_s": rv_s, "timeout": timeout}


def stream(app, h, entry, version, ns, p, headers_sent):
    store = app.store
    cfg = app.config
    rv = p["rv"]
    initial = None
    too_large = None
    if rv is not None and rv > store.current_rv() and not store.wait_for_rv(rv, cfg.too_large_wait):
        too_large = api.HttpError(504, "Timeout: Too large resource version: %d, current: %d" % (rv, store.current_rv()), "Timeout",
                                  details={"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                                           "retryAfterSeconds": 1}).status
    if p["sie"] or (rv is None and p["sie"] is None):
        initial = store.snapshot()
        pos = initial.rv
    elif rv is None:
        pos = store.current_rv()
    else:
        pos = rv
        if too_large is None and rv < store.compacted_rv:
            msg = "too old resource version: %d (%d)" % (rv, store.oldest_rv())
            st = api.status_obj(410, msg, "Expired")
            if cfg.watch_410_mode == "status" and not headers_sent:
                raise api.HttpError(410, msg, "Expired")
            if not headers_sent:
                send_headers(app, h, entry)
            w = ChunkWriter(h, entry, cfg)
            w.write([error_bytes(st)])
            w.end()
            entry["error_event"] = 410
            return "expired"
    if not headers_sent:
        send_headers(app, h, entry)
    w = ChunkWriter(h, entry, cfg)
    entry["start_rv"] = str(pos)
    if too_large is not None:
        w.write([error_bytes(too_large)])
        w.end()
        entry["error_event"] = 504
        return "too-large"
    if initial is not None:
        recs, _, _ = store.page(initial, ns, None, 0)
        for i in range(0, len(recs), INITIAL_BATCH):
            w.write([event_bytes("ADDED", r.item(version)) for r in recs[i:i + INITIAL_BATCH]])
        entry["initial_events"] = len(recs)
        if p["sie"]:
            w.write([bookmark_bytes(version, pos, initial_end=True)])
            entry["bookmarks"] += 1
    return _loop(app, h, entry, w, version, ns, p, pos)


def _loop(app, h, entry, w, version, ns, p, pos):
    store = app.store
    cfg = app.config
    start = time.monotonic()
    deadline = start + p["timeout"]
    inf = float("inf")
    interval = cfg.bookmark_interval
    next_bm = start + interval if p["bookmarks"] and interval > 0 else inf
    pre_bm = deadline - 2 if p["bookmarks"] and cfg.bookmark_before_timeout and p["timeout"] > 2 else inf
    close_gen = h.close_gen
    stalled_since = None
    # Bounded: every pass waits up to WAIT_STEP and the loop ends at the deadline, or at
    # max_stall while stalled.
    while True:
        if h.killed:
            h.abort()
            return "killed"
        if app.close_gen != close_gen:
            mode = app.close_mode
            if mode == "graceful":
                w.end()
                return "closed-graceful"
            h.abort(rst=(mode == "rst"))
            return "closed-" + mode
        now = time.monotonic()
        if app.stall_watches:
            if stalled_since is None:
                stalled_since = now
                entry["stalled"] = True
            if now - stalled_since > cfg.max_stall:
                h.abort()
                return "stall-closed"
            if client_gone(h):
                h.close_connection = True
                return "client-gone"
            with store.cond:
                store.cond.wait(WAIT_STEP)
            continue
        if stalled_since is not None:
            stalled_since = None
            entry["stalled"] = False
        if now >= deadline:
            break
        evs, cur = store.poll(pos, ns)
        if evs is None:
            msg = "too old resource version: %d (%d)" % (pos, store.oldest_rv())
            w.write([error_bytes(api.status_obj(410, msg, "Expired"))])
            w.end()
            entry["error_event"] = 410
            return "expired"
        out = [event_bytes(t, rec.item(version)) for _, t, rec in evs]
        if evs:
            entry["events"] += len(evs)
            entry["last_rv"] = str(evs[-1][0])
        pos = cur
        if now >= next_bm or now >= pre_bm:
            out.append(bookmark_bytes(version, cur))
            entry["bookmarks"] += 1
            entry["last_rv"] = str(cur)
            next_bm = now + interval if interval > 0 else inf
            if now >= pre_bm:
                pre_bm = inf
        w.write(out)
        if client_gone(h):
            h.close_connection = True
            return "client-gone"
        wait = min(WAIT_STEP, max(0.0, min(next_bm, pre_bm, deadline) - time.monotonic()))
        with store.cond:
            if store.rv == cur and app.close_gen == close_gen and not h.killed \
                    and not app.stall_watches:
                store.cond.wait(wait)
    w.end()
    return "timeout"
