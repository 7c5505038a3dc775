"""daemonset.yaml and Dockerfile: what the manifest must say for a node-local DNS agent
(INTERFACE.md, the README "On a cluster"), checked field by field, and that the image's runtime
stage holds every library meshdns links.

Needs python3-yaml. The package checks need apt-cache and dpkg (Debian), the library check
a built meshdns ($MESHDNS, default build/meshdns).
"""

import ipaddress
import os
import re
import shutil
import subprocess
import unittest

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MESHDNS = os.environ.get("MESHDNS") or os.path.join(ROOT, "build", "meshdns")
LINK_LOCAL = "169.254.20.10"
HEALTH_PORT = 8054  # INTERFACE.md: --health defaults to the first listen address, port 8054
METRICS_PORT = 9253  # INTERFACE.md: --metrics defaults to 0.0.0.0:9253
UPSTREAM_TIMEOUT_S = 2  # --upstream-timeout default
MAX_SERVERS = 8  # CONFIG_MAX_SERVERS


def read(name):
    with open(os.path.join(ROOT, name)) as f:
        return f.read()


class Manifest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.text = read("daemonset.yaml")
        cls.docs = [d for d in yaml.safe_load_all(cls.text) if d]
        cls.by_kind = {d["kind"]: d for d in cls.docs}

    def ds(self):
        return self.by_kind["DaemonSet"]

    def pod(self):
        return self.ds()["spec"]["template"]["spec"]

    def container(self):
        cs = self.pod()["containers"]
        self.assertEqual(len(cs), 1)
        return cs[0]

    def args(self):
        """Flag -> value of the container's args (--flag=value or --flag value)."""
        out, args = {}, self.container().get("args", [])
        i = 0
        while i < len(args):
            a = args[i]
            self.assertTrue(a.startswith("--"), a)
            if "=" in a:
                k, v = a.split("=", 1)
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                k, v = a, args[i + 1]
                i += 1
            else:
                k, v = a, True
            out[k] = v
            i += 1
        return out

    def test_objects_and_namespace(self):
        self.assertEqual(sorted(self.by_kind),
                         ["ClusterRole", "ClusterRoleBinding", "DaemonSet", "ServiceAccount"])
        for kind in ("ServiceAccount", "DaemonSet"):
            self.assertEqual(self.by_kind[kind]["metadata"]["namespace"], "kube-system")
        self.assertEqual(self.pod()["serviceAccountName"],
                         self.by_kind["ServiceAccount"]["metadata"]["name"])

    def test_rbac_is_read_only_on_serviceentries(self):
        rules = self.by_kind["ClusterRole"]["rules"]
        self.assertEqual(len(rules), 1)
        self.assertEqual(rules[0]["apiGroups"], ["networking.istio.io"])
        self.assertEqual(rules[0]["resources"], ["serviceentries"])
        self.assertEqual(sorted(rules[0]["verbs"]), ["get", "list", "watch"])
        self.assertNotIn("resourceNames", rules[0])
        b = self.by_kind["ClusterRoleBinding"]
        self.assertEqual(b["roleRef"], {"apiGroup": "rbac.authorization.k8s.io",
                                        "kind": "ClusterRole",
                                        "name": self.by_kind["ClusterRole"]["metadata"]["name"]})
        sa = self.by_kind["ServiceAccount"]["metadata"]
        self.assertEqual(b["subjects"], [{"kind": "ServiceAccount", "name": sa["name"],
                                          "namespace": sa["namespace"]}])

    def test_pod_runs_on_every_node_on_the_host_network(self):
        p = self.pod()
        self.assertIs(p["hostNetwork"], True)
        self.assertEqual(p["dnsPolicy"], "Default")
        self.assertEqual(p["priorityClassName"], "system-node-critical")
        # one toleration with no key and no effect tolerates every taint
        self.assertIn({"operator": "Exists"}, p["tolerations"])
        sel = self.ds()["spec"]["selector"]["matchLabels"]
        labels = self.ds()["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(sel.items() <= labels.items())

    def test_rolling_update_never_leaves_a_node_without_an_instance(self):
        s = self.ds()["spec"]["updateStrategy"]
        self.assertEqual(s["type"], "RollingUpdate")
        self.assertEqual(s["rollingUpdate"], {"maxSurge": 1, "maxUnavailable": 0})
        # A declared port becomes a hostPort with hostNetwork: the API rejects hostPorts with
        # maxSurge, and the scheduler could not place the surge pod beside the old one.
        for c in self.pod()["containers"]:
            self.assertNotIn("ports", c)
            self.assertFalse(any("hostPort" in p for p in c.get("ports", [])))

    def test_grace_period_covers_the_drain(self):
        drain = UPSTREAM_TIMEOUT_S * (MAX_SERVERS + 1) + 1
        self.assertGreater(self.pod()["terminationGracePeriodSeconds"], drain)

    def test_security_context_has_only_the_two_capabilities(self):
        sc = self.container()["securityContext"]
        self.assertIs(sc.get("privileged", False), False)
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertEqual(sorted(sc["capabilities"]["add"]), ["NET_ADMIN", "NET_BIND_SERVICE"])
        self.assertNotIn("securityContext", self.pod(), "pod-level settings would hide these")
        self.assertNotIn("volumes", self.pod(), "no hostPath or writable mounts are needed")

    def test_probes_hit_health_and_ready_on_the_listen_address(self):
        args = self.args()
        listen = args.get("--listen", LINK_LOCAL + ":53")
        self.assertNotIn("--health", args, "probes below assume the default --health")
        host = listen.rsplit(":", 1)[0]
        self.assertEqual(host, LINK_LOCAL)
        self.assertTrue(ipaddress.ip_address(host).is_link_local)
        c = self.container()
        for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
            g = c[probe]["httpGet"]
            self.assertEqual((g["host"], g["port"], g["path"]), (host, HEALTH_PORT, path))
            self.assertNotEqual(g.get("scheme", "HTTP"), "HTTPS")
        # liveness must not kill a loop that is merely slow: 3 silent periods > the 5 s limit
        lp = c["livenessProbe"]
        self.assertGreater(lp["periodSeconds"] * lp["failureThreshold"], 5)

    def test_prometheus_scrapes_the_metrics_port(self):
        ann = self.ds()["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(ann["prometheus.io/scrape"], "true")
        self.assertEqual(ann["prometheus.io/port"], str(METRICS_PORT))
        metrics = self.args().get("--metrics", "0.0.0.0:%d" % METRICS_PORT)
        self.assertEqual(int(metrics.rsplit(":", 1)[1]), METRICS_PORT)

    def test_cluster_dns_comes_from_the_kube_dns_service(self):
        # KUBE_DNS_SERVICE_HOST is injected for the kube-dns Service of the pod's namespace
        self.assertEqual(self.ds()["metadata"]["namespace"], "kube-system")
        self.assertIsNot(self.pod().get("enableServiceLinks", True), False)
        cd = self.args().get("--cluster-dns")
        if cd is not None:
            self.assertTrue(cd == "$(KUBE_DNS_SERVICE_HOST)" or ipaddress.ip_address(cd))
        self.assertRegex(self.text, r"#\s*- --cluster-dns=\d+\.\d+\.\d+\.\d+",
                         "the --cluster-dns alternative is shown")

    def test_resources_are_sized_and_have_no_cpu_limit(self):
        r = self.container()["resources"]

        def mib(q):
            m = re.fullmatch(r"(\d+)(Mi|Gi)", q)
            self.assertIsNotNone(m, q)
            return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)

        self.assertRegex(r["requests"]["cpu"], r"^\d+m$")
        self.assertNotIn("cpu", r["limits"], "CFS throttling would stall queries")
        self.assertLessEqual(mib(r["requests"]["memory"]), mib(r["limits"]["memory"]))
        # the figures are stated beside them, with how they were measured
        self.assertIn("scripts/measure-resources.sh", self.text)
        # the limit is above the measured peak of the configured cache (50.9 MB at 32 MiB)
        cache = self.args()["--cache-size"]
        self.assertEqual(cache, "32M")
        self.assertGreater(mib(r["limits"]["memory"]) * 1.048576, 50.9 * 1.25)

    def test_image_is_the_dockerfile_build_of_this_version(self):
        version = re.search(r"project\(meshdns VERSION ([0-9.]+)", read("CMakeLists.txt"))
        image = self.container()["image"]
        self.assertEqual(image.rsplit(":", 1)[1], version.group(1))
        self.assertIn("-t %s " % image, read("Dockerfile"))


class Image(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.text = read("Dockerfile")
        stages = re.split(r"(?m)^FROM ", cls.text)[1:]
        cls.build, cls.runtime = stages[0], stages[-1]

    def runtime_packages(self):
        m = re.search(r"apt-get install -y --no-install-recommends\s*\\\n(.*?)\\\n",
                      self.runtime, re.S)
        self.assertIsNotNone(m)
        return m.group(1).split()

    def test_two_stages_on_debian_12(self):
        self.assertTrue(self.build.startswith("debian:bookworm AS build"))
        self.assertTrue(self.runtime.startswith("debian:bookworm-slim"))
        self.assertIn("COPY --from=build /build/meshdns /usr/bin/meshdns", self.runtime)
        self.assertRegex(self.runtime, r'(?m)^ENTRYPOINT \["/usr/bin/meshdns"\]$')
        self.assertRegex(self.runtime, r"(?m)^USER ")
        self.assertNotIn("-dev", " ".join(self.runtime_packages()))

    @unittest.skipUnless(shutil.which("apt-cache"), "apt-cache (Debian) is needed")
    def test_runtime_packages_exist_in_apt(self):
        for pkg in self.runtime_packages():
            r = subprocess.run(["apt-cache", "show", pkg], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, "no package %s: %s" % (pkg, r.stderr))

    @unittest.skipUnless(shutil.which("dpkg") and shutil.which("ldd") and shutil.which("readelf"),
                         "dpkg, ldd and readelf are needed")
    def test_runtime_stage_has_every_library_meshdns_links(self):
        if not os.access(MESHDNS, os.X_OK):
            self.fail("no meshdns binary at %s (set $MESHDNS)" % MESHDNS)
        # the binary's own NEEDED entries; apt brings what those libraries need in turn
        dyn = subprocess.run(["readelf", "-d", MESHDNS], capture_output=True, text=True,
                             check=True).stdout
        needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", dyn))
        self.assertIn("libc.so.6", needed)
        out = subprocess.run(["ldd", MESHDNS], capture_output=True, text=True, check=True)
        paths = dict(re.findall(r"(?m)^\s*(\S+) => (/\S+)", out.stdout))
        have = set(self.runtime_packages()) | {"libc6", "libgcc-s1"}  # in every Debian image
        for lib in sorted(needed):
            if re.match(r"lib(asan|ubsan|stdc\+\+)\.", lib) or lib.startswith("ld-linux"):
                continue  # sanitizer runtimes of an instrumented build; the loader
            self.assertIn(lib, paths, "ldd cannot find %s" % lib)
            path = os.path.realpath(paths[lib])
            r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
            if r.returncode != 0:  # merged /usr: dpkg knows the /lib spelling
                r = subprocess.run(["dpkg", "-S", path.replace("/usr/lib/", "/lib/", 1)],
                                   capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, "%s: %s" % (path, r.stderr))
            pkg = r.stdout.split(":")[0]
            self.assertIn(pkg, have, "%s (%s) is not installed by the runtime stage"
                          % (lib, pkg))

    def test_build_context_leaves_out_build_trees(self):
        ignore = read(".dockerignore").split()
        self.assertIn("build*/", ignore)
        self.assertIn(".git", ignore)


if __name__ == "__main__":
    unittest.main()
