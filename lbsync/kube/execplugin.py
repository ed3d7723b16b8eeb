"""kubeconfig `exec` credential plugins (client.authentication.k8s.io v1 and v1beta1).

Exists because managed clusters (EKS, GKE, AKS, OIDC) hand out short-lived tokens through a
helper command. The command runs with KUBERNETES_EXEC_INFO set; its ExecCredential output is
cached until `status.expirationTimestamp` and re-run on expiry or after a 401. The plugin's
stdout holds the secret, so it never reaches an error message; stderr's tail may.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from lbsync.exceptions import CredentialsError
from lbsync.kube.auth import Auth, CertPair, private_file

API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
_FRACTION = re.compile(r"\.(\d+)")
EXPIRY_SKEW = 10.0  # seconds: re-run a little before the token actually expires


def parse_timestamp(value: str) -> float:
    """RFC 3339 (`2024-01-02T03:04:05Z`, fractions, offsets) to a POSIX time; 3.9-compatible."""
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # fromisoformat on 3.9/3.10 wants exactly 3 or 6 fraction digits
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


class ExecAuth(Auth):
    """Runs the plugin lazily; token()/cert() return the cached credential while it is valid."""

    kind = "exec"

    def __init__(self, spec: Dict[str, Any], *, where: str, base_dir: str,
                 cluster: Optional[Dict[str, Any]] = None, env: Mapping[str, str] = os.environ,
                 fallback_cert: Optional[CertPair] = None, timeout: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._where = where
        self._api_version = str(spec.get("apiVersion", ""))
        if self._api_version not in API_VERSIONS:
            raise CredentialsError("%s: exec plugin apiVersion %r is not supported (use one of %s)"
                                   % (where, self._api_version, ", ".join(API_VERSIONS)))
        if spec.get("interactiveMode") == "Always":
            raise CredentialsError("%s: exec plugin requires interactiveMode Always; lbsync runs "
                                   "unattended" % where)
        command = str(spec.get("command") or "")
        if not command:
            raise CredentialsError("%s: exec plugin has no command" % where)
        if os.sep in command and not os.path.isabs(command):
            command = os.path.join(base_dir, command)  # client-go resolves these like file paths
        self._argv = [command] + [str(a) for a in spec.get("args") or []]
        self._env = dict(env)
        for item in spec.get("env") or []:
            self._env[str(item["name"])] = str(item.get("value", ""))
        self._info = {"apiVersion": self._api_version, "kind": "ExecCredential",
                      "spec": {"interactive": False}}
        if spec.get("provideClusterInfo") and cluster is not None:
            self._info["spec"]["cluster"] = cluster
        self._hint = str(spec.get("installHint") or "")
        self._fallback_cert = fallback_cert
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: Optional[Tuple[Optional[str], Optional[CertPair], Optional[float]]] = None

    @property
    def command(self) -> str:
        return self._argv[0]

    def token(self) -> Optional[str]:
        return self._current()[0]

    def cert(self) -> Optional[CertPair]:
        return self._current()[1] or self._fallback_cert

    def refresh(self) -> bool:
        with self._lock:
            self._cached = None
        return True

    def _current(self) -> Tuple[Optional[str], Optional[CertPair], Optional[float]]:
        with self._lock:
            cached = self._cached
            if cached is None or (cached[2] is not None and self._clock() >= cached[2] - EXPIRY_SKEW):
                cached = self._cached = self._run()
            return cached

    def _run(self) -> Tuple[Optional[str], Optional[CertPair], Optional[float]]:
        env = dict(self._env, KUBERNETES_EXEC_INFO=json.dumps(self._info))
        try:
            proc = subprocess.run(self._argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=self._timeout)
        except FileNotFoundError:
            hint = (": " + self._hint) if self._hint else ""
            raise CredentialsError("%s: exec plugin %r not found%s" % (self._where, self.command, hint)) from None
        except (OSError, subprocess.TimeoutExpired) as e:
            raise CredentialsError("%s: exec plugin %r failed: %s" % (self._where, self.command, e)) from None
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip()[-300:]
            raise CredentialsError("%s: exec plugin %r exited with status %d: %s"
                                   % (self._where, self.command, proc.returncode, tail or "(no stderr)"))
        return self._parse(proc.stdout)

    def _parse(self, stdout: bytes) -> Tuple[Optional[str], Optional[CertPair], Optional[float]]:
        bad = "%s: exec plugin %r printed " % (self._where, self.command)
        try:
            doc = json.loads(stdout)
        except ValueError:
            raise CredentialsError(bad + "something that is not JSON (%d bytes)" % len(stdout)) from None
        if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential":
            raise CredentialsError(bad + "JSON that is not an ExecCredential")
        if doc.get("apiVersion") != self._api_version:
            raise CredentialsError(bad + "apiVersion %r, expected %r" % (doc.get("apiVersion"), self._api_version))
        status = doc.get("status") or {}
        token = status.get("token") or None
        cert = self._cert_from(status, bad)
        if token is None and cert is None:
            raise CredentialsError(bad + "an ExecCredential with neither status.token nor "
                                   "status.clientCertificateData/clientKeyData")
        expiry = None
        if status.get("expirationTimestamp"):
            try:
                expiry = parse_timestamp(str(status["expirationTimestamp"]))
            except ValueError:
                raise CredentialsError(bad + "an unparseable expirationTimestamp %r"
                                       % status["expirationTimestamp"]) from None
        return token, cert, expiry

    @staticmethod
    def _cert_from(status: Dict[str, Any], bad: str) -> Optional[CertPair]:
        cert_pem, key_pem = status.get("clientCertificateData"), status.get("clientKeyData")
        if not cert_pem and not key_pem:
            return None
        if not (cert_pem and key_pem):
            raise CredentialsError(bad + "only one of clientCertificateData/clientKeyData")
        return (private_file(str(cert_pem).encode(), "exec-cert"),
                private_file(str(key_pem).encode(), "exec-key"))

