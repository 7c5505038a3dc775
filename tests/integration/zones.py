"""Zone data served by the real peers (unbound, dnsmasq) and the fake upstream.

Two flavours of the same names let a test tell who answered: the "kube" flavour is the
kube-dns stand-in (authoritative for cluster.local. and the reverse zones), the "upstream"
flavour is the general upstream (authoritative for example.test.). Each also serves the
other's names with different data, so a query routed to the wrong server gets a visibly
different answer (and shows in the wrong server's query log).
"""

# Addresses that identify the server that answered.
KUBE_DNS_IP = "10.96.0.10"          # kube-dns.kube-system.svc.cluster.local from kube-dns
KUBE_DNS_IP_WRONG = "203.0.113.66"  # the same name as the upstream would answer it
WWW_IP = "192.0.2.1"                # www.example.test from the upstream
WWW_IP_WRONG = "198.51.100.1"       # the same name as kube-dns would answer it
PTR_KUBE = "kube-dns.kube-system.svc.cluster.local."
PTR_WRONG = "wrong.upstream.test."
PTR6_NAME = "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."
PTR4_NAME = "10.0.96.10.in-addr.arpa."

# SOA timers: cluster.local. SOA TTL 60, MINIMUM 20 (negative TTL 20, capped to 5 by the
# agent); example.test. SOA TTL 300, MINIMUM 30 (negative TTL 30).
CLUSTER_SOA_TTL, CLUSTER_SOA_MIN = 60, 20
EXAMPLE_SOA_TTL, EXAMPLE_SOA_MIN = 300, 30


def _txt_set(owner, count, size, ttl=300):
    """@count TXT records of @size characters each at @owner (distinct strings)."""
    lines = []
    for i in range(count):
        text = ("r%02d-" % i + "x" * size)[:size]
        lines.append('%s %d IN TXT "%s"' % (owner, ttl, text))
    return "\n".join(lines)


def cluster_zone(flavour):
    """cluster.local. as kube-dns ("kube") or as a wrong server would answer it."""
    ip = KUBE_DNS_IP if flavour == "kube" else KUBE_DNS_IP_WRONG
    return f"""$ORIGIN cluster.local.
$TTL 60
@ {CLUSTER_SOA_TTL} IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 {CLUSTER_SOA_MIN}
@ 60 IN NS ns.dns.cluster.local.
ns.dns 60 IN A 10.96.0.10
kube-dns.kube-system.svc 60 IN A {ip}
kubernetes.default.svc 3600 IN A 10.96.0.1
*.apps.svc 60 IN A 10.96.1.1
web.default.svc 60 IN A 10.96.2.2
"""


def reverse4_zone(flavour):
    target = PTR_KUBE if flavour == "kube" else PTR_WRONG
    return f"""$ORIGIN 10.in-addr.arpa.
$TTL 60
@ {CLUSTER_SOA_TTL} IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 {CLUSTER_SOA_MIN}
@ 60 IN NS ns.dns.cluster.local.
10.0.96 3600 IN PTR {target}
"""


def reverse6_zone(flavour):
    target = PTR_KUBE if flavour == "kube" else PTR_WRONG
    return f"""$ORIGIN d.f.ip6.arpa.
$TTL 60
@ {CLUSTER_SOA_TTL} IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 {CLUSTER_SOA_MIN}
@ 60 IN NS ns.dns.cluster.local.
{PTR6_NAME} 3600 IN PTR {target}
"""


def example_zone(flavour):
    """example.test. as the upstream ("upstream") or as kube-dns would answer it."""
    ip = WWW_IP if flavour == "upstream" else WWW_IP_WRONG
    # medium: 12 TXT of 60 characters, about 900 bytes: over 512, under 1232.
    # big: 40 TXT of 80 characters, about 3.6 kB: over 1232, so UDP from a server that
    # keeps to 1232 bytes is truncated.
    # manya: a CNAME to 40 A records: truncation at 512 keeps the CNAME RRset, not a part of
    # the A RRset.
    many_a = "\n".join("manya-target 300 IN A 192.0.2.%d" % (i + 100) for i in range(40))
    return f"""$ORIGIN example.test.
$TTL 300
@ {EXAMPLE_SOA_TTL} IN SOA ns.example.test. hostmaster.example.test. 1 7200 1800 86400 {EXAMPLE_SOA_MIN}
@ 300 IN NS ns.example.test.
@ 300 IN MX 10 mail.example.test.
ns 300 IN A 192.0.2.53
mail 300 IN A 192.0.2.25
www 300 IN A {ip}
www 300 IN AAAA 2001:db8::1
www 300 IN TXT "hello"
alias 300 IN CNAME www.example.test.
chain1 300 IN CNAME chain2.example.test.
chain2 300 IN CNAME www.example.test.
zero 0 IN A 192.0.2.200
long 86400 IN A 192.0.2.86
short 2 IN A 192.0.2.2
shortalias 300 IN CNAME short.example.test.
manya 300 IN CNAME manya-target.example.test.
{many_a}
{_txt_set("medium", 12, 60)}
{_txt_set("big", 40, 80)}
"""


def zones_for(flavour):
    """Every zone of a peer: {origin: zone text}."""
    return {
        "cluster.local.": cluster_zone(flavour),
        "10.in-addr.arpa.": reverse4_zone(flavour),
        "d.f.ip6.arpa.": reverse6_zone(flavour),
        "example.test.": example_zone(flavour),
    }
