#!/usr/bin/env python3
"""Fake kube-apiserver serving Istio ServiceEntries (networking.istio.io) over HTTPS for the
meshdns tests: discovery, LIST with pagination, WATCH with chunked streams and bookmarks,
bearer-token auth, and runtime fault injection through a plain-HTTP control endpoint.

Runs until SIGTERM/SIGINT. When ready it writes <state-dir>/ready.json (and port,
control.port, token, tokens, ca.crt) and prints one line "READY {json}" on stdout.
See README.md in this directory.
"""

import argparse
import json
import os
import secrets
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import control_server  # noqa: E402
import tlsgen  # noqa: E402
from api import App  # noqa: E402
from faults import DEFAULT_CONFIG, Config, Faults, RequestLog, Tokens  # noqa: E402
from server import Listener  # noqa: E402
from store import Store  # noqa: E402


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def parse_set(values):
    out = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or key not in DEFAULT_CONFIG:
            raise SystemExit("--set: expected KEY=VALUE with KEY one of %s, got %r"
                             % (", ".join(sorted(DEFAULT_CONFIG)), item))
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def build_parser():
    p = argparse.ArgumentParser(
        description="Fake kube-apiserver for ServiceEntries (tests only).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--state-dir", required=True,
                   help="directory for ca.crt, server cert/key, token files, ports, ready.json")
    p.add_argument("--address", default="127.0.0.1", help="API listen address (IPv4 or IPv6)")
    p.add_argument("--port", type=int, default=0, help="API port (0 = pick a free one)")
    p.add_argument("--control-port", type=int, default=0,
                   help="control endpoint port on 127.0.0.1 (0 = pick)")
    p.add_argument("--token", action="append", default=[],
                   help="valid bearer token (repeatable); default: a random one written to "
                        "<state-dir>/token")
    p.add_argument("--tokens-file", help="file of valid tokens, one per line, re-read on "
                                         "change (default <state-dir>/tokens)")
    p.add_argument("--versions", default="v1,v1beta1,v1alpha3",
                   help="served networking.istio.io versions; preferred = highest")
    p.add_argument("--no-group", action="store_true",
                   help="start with networking.istio.io absent (404)")
    p.add_argument("--initial-rv", type=int, default=1000, help="first resourceVersion")
    p.add_argument("--san", action="append", default=[],
                   help="extra subjectAltName for the server certificate, e.g. IP:10.0.0.1")
    p.add_argument("--reuse-certs", action="store_true",
                   help="keep an existing CA/server certificate in the state dir")
    p.add_argument("--load", help="JSON file with a List (or one ServiceEntry) to preload")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config knob at start (JSON value), e.g. bookmark_interval=1; keys: "
                        + ", ".join(sorted(DEFAULT_CONFIG)))
    p.add_argument("--verbose", action="store_true",
                   help="one stdout line per API request (never tokens)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    state = os.path.abspath(args.state_dir)
    os.makedirs(state, exist_ok=True)
    overrides = parse_set(args.set)
    try:
        config = Config(**overrides)
    except ValueError as e:
        print("kube_apiserver: %s" % e, file=sys.stderr)
        return 2

    if not (args.reuse_certs and all(os.path.exists(p) for p in tlsgen.paths(state).values())):
        tlsgen.generate(state, args.san)
    tokens_file = os.path.abspath(args.tokens_file or os.path.join(state, "tokens"))
    initial_tokens = args.token or [secrets.token_urlsafe(32)]
    write_atomic(os.path.join(state, "token"), initial_tokens[0] + "\n")
    os.chmod(os.path.join(state, "token"), 0o600)
    tokens = Tokens(tokens_file, initial_tokens)

    store = Store(initial_rv=args.initial_rv, history_events=config.history_events,
                  history_seconds=config.history_seconds, continue_ttl=config.continue_ttl,
                  managed_fields=config.managed_fields)
    if args.load:
        with open(args.load, encoding="utf-8") as f:
            doc = json.load(f)
        for obj in doc.get("items", [doc]) if isinstance(doc, dict) else doc:
            store.apply(obj)

    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    app = App(store, config, tokens, Faults(), RequestLog(), versions, verbose=args.verbose)
    app.ctx = tlsgen.server_context(state)
    app.group_present = not args.no_group
    listener = Listener(app, args.address, args.port, lambda: app.ctx)
    app.listener = listener
    port = listener.start()

    controller = control_server.Controller(app, listener, state, args.san, initial_tokens, overrides)
    csrv, cport = control_server.start(controller, args.control_port)

    host = "[%s]" % args.address if ":" in args.address else args.address
    ready = {"pid": os.getpid(), "api_url": "https://%s:%d" % (host, port), "address": args.address,
             "port": port, "control_url": "http://127.0.0.1:%d" % cport, "control_port": cport,
             "ca": os.path.join(state, "ca.crt"), "token_file": os.path.join(state, "token"),
             "tokens_file": tokens_file, "state_dir": state}
    write_atomic(os.path.join(state, "port"), "%d\n" % port)
    write_atomic(os.path.join(state, "control.port"), "%d\n" % cport)
    write_atomic(os.path.join(state, "ready.json"), json.dumps(ready, indent=1) + "\n")

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("READY " + json.dumps(ready), flush=True)
    while not stop.wait(1.0):
        pass
    csrv.shutdown()
    csrv.server_close()
    listener.stop()
    print("STOPPED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
