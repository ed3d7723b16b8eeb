"""Throwaway PKI for the fake API: a CA, a server cert for 127.0.0.1/localhost, a client cert.

Made with the `openssl` CLI (EC P-256 keys, so generation takes milliseconds). The client
cert is signed by the same CA the server trusts for client auth, as kubeadm clusters do.
"""
from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from typing import Optional

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
_KEY_ARGS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the generated PEM files."""

    dir: str
    ca_cert: str
    ca_key: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    def server_context(self) -> ssl.SSLContext:
        """Server side: present server.crt, accept (optionally) client certs signed by the CA."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        ctx.load_verify_locations(self.ca_cert)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx


def _run(*args: str, cwd: str) -> None:
    proc = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], proc.stderr.strip()))


def make_ca(directory: str, name: str = "ca", cn: str = "fake-kube-ca") -> str:
    """Create `<name>.crt`/`<name>.key`, a self-signed CA; returns the cert path."""
    os.makedirs(directory, exist_ok=True)
    _run("req", "-x509", *_KEY_ARGS, "-keyout", name + ".key", "-out", name + ".crt",
         "-days", "3650", "-subj", "/CN=" + cn,
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
         cwd=directory)
    return os.path.join(directory, name + ".crt")


def make_leaf(directory: str, name: str, subject: str, extensions: str, ca: str = "ca") -> str:
    """Create `<name>.crt`/`<name>.key` signed by CA `<ca>`; returns the cert path."""
    ext_file = os.path.join(directory, name + ".ext")
    with open(ext_file, "w") as f:
        f.write(extensions + "\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    _run("req", *_KEY_ARGS, "-keyout", name + ".key", "-out", name + ".csr", "-subj", subject,
         cwd=directory)
    _run("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
         "-CAcreateserial", "-out", name + ".crt", "-days", "825", "-extfile", ext_file,
         cwd=directory)
    return os.path.join(directory, name + ".crt")


def generate(directory: str, *, client_subject: Optional[str] = None) -> TlsMaterial:
    """CA + server cert (SAN IP:127.0.0.1, DNS:localhost) + client cert, all in `directory`."""
    make_ca(directory)
    make_leaf(directory, "server", "/CN=kube-apiserver",
              "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
              "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment")
    make_leaf(directory, "client", client_subject or "/O=lbsync/CN=lbsync-client",
              "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment")
    for key in ("ca.key", "server.key", "client.key"):
        os.chmod(os.path.join(directory, key), 0o600)
    j = lambda n: os.path.join(directory, n)  # noqa: E731
    return TlsMaterial(directory, j("ca.crt"), j("ca.key"), j("server.crt"), j("server.key"),
                       j("client.crt"), j("client.key"))
