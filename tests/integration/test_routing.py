"""Routing (SEMANTICS.md section 1, rules 4 and 5): which server a name is sent to.

Two unbound instances serve the same names with different data ("kube" and "upstream"
flavours, zones.py), so the answer itself shows who was asked; their query logs show it
again. dnsmasq stands in for kube-dns in one test, as it did in kube-dns pods.
"""

import os
import shutil
import subprocess
import time

import harness
import zones
from harness import DnsTestCase, answer_data


class WithUnboundPeers(DnsTestCase):
    """Two unbound instances for the class: kube-dns and the upstream."""

    @classmethod
    def setUpClass(cls):
        cls.kube = cls.class_unbound(zones.zones_for("kube"), name="kube")
        cls.up = cls.class_unbound(zones.zones_for("upstream"), name="upstream")


class RoutingByZone(WithUnboundPeers):
    """Rules 4 and 5 with --cluster-dns and --upstream given."""

    def setUp(self):
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                                    "--cluster-dns", "127.0.0.1:%d" % self.kube.port)

    def assert_routed(self, name, qtype, expect, to_kube):
        before = (self.kube.count(name, qtype), self.up.count(name, qtype))
        r = self.m.dnsq(name, qtype)
        self.assertRcode(r, "NOERROR")
        self.assertEqual(answer_data(r, qtype), [expect], r)
        after = (self.kube.count(name, qtype), self.up.count(name, qtype))
        want = (before[0] + 1, before[1]) if to_kube else (before[0], before[1] + 1)
        self.assertEqual(after, want, "query counts (kube-dns, upstream) for %s" % name)

    def test_rule4_cluster_domain_goes_to_cluster_dns(self):
        self.assert_routed("kube-dns.kube-system.svc.cluster.local", "A", zones.KUBE_DNS_IP,
                           True)

    def test_rule4_cluster_domain_match_ignores_case(self):
        self.assert_routed("Kube-DNS.Kube-System.SVC.Cluster.LOCAL", "A", zones.KUBE_DNS_IP,
                           True)

    def test_rule4_in_addr_arpa_goes_to_cluster_dns(self):
        self.assert_routed(zones.PTR4_NAME, "PTR", zones.PTR_KUBE, True)

    def test_rule4_ip6_arpa_goes_to_cluster_dns(self):
        self.assert_routed(zones.PTR6_NAME, "PTR", zones.PTR_KUBE, True)

    def test_rule5_other_names_go_upstream(self):
        self.assert_routed("www.example.test", "A", zones.WWW_IP, False)

    def test_rule5_cluster_negative_answer_comes_from_cluster_dns(self):
        r = self.m.dnsq("nosuch.default.svc.cluster.local", "A")
        self.assertRcode(r, "NXDOMAIN")
        self.assertEqual(self.kube.count("nosuch.default.svc.cluster.local"), 1)
        self.assertEqual(self.up.count("nosuch.default.svc.cluster.local"), 0)


class RoutingBoundaries(DnsTestCase):
    """Only names equal to or below D, in-addr.arpa. and ip6.arpa. go to cluster DNS: a
    name that merely ends with the same characters goes upstream."""

    def setUp(self):
        catch_all = {"local.": "$ORIGIN local.\n@ 60 IN SOA ns. h. 1 1 1 1 5\n"
                               "xcluster 60 IN A 192.0.2.77\n",
                     "arpa.": "$ORIGIN arpa.\n@ 60 IN SOA ns. h. 1 1 1 1 5\n"
                              "xip6 60 IN A 192.0.2.78\n"}
        self.kube = self.start_fake(zones.zones_for("kube"))
        self.up = self.start_fake(catch_all)
        self.m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                                    "--cluster-dns", "127.0.0.1:%d" % self.kube.port)

    def test_rule4_suffix_without_label_boundary_goes_upstream(self):
        r = self.m.dnsq("xcluster.local", "A")
        self.assertEqual(answer_data(r, "A"), ["192.0.2.77"], r)
        self.assertEqual((self.kube.count(), self.up.count()), (0, 1))

    def test_rule4_arpa_outside_reverse_zones_goes_upstream(self):
        r = self.m.dnsq("xip6.arpa", "A")
        self.assertEqual(answer_data(r, "A"), ["192.0.2.78"], r)
        self.assertEqual((self.kube.count(), self.up.count()), (0, 1))

    def test_rule4_cluster_domain_flag_moves_the_boundary(self):
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port,
                               "--cluster-dns", "127.0.0.1:%d" % self.kube.port,
                               "--cluster-domain", "example.test")
        r = m.dnsq("www.example.test", "A")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP_WRONG], r)  # kube's data
        self.assertEqual(self.kube.count("www.example.test"), 1)
        self.assertEqual(self.up.count(), 0)


class ClusterDnsDefaults(WithUnboundPeers):
    """Rule 4 when --cluster-dns is absent."""

    def test_rule4_no_cluster_dns_falls_back_to_upstream(self):
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port)
        name = "kube-dns.kube-system.svc.cluster.local"
        r = m.dnsq(name, "A")
        self.assertRcode(r, "NOERROR")
        self.assertEqual(answer_data(r, "A"), [zones.KUBE_DNS_IP_WRONG], r)
        self.assertEqual(self.up.count(name), 1)
        r = m.dnsq(zones.PTR4_NAME, "PTR")
        self.assertEqual(answer_data(r, "PTR"), [zones.PTR_WRONG], r)
        # rule 34: still the cluster domain's 30 s cap (TTL 3600 at the upstream)
        r = m.dnsq("kubernetes.default.svc.cluster.local", "A")
        self.assertEqual([rr["ttl"] for rr in r["answer"]], [30], r)

    def test_rule4_kube_dns_service_host_is_the_default(self):
        env = dict(os.environ, KUBE_DNS_SERVICE_HOST="127.0.0.1",
                   KUBE_DNS_SERVICE_PORT=str(self.kube.port))
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % self.up.port, env=env)
        r = m.dnsq("kube-dns.kube-system.svc.cluster.local", "A")
        self.assertEqual(answer_data(r, "A"), [zones.KUBE_DNS_IP], r)


class OwnAddressAsClusterDns(DnsTestCase):
    """Rule 5: never forward to the agent's own listen addresses, whichever flag names
    them (NodeLocal DNSCache also listens on the kube-dns service IP)."""

    def test_rule5_own_listen_address_as_cluster_dns_is_skipped(self):
        kube = self.start_fake(zones.zones_for("kube"))
        up = self.start_fake()
        port = harness.free_port()
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port,
                               "--cluster-dns", "127.0.0.1:%d" % port,
                               "--cluster-dns", "127.0.0.1:%d" % kube.port,
                               "--upstream-timeout", "3000", port=port)
        t0 = time.monotonic()
        r = m.dnsq("kube-dns.kube-system.svc.cluster.local", "A", timeout_ms=10000)
        elapsed = time.monotonic() - t0
        self.assertEqual(answer_data(r, "A"), [zones.KUBE_DNS_IP], r)
        self.assertLess(elapsed, 2.0, "the agent asked itself first and waited a timeout")

    def test_rule5_own_listen_address_as_upstream_is_skipped(self):
        up = self.start_fake()
        port = harness.free_port()
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % port,
                               "--upstream", "127.0.0.1:%d" % up.port,
                               "--upstream-timeout", "3000", port=port)
        t0 = time.monotonic()
        r = m.dnsq("www.example.test", "A", timeout_ms=10000)
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP], r)
        self.assertLess(time.monotonic() - t0, 2.0)


class DnsmasqAsKubeDns(DnsTestCase):
    """Rule 4 with dnsmasq as kube-dns, as in the kube-dns pods of old."""

    def test_rule4_cluster_names_and_ptr_reach_dnsmasq(self):
        dm = self.start_dnsmasq(["--host-record=kube-dns.kube-system.svc.cluster.local,"
                                 + zones.KUBE_DNS_IP,
                                 "--local=/cluster.local/", "--local=/10.in-addr.arpa/"])
        up = self.start_fake()
        m = self.start_meshdns("--upstream", "127.0.0.1:%d" % up.port,
                               "--cluster-dns", "127.0.0.1:%d" % dm.port)
        r = m.dnsq("kube-dns.kube-system.svc.cluster.local", "A")
        self.assertEqual(answer_data(r, "A"), [zones.KUBE_DNS_IP], r)
        r = m.dnsq(zones.PTR4_NAME, "PTR")
        self.assertEqual(answer_data(r, "PTR"), [zones.PTR_KUBE], r)
        r = m.dnsq("www.example.test", "A")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP], r)
        harness.wait_until(lambda: dm.count("kube-dns.kube-system.svc.cluster.local") == 1,
                           2, "dnsmasq to log the query")
        self.assertEqual(dm.count(zones.PTR4_NAME), 1)
        self.assertEqual(dm.count("www.example.test"), 0)
        self.assertEqual(up.count("www.example.test"), 1)
        self.assertEqual(up.count(), 1)


class ResolvConf(DnsTestCase):
    """Rule 5: upstreams from --resolv-conf when --upstream is absent."""

    def write(self, name, text):
        path = os.path.join(self.tmp(), name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("resolv.conf names servers on port 53: binding it needs root")

    def fake53(self):
        """A fake upstream on port 53 of a loopback address of its own (resolv.conf
        names servers without a port)."""
        return self.start_fake(host=harness.loopback_with_port53(), port=53)

    def test_rule5_resolv_conf_nameservers_are_the_upstreams(self):
        a = self.fake53()
        rc = self.write("resolv.conf", "# test\nsearch example.test\noptions ndots:5\n"
                                       "nameserver %s\n" % a.host)
        m = self.start_meshdns("--resolv-conf", rc)
        r = m.dnsq("www.example.test", "A")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP], r)
        self.assertEqual(a.count("www.example.test"), 1)

    def test_rule5_second_resolv_conf_nameserver_is_tried(self):
        dead = harness.loopback_with_port53()  # nothing listens there: ICMP refused
        b = self.fake53()
        rc = self.write("resolv.conf", "nameserver %s\nnameserver %s\n" % (dead, b.host))
        m = self.start_meshdns("--resolv-conf", rc)
        r = m.dnsq("www.example.test", "A")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP], r)
        self.assertEqual(b.count("www.example.test"), 1)

    def test_rule5_ipv6_nameserver_in_resolv_conf(self):
        try:
            a = self.start_fake(host="::1", port=53)
        except OSError as e:
            self.skipTest("[::1]:53 is not free: %s" % e)
        rc = self.write("resolv.conf", "nameserver ::1\n")
        m = self.start_meshdns("--resolv-conf", rc)
        r = m.dnsq("www.example.test", "A")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP], r)
        self.assertEqual(a.count("www.example.test"), 1)

    def test_rule5_upstream_flag_wins_over_resolv_conf(self):
        a = self.fake53()
        b = self.start_fake()
        rc = self.write("resolv.conf", "nameserver %s\n" % a.host)
        m = self.start_meshdns("--resolv-conf", rc, "--upstream", "127.0.0.1:%d" % b.port)
        m.dnsq("www.example.test", "A")
        self.assertEqual((a.count(), b.count()), (0, 1))

    def test_rule5_own_listen_address_in_resolv_conf_is_skipped(self):
        a = self.fake53()
        own = harness.loopback_with_port53()
        # The agent serves on own:53, and resolv.conf names own first: forwarding there
        # would loop back into the agent.
        rc = self.write("resolv.conf", "nameserver %s\nnameserver %s\n" % (own, a.host))
        m = self.start_meshdns("--resolv-conf", rc, "--upstream-timeout", "3000",
                               host=own, port=53)
        t0 = time.monotonic()
        r = m.dnsq("www.example.test", "A")
        elapsed = time.monotonic() - t0
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP], r)
        self.assertEqual(a.count("www.example.test"), 1)
        # Asking itself first would cost a full upstream timeout (3 s) before a.
        self.assertLess(elapsed, 2.5)

    def test_rule5_resolv_conf_naming_only_ourselves_is_no_upstream(self):
        own = harness.loopback_with_port53()
        rc = self.write("resolv.conf", "nameserver %s\n" % own)
        m = self.start_meshdns("--resolv-conf", rc, host=own, port=53, ready=False)
        status = m.proc.wait(10)
        self.assertEqual(status, 1, m.log())
        self.assertIn("no upstream", m.log())

    # In a private mount namespace: a tmpfs over /run/systemd (or /run where that does not
    # exist), so that /run/systemd/resolve/resolv.conf is the test's file. Nothing is
    # written when the mount fails.
    PRIVATE_RUN = ('if [ -d /run/systemd ]; then mount -t tmpfs meshdns-itest /run/systemd; '
                   'else mount -t tmpfs meshdns-itest /run; fi || exit 97; ')

    def test_rule5_only_stub_reads_systemd_resolved_list(self):
        """/run/systemd/resolve/resolv.conf is compiled in (RESOLVCONF_SYSTEMD_PATH); the
        test shows the agent a file of its own there from a private mount namespace."""
        if os.geteuid() != 0 or not shutil.which("unshare"):
            self.skipTest("needs root and unshare for a private mount namespace")
        probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                self.PRIVATE_RUN + "true"], capture_output=True)
        if probe.returncode != 0:
            self.skipTest("cannot mount in a private namespace: %s" % probe.stderr.decode())
        a = self.fake53()
        stub = self.write("resolv.conf", "nameserver 127.0.0.53\noptions edns0 trust-ad\n")
        real = self.write("systemd-resolv.conf", "nameserver %s\n" % a.host)
        script = (self.PRIVATE_RUN + 'mkdir -p /run/systemd/resolve && '
                  'cp "$0" /run/systemd/resolve/resolv.conf && exec "$@"')
        m = self.start_meshdns("--resolv-conf", stub,
                               wrap=["unshare", "-m", "--propagation", "private",
                                     "sh", "-c", script, real])
        r = m.dnsq("www.example.test", "A")
        self.assertEqual(answer_data(r, "A"), [zones.WWW_IP], r)
        self.assertEqual(a.count("www.example.test"), 1)


if __name__ == "__main__":
    harness.main()
