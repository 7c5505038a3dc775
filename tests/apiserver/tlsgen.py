"""Certificates for the fake kube-apiserver, made with the openssl CLI.

A CA (ca.crt/ca.key) and a server certificate signed by it (server.crt/server.key) with SANs for
127.0.0.1, ::1 and localhost (plus the in-cluster names and any extra SANs asked for). Keys are
EC P-256 so that generation takes milliseconds.
"""

import os
import ssl
import subprocess
import tempfile

DEFAULT_SANS = ("IP:127.0.0.1", "IP:::1", "DNS:localhost", "DNS:kubernetes",
                "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local")


def _openssl(args, cwd):
    """Runs openssl with @p args in @p cwd; raises RuntimeError with its stderr on failure."""
    proc = subprocess.run(["openssl"] + args, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], proc.stderr.decode(errors="replace")))


def _write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def generate(state_dir, extra_sans=(), ca_name="meshdns-test-ca"):
    """Creates a fresh CA and server certificate in @p state_dir (overwriting old ones).

    Returns a dict with the paths ca, cert, key. ca.crt is replaced atomically, last, so a client
    that reads it sees either the old or the new CA, never a partial file.
    """
    sans = ",".join(list(DEFAULT_SANS) + list(extra_sans))
    with tempfile.TemporaryDirectory(dir=state_dir, prefix=".tls-") as work:
        _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                  "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
                  "-subj", "/CN=" + ca_name,
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"], work)
        _openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                  "-nodes", "-keyout", "server.key", "-out", "server.csr",
                  "-subj", "/CN=kube-apiserver"], work)
        with open(os.path.join(work, "ext.cnf"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectAltName=%s\n" % sans)
        _openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                  "-CAcreateserial", "-out", "server.crt", "-days", "825",
                  "-extfile", "ext.cnf"], work)
        files = {}
        for name in ("ca.key", "server.key", "server.crt", "ca.crt"):
            with open(os.path.join(work, name), "rb") as f:
                files[name] = f.read()
    for name in ("ca.key", "server.key", "server.crt", "ca.crt"):
        _write_atomic(os.path.join(state_dir, name), files[name])
    os.chmod(os.path.join(state_dir, "ca.key"), 0o600)
    os.chmod(os.path.join(state_dir, "server.key"), 0o600)
    return paths(state_dir)


def paths(state_dir):
    """The certificate paths inside @p state_dir."""
    return {"ca": os.path.join(state_dir, "ca.crt"),
            "cert": os.path.join(state_dir, "server.crt"),
            "key": os.path.join(state_dir, "server.key")}


def server_context(state_dir):
    """An SSLContext serving server.crt/server.key, HTTP/1.1 only (ALPN), TLS >= 1.2."""
    p = paths(state_dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(p["cert"], p["key"])
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
