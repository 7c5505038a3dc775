"""A scriptable, hostile-when-asked DNS server on loopback (UDP and TCP on one port).

It answers from a zone (dnspython) by default, and a test replaces `handler` to answer late,
drop, truncate over UDP, forge (wrong ID, wrong question, wrong source port), or send garbage.
Every query it receives is recorded (protocol, source address and port, ID, name as
received, type, EDNS), so a test can count what reached it and check source port and ID
randomness.

Threads: one for UDP, one accepting TCP, one per TCP connection; delayed sends are
threading.Timers. stop() ends them all (bounded joins) and closes every socket.
"""

import select
import socket
import struct
import threading
import time

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone


class Query:
    """One query received, with the means to answer it on the path it came by."""

    def __init__(self, server, proto, raw, src, conn=None):
        self.server = server
        self.proto = proto            # "udp" or "tcp"
        self.raw = raw
        self.src = src                # (ip, port)
        self.conn = conn              # the TCP connection, for "tcp"
        self.time = time.monotonic()
        self.id = struct.unpack("!H", raw[:2])[0] if len(raw) >= 2 else None
        try:
            self.msg = dns.message.from_wire(raw)
        except Exception:  # garbage is recorded too
            self.msg = None
        q = self.msg.question[0] if self.msg is not None and self.msg.question else None
        self.qname = q.name.to_text() if q is not None else None  # case as received
        self.qtype = dns.rdatatype.to_text(q.rdtype) if q is not None else None
        self.edns = self.msg.edns if self.msg is not None else -1
        self.payload = self.msg.payload if self.msg is not None else 0
        self.do = bool(self.msg is not None and self.msg.ednsflags & dns.flags.DO)
        self.cd = bool(self.msg is not None and self.msg.flags & dns.flags.CD)

    def answer(self):
        """The zone's answer to this query, as a dns.message (not sent)."""
        return self.server.zone_answer(self.msg)

    def send(self, wire):
        """Sends @wire (bytes or a dns.message) back on the path the query came by."""
        if isinstance(wire, dns.message.Message):
            wire = wire.to_wire(max_size=65535)
        try:
            if self.proto == "udp":
                self.server.udp.sendto(wire, self.src)
            else:
                self.conn.sendall(struct.pack("!H", len(wire)) + wire)
        except OSError:
            pass

    def send_later(self, wire, delay):
        self.server.later(delay, self.send, wire)

    def send_from_other_port(self, wire):
        """Sends @wire to the querier from another socket (a forgery: wrong source port)."""
        if isinstance(wire, dns.message.Message):
            wire = wire.to_wire(max_size=65535)
        s = socket.socket(self.server.family, socket.SOCK_DGRAM)
        try:
            s.bind((self.server.host, 0))
            s.sendto(wire, self.src)
        finally:
            s.close()


def truncate_for_udp(resp, query):
    """What a real server sends over UDP when @resp does not fit the querier's buffer:
    header and question with TC=1."""
    limit = max(512, query.payload) if query.edns >= 0 else 512
    wire = resp.to_wire(max_size=65535)
    if len(wire) <= limit:
        return wire
    short = dns.message.make_response(query.msg)
    short.set_rcode(resp.rcode())
    short.flags |= dns.flags.TC
    return short.to_wire()


def default_handler(q):
    """Answer from the zone after the server's delay; truncate over UDP like a real server."""
    if q.msg is None:
        return
    resp = q.answer()
    wire = truncate_for_udp(resp, q) if q.proto == "udp" else resp.to_wire(max_size=65535)
    if q.server.delay:
        q.send_later(wire, q.server.delay)
    else:
        q.send(wire)


class FakeUpstream:
    """A DNS server on 127.0.0.1:port (UDP and TCP) run by a test.

    zone_text/origin: the zone it answers from (several may be given as a dict).
    handler(query): decides what to send; default_handler when None.
    """

    def __init__(self, zones=None, handler=None, host="127.0.0.1", port=0):
        self.host = host
        self.zones = {}
        for origin, text in (zones or {}).items():
            self.zones[dns.name.from_text(origin)] = dns.zone.from_text(
                text, origin=origin, relativize=False, check_origin=False)
        self.handler = handler or default_handler
        self.delay = 0.0
        self.queries = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.timers = []
        self.threads = []
        self.conns = []
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.udp = socket.socket(self.family, socket.SOCK_DGRAM)
        self.tcp = socket.socket(self.family, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(20):  # a UDP port whose TCP twin is free too
            self.udp.bind((host, port))
            self.port = self.udp.getsockname()[1]
            try:
                self.tcp.bind((host, self.port))
                break
            except OSError:
                if port:
                    raise
                self.udp.close()
                self.udp = socket.socket(self.family, socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.tcp.listen(64)

    # ---- lifecycle ----

    def start(self):
        for target in (self._udp_loop, self._tcp_loop):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.stopping.set()
        with self.lock:
            timers = list(self.timers)
            conns = list(self.conns)
        for t in timers:
            t.cancel()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self.threads):
            t.join(timeout=2)
        for s in [self.udp, self.tcp] + conns:
            try:
                s.close()
            except OSError:
                pass

    def later(self, delay, fn, *args):
        t = threading.Timer(delay, fn, args)
        t.daemon = True
        with self.lock:
            if self.stopping.is_set():
                return
            self.timers.append(t)
        t.start()

    # ---- what it saw ----

    def received(self, name=None, qtype=None, proto=None):
        """Queries received, optionally only those for @name (case-insensitive), @qtype,
        @proto."""
        with self.lock:
            qs = list(self.queries)
        out = []
        for q in qs:
            if name is not None and (q.qname or "").lower() != name.lower().rstrip(".") + ".":
                continue
            if qtype is not None and q.qtype != qtype:
                continue
            if proto is not None and q.proto != proto:
                continue
            out.append(q)
        return out

    def count(self, name=None, qtype=None, proto=None):
        return len(self.received(name, qtype, proto))

    def clear(self):
        with self.lock:
            self.queries = []

    # ---- answering ----

    def zone_answer(self, msg):
        """The authoritative answer to @msg from the zones: CNAME chains followed inside the
        zones, NXDOMAIN and NODATA with the SOA in the authority section."""
        resp = dns.message.make_response(msg, our_payload=1232)
        resp.flags |= dns.flags.AA | dns.flags.RA
        q = msg.question[0]
        zone = self._zone_of(q.name)
        if zone is None:
            resp.set_rcode(dns.rcode.REFUSED)
            resp.flags &= ~dns.flags.AA
            return resp
        name = q.name
        for _ in range(8):
            node = zone.get_node(name)
            if node is None:
                resp.set_rcode(dns.rcode.NXDOMAIN)
                break
            rds = node.get_rdataset(dns.rdataclass.IN, q.rdtype)
            if rds is not None:
                resp.answer.append(self._rrset(name, rds, name))
                return resp
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None:
                break  # NODATA
            resp.answer.append(self._rrset(name, cname, name))
            name = cname[0].target
            if self._zone_of(name) is not zone:
                return resp
        soa = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)
        resp.authority.append(self._rrset(zone.origin, soa, zone.origin))
        return resp

    @staticmethod
    def _rrset(name, rds, owner):
        rrset = dns.rrset.RRset(owner, rds.rdclass, rds.rdtype)
        rrset.update(rds)
        return rrset

    def _zone_of(self, name):
        best = None
        for origin, zone in self.zones.items():
            if name.is_subdomain(origin) and (best is None or origin.is_subdomain(best.origin)):
                best = zone
        return best

    def _record(self, q):
        with self.lock:
            self.queries.append(q)

    def _dispatch(self, q):
        self._record(q)
        try:
            self.handler(q)
        except Exception as e:  # a broken handler must not kill the server thread
            print("fake upstream handler failed: %r" % (e,))

    def _udp_loop(self):
        while not self.stopping.is_set():
            r, _, _ = select.select([self.udp], [], [], 0.1)
            if not r:
                continue
            try:
                data, src = self.udp.recvfrom(65535)
            except OSError:
                return
            self._dispatch(Query(self, "udp", data, src))

    def _tcp_loop(self):
        while not self.stopping.is_set():
            r, _, _ = select.select([self.tcp], [], [], 0.1)
            if not r:
                continue
            try:
                conn, src = self.tcp.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            t = threading.Thread(target=self._tcp_conn, args=(conn, src), daemon=True)
            t.start()
            self.threads.append(t)

    def _tcp_conn(self, conn, src):
        try:
            self._tcp_serve(conn, src)
        finally:
            conn.close()

    def _tcp_serve(self, conn, src):
        buf = b""
        conn.settimeout(0.2)
        deadline = time.monotonic() + 30
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                data = conn.recv(65535)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            buf += data
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                n = struct.unpack("!H", buf[:2])[0]
                self._dispatch(Query(self, "tcp", buf[2:2 + n], src, conn))
                buf = buf[2 + n:]
