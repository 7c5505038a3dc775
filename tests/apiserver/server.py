"""HTTPS listener of the fake API server: TLS, one thread per connection, connection tracking,
and stopping/restarting on the same port (server down/up).
"""

import socket
import socketserver
import ssl
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

QUIET_ERRORS = (OSError, ssl.SSLError, ValueError)


class ApiRequestHandler(BaseHTTPRequestHandler):
    """Parses HTTP/1.1 requests (keep-alive) and hands each GET to the App."""

    protocol_version = "HTTP/1.1"
    timeout = 300  # idle keep-alive connections and blocked writes give up after this
    app = None     # set by make_handler

    def setup(self):
        self.killed = False
        self.is_watch = False
        self.close_gen = 0
        self.request.settimeout(30)
        self.request.do_handshake()
        super().setup()
        self.server.registry.add(self)

    def finish(self):
        self.server.registry.remove(self)
        try:
            super().finish()
        except QUIET_ERRORS:
            pass

    def handle(self):
        try:
            super().handle()
        except QUIET_ERRORS:
            self.close_connection = True

    def do_GET(self):
        self.app.handle(self)

    def _not_allowed(self):
        self.app.handle(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _not_allowed

    def log_message(self, fmt, *args):  # the App keeps the request log
        pass

    def send_response(self, code, message=None):
        """Status line and Date only: the Go server sends no Server header."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    # ---- abrupt ends ---------------------------------------------------------------------

    def abort(self, rst=False):
        """Ends this connection without a clean HTTP/TLS end: FIN (or RST) on the TCP socket.
        Called only from this connection's own thread."""
        self.close_connection = True
        if rst:
            self.server.rst.add(id(self.request))
            try:
                self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        else:
            try:
                socket.socket.shutdown(self.request, socket.SHUT_RDWR)
            except OSError:
                pass


class Registry:
    """Open connections, so that a shutdown or "close all watches" can reach them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.handlers = set()

    def add(self, h):
        with self.lock:
            self.handlers.add(h)

    def remove(self, h):
        with self.lock:
            self.handlers.discard(h)

    def count(self):
        with self.lock:
            return len(self.handlers), sum(1 for h in self.handlers if h.is_watch)

    def kill_all(self):
        """Marks every connection killed and shuts its TCP socket (FIN, no TLS close_notify).
        The socket is closed only after remove() (in finish), under this lock, so no fd reuse."""
        with self.lock:
            for h in self.handlers:
                h.killed = True
                try:
                    socket.socket.shutdown(h.request, socket.SHUT_RDWR)
                except OSError:
                    pass
            return len(self.handlers)


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, addr, handler, ctx_getter, registry):
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.ctx_getter = ctx_getter
        self.registry = registry
        self.rst = set()
        super().__init__(addr, handler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.server_address[0]
        self.server_port = self.server_address[1]

    def get_request(self):
        sock, addr = self.socket.accept()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Go's net/http does
        return self.ctx_getter().wrap_socket(sock, server_side=True,
                                             do_handshake_on_connect=False), addr

    def verify_request(self, request, client_address):
        """In "reset" down mode every connection is logged and reset before TLS."""
        app = self.RequestHandlerClass.app
        if not app.reset_connections:
            return True
        e = app.log.start(method=None, path=None, query={}, token_hash=None, kind="connect",
                          watch=False, peer="%s:%s" % client_address[:2], user_agent=None)
        e["status"] = 0
        app.log.finish(e, "reset")
        try:
            request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.rst.add(id(request))
        return False

    def shutdown_request(self, request):
        if id(request) in self.rst:
            self.rst.discard(id(request))
            request.close()  # SO_LINGER 0: RST, no FIN
            return
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        pass


def make_handler(app):
    return type("BoundApiHandler", (ApiRequestHandler,), {"app": app})


class Listener:
    """The HTTPS listener; stop() and start() again re-bind the same port."""

    def __init__(self, app, host, port, ctx_getter):
        self.app = app
        self.host = host
        self.port = port
        self.ctx_getter = ctx_getter
        self.registry = Registry()
        self.server = None
        self.thread = None
        self.lock = threading.Lock()

    def start(self):
        with self.lock:
            if self.server is not None:
                return self.port
            srv = TLSServer((self.host, self.port), make_handler(self.app), self.ctx_getter,
                            self.registry)
            self.port = srv.server_address[1]
            self.server = srv
            self.thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                           name="api-listener", daemon=True)
            self.thread.start()
            return self.port

    def stop(self):
        """Stops accepting (connections are refused) and drops every open connection."""
        with self.lock:
            srv, self.server = self.server, None
            if srv is None:
                return 0
            srv.shutdown()
            srv.server_close()
            self.thread.join(timeout=5)
            self.thread = None
        n = self.registry.kill_all()
        self.app.store.notify()
        return n

    @property
    def listening(self):
        return self.server is not None
