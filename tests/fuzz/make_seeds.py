#!/usr/bin/python3
"""Writes the seed corpora of the DNS fuzz targets (query, reply, tcpframe) with dnspython.

Run from anywhere: /usr/bin/python3 tests/fuzz/make_seeds.py. Files are named after what
they hold; libFuzzer adds its own findings next to them when run with -max_total_time.
"""
import os
import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def query(name, rdtype="A", **kw):
    q = dns.message.make_query(name, rdtype, **kw)
    q.id = 0x1234
    return q


def queries():
    yield "a", query("reviews.default.cluster-2.")
    yield "aaaa_mesh", query("Reviews.Default.Cluster-2.", "AAAA")
    yield "any_mesh", query("big.default.cluster-2.", "ANY", use_edns=0, payload=4096)
    yield "wildcard", query("x.y.wild.global.", "A", use_edns=0, want_dnssec=True)
    yield "apex_soa", query("cluster-2.", "SOA")
    yield "apex_ns", query("global.", "NS")
    yield "ent", query("default.cluster-2.", "TXT")
    yield "nx_in_zone", query("nope.cluster-2.", "A", use_edns=0, payload=512)
    yield "cluster", query("kube-dns.kube-system.svc.cluster.local.")
    yield "ptr", query("10.0.96.10.in-addr.arpa.", "PTR")
    yield "cached", query("cached.test.")
    yield "edns_opts", query("example.", "A", use_edns=0, options=[
        dns.edns.GenericOption(10, b"\x01\x02\x03\x04\x05\x06\x07\x08"),
        dns.edns.GenericOption(12, b"\x00" * 20)])
    yield "badvers", query("example.", "A", use_edns=1)
    yield "ch_class", query("version.bind.", "TXT", rdclass="CH")
    yield "axfr", query("example.", "AXFR")
    yield "https", query("example.", "HTTPS", use_edns=0, want_dnssec=True)


def wire(m):
    return m.to_wire()


def main():
    for name, q in queries():
        put("query", name, wire(q))
    put("query", "short", b"\x12\x34\x01\x00\x00\x01")
    put("query", "qdcount2", wire(query("a.example.")).replace(b"\x00\x01\x00\x00", b"\x00\x02\x00\x00", 1))
    put("query", "pointer_loop", b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01")
    put("query", "notify", b"\x12\x34\x20\x00" + wire(query("a.example."))[4:])

    # replies: each answers its own question
    def reply(qname, rdtype, rrs, rcode=0, auth=(), add=(), edns=True):
        q = query(qname, rdtype, use_edns=0 if edns else None)
        r = dns.message.make_response(q)
        r.set_rcode(rcode)
        for t in rrs:
            r.answer.append(dns.rrset.from_text(*t))
        for t in auth:
            r.authority.append(dns.rrset.from_text(*t))
        for t in add:
            r.additional.append(dns.rrset.from_text(*t))
        return r.to_wire(max_size=65535)

    soa = ("example.", 300, "IN", "SOA", "ns.example. host.example. 1 7200 1800 86400 60")
    put("reply", "a", reply("www.example.", "A", [("www.example.", 300, "IN", "A", "10.0.0.1", "10.0.0.2")]))
    put("reply", "cname_chain", reply("www.example.", "A", [
        ("www.example.", 300, "IN", "CNAME", "web.example."),
        ("web.example.", 60, "IN", "CNAME", "host.other."),
        ("host.other.", 30, "IN", "A", "10.0.0.9")]))
    put("reply", "nxdomain", reply("nx.example.", "A", [], rcode=dns.rcode.NXDOMAIN, auth=[soa]))
    put("reply", "nodata", reply("www.example.", "AAAA", [], auth=[soa]))
    put("reply", "mx_glue", reply("example.", "MX", [("example.", 300, "IN", "MX", "10 mail.example.")],
                                  auth=[("example.", 300, "IN", "NS", "ns1.example.")],
                                  add=[("mail.example.", 300, "IN", "A", "10.0.0.25"),
                                       ("ns1.example.", 300, "IN", "A", "10.0.0.53"),
                                       ("evil.", 300, "IN", "A", "6.6.6.6")]))
    put("reply", "srv", reply("_http._tcp.svc.cluster.local.", "SRV",
                              [("_http._tcp.svc.cluster.local.", 30, "IN", "SRV", "0 50 80 pod.svc.cluster.local.")],
                              add=[("pod.svc.cluster.local.", 30, "IN", "A", "10.1.0.5")]))
    put("reply", "out_of_bailiwick", reply("x.example.", "A", [
        ("x.example.", 300, "IN", "CNAME", "kube-dns.kube-system.svc.cluster.local."),
        ("kube-dns.kube-system.svc.cluster.local.", 300, "IN", "A", "6.6.6.6")]))
    put("reply", "any", reply("example.", "ANY", [("example.", 300, "IN", "A", "10.0.0.1"),
                                                  ("example.", 300, "IN", "TXT", '"hello"')]))
    put("reply", "txt_big", reply("big.example.", "TXT",
                                  [("big.example.", 300, "IN", "TXT", *['"%0100d"' % i for i in range(40)])]))
    put("reply", "dname", reply("a.b.example.", "A", [
        ("b.example.", 300, "IN", "DNAME", "c.example."),
        ("a.b.example.", 300, "IN", "CNAME", "a.c.example."),
        ("a.c.example.", 300, "IN", "A", "10.0.0.3")]))
    put("reply", "noedns_ttl0", reply("zero.example.", "A", [("zero.example.", 0, "IN", "A", "10.0.0.4")], edns=False))

    # tcp streams: first byte is the read size
    qs = [wire(q) for _, q in queries()]
    stream = b"".join(struct.pack("!H", len(m)) + m for m in qs[:6])
    put("tcpframe", "pipelined_step1", b"\x00" + stream)
    put("tcpframe", "pipelined_step7", b"\x06" + stream)
    put("tcpframe", "pipelined_step255", b"\xff" + stream)
    put("tcpframe", "zero_length", b"\x03" + stream[:40] + b"\x00\x00" + stream[40:])
    put("tcpframe", "huge_length", b"\x10\xff\xff" + b"\x00" * 100)


if __name__ == "__main__":
    main()
