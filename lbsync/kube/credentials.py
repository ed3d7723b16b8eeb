"""Find out where the Kubernetes API is and how to authenticate, like kubectl does.

Order when nothing is named: --kubeconfig > $KUBECONFIG (merged) > in-cluster service
account (KUBERNETES_SERVICE_HOST set and the token file present) > ~/.kube/config.
Every failure is a CredentialsError naming the file and the problem; no token ever appears
in a message or a repr.
"""
from __future__ import annotations

import base64
import os
from typing import Any, Dict, Mapping, Optional, Tuple

from lbsync.exceptions import CredentialsError
from lbsync.kube import kubeconfig as kcfg
from lbsync.kube.auth import Auth, CertPair, StaticAuth, TokenFileAuth, private_file
from lbsync.kube.execplugin import ExecAuth

SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class Credentials:
    """Server URL, TLS trust settings and an Auth; hand to lbsync.kube.client.ApiSource."""

    def __init__(self, server: str, *, auth: Optional[Auth] = None, ca_file: Optional[str] = None,
                 insecure: bool = False, tls_server_name: Optional[str] = None, source: str = "",
                 namespace: str = "default", disable_compression: bool = False) -> None:
        self.server = server.rstrip("/")
        self.disable_compression = disable_compression  # the kubeconfig's: ask for answers not gzipped
        self.auth = auth or Auth()
        self.ca_file = ca_file
        self.insecure = insecure
        self.tls_server_name = tls_server_name
        self.source = source
        self.namespace = namespace

    @property
    def auth_kind(self) -> str:
        return self.auth.kind

    def token(self) -> Optional[str]:
        return self.auth.token()

    def cert(self) -> Optional[CertPair]:
        return self.auth.cert()

    def refresh(self) -> bool:
        """After a 401: re-read the token file / re-run the exec plugin. True if worth a retry."""
        return self.auth.refresh()

    def __repr__(self) -> str:
        return "Credentials(server=%r, auth=%s, ca_file=%r, insecure=%r, source=%r)" % (
            self.server, self.auth.kind, self.ca_file, self.insecure, self.source)

    __str__ = __repr__


def load(kubeconfig: Optional[str] = None, context: Optional[str] = None, *,
         env: Mapping[str, str] = os.environ, incluster_dir: str = SERVICEACCOUNT_DIR) -> Credentials:
    """Credentials from the first source that applies (see the module docstring)."""
    if kubeconfig:
        return from_kubeconfig([kubeconfig], context, env=env, skip_missing=False)
    if env.get("KUBECONFIG"):
        paths = [p for p in env["KUBECONFIG"].split(os.pathsep) if p]
        return from_kubeconfig(paths, context, env=env, skip_missing=True)
    token_path = os.path.join(incluster_dir, "token")
    if not context and env.get("KUBERNETES_SERVICE_HOST") and os.path.exists(token_path):
        return in_cluster(incluster_dir, env=env)
    default = os.path.join(_home(env), ".kube", "config")
    if os.path.exists(default):
        return from_kubeconfig([default], context, env=env, skip_missing=False)
    raise CredentialsError(
        "no Kubernetes credentials found: no --kubeconfig given, $KUBECONFIG is unset, not running "
        "in a cluster (KUBERNETES_SERVICE_HOST unset or %s missing) and %s does not exist"
        % (token_path, default))


def in_cluster(base_dir: str = SERVICEACCOUNT_DIR, *, env: Mapping[str, str] = os.environ) -> Credentials:
    """The pod's service account: token (re-read as the kubelet rotates it), CA, namespace."""
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise CredentialsError("in-cluster: KUBERNETES_SERVICE_HOST is not set")
    ca_file = os.path.join(base_dir, "ca.crt")
    if not os.path.exists(ca_file):
        raise CredentialsError("in-cluster: CA file %s does not exist" % ca_file)
    auth = TokenFileAuth(os.path.join(base_dir, "token"))
    auth.token()  # fail now, with the path, if the token is unreadable
    namespace = "default"
    ns_file = os.path.join(base_dir, "namespace")
    if os.path.exists(ns_file):
        with open(ns_file, encoding="utf-8") as f:
            namespace = f.read().strip() or namespace
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host  # IPv6 literal
    return Credentials("https://%s:%s" % (host, port), auth=auth, ca_file=ca_file,
                       source="in-cluster service account (%s)" % base_dir, namespace=namespace)


def from_kubeconfig(paths: Any, context: Optional[str] = None, *, env: Mapping[str, str] = os.environ,
                    skip_missing: bool = False) -> Credentials:
    """Credentials for `context` (default: current-context) of the merged kubeconfig files."""
    selected = kcfg.select(kcfg.merge(list(paths), skip_missing=skip_missing), context)
    where = "kubeconfig %s" % selected.cluster.path
    server, ca_file, insecure, tls_name, cluster_info = _cluster(selected.cluster, where, env)
    user_where = "kubeconfig %s: user %r" % (selected.user.path, selected.user.name)
    auth = _auth(selected.user, user_where, env, cluster_info)
    return Credentials(server, auth=auth, ca_file=ca_file, insecure=insecure, tls_server_name=tls_name,
                       source="kubeconfig %s context %s" % (":".join(selected.files), selected.context),
                       namespace=selected.namespace,
                       disable_compression=cluster_info.get("disable-compression", False))


def _home(env: Mapping[str, str]) -> str:
    return env.get("HOME") or os.path.expanduser("~")


def _file(entry: kcfg.Entry, key: str, where: str, env: Mapping[str, str]) -> Optional[str]:
    """The path under `key`, resolved and checked to exist."""
    value = entry.body.get(key)
    if not value:
        return None
    path = kcfg.resolve_path(entry, str(value), _home(env))
    if not os.path.isfile(path):
        raise CredentialsError("%s: %s %s does not exist" % (where, key, path))
    return path


def _data(entry: kcfg.Entry, key: str, where: str, name: str) -> Optional[str]:
    """Base64 `<key>` data written to a private file (mode 600); None when absent."""
    value = entry.body.get(key)
    if not value:
        return None
    try:
        raw = base64.b64decode(str(value), validate=True)
    except (ValueError, TypeError):
        raise CredentialsError("%s: %s is not valid base64" % (where, key)) from None
    return private_file(raw, name)


def _cluster(entry: kcfg.Entry, where: str, env: Mapping[str, str]
             ) -> Tuple[str, Optional[str], bool, Optional[str], Dict[str, Any]]:
    where = "%s: cluster %r" % (where, entry.name)
    server = str(entry.body.get("server") or "")
    if not server:
        raise CredentialsError("%s has no server" % where)
    if "://" not in server:
        server = "https://" + server
    if not server.startswith(("https://", "http://")):
        raise CredentialsError("%s: server %r is not an http(s) URL" % (where, server))
    ca_file = (_data(entry, "certificate-authority-data", where, "ca")
               or _file(entry, "certificate-authority", where, env))
    insecure = bool(entry.body.get("insecure-skip-tls-verify"))
    if insecure and ca_file:
        raise CredentialsError("%s: a certificate authority and insecure-skip-tls-verify are both set; "
                               "choose one" % where)
    tls_name = entry.body.get("tls-server-name") or None
    if not isinstance(entry.body.get("disable-compression", False), bool):
        raise CredentialsError("%s: disable-compression is a %s, not true or false" % (
            where, type(entry.body.get("disable-compression")).__name__))
    info = {k: v for k, v in entry.body.items() if k in (
        "server", "tls-server-name", "insecure-skip-tls-verify", "certificate-authority-data", "proxy-url",
        "disable-compression")}
    info["server"] = server
    if ca_file and "certificate-authority-data" not in info:
        with open(ca_file, "rb") as f:
            info["certificate-authority-data"] = base64.b64encode(f.read()).decode()
    ext = {e.get("name"): e.get("extension") for e in entry.body.get("extensions") or [] if isinstance(e, dict)}
    if "client.authentication.k8s.io/exec" in ext:
        info["config"] = ext["client.authentication.k8s.io/exec"]
    return server, ca_file, insecure, tls_name, info


def _client_cert(entry: kcfg.Entry, where: str, env: Mapping[str, str]) -> Optional[CertPair]:
    cert = _data(entry, "client-certificate-data", where, "client-cert") or _file(
        entry, "client-certificate", where, env)
    key = _data(entry, "client-key-data", where, "client-key") or _file(entry, "client-key", where, env)
    if bool(cert) != bool(key):
        raise CredentialsError("%s: client certificate and client key must be given together" % where)
    return (cert, key) if cert and key else None


def _auth(entry: kcfg.Entry, where: str, env: Mapping[str, str], cluster: Dict[str, Any]) -> Auth:
    body = entry.body
    if body.get("username") or body.get("password"):
        raise CredentialsError("%s uses basic auth (username/password), which lbsync does not support; "
                               "use a token, tokenFile, client certificate or exec plugin" % where)
    if body.get("auth-provider"):
        raise CredentialsError("%s uses the removed auth-provider %r; use an exec plugin instead"
                               % (where, (body["auth-provider"] or {}).get("name")))
    cert = _client_cert(entry, where, env)
    if body.get("exec"):
        if not isinstance(body["exec"], dict):
            raise CredentialsError("%s: exec must be a mapping" % where)
        return ExecAuth(body["exec"], where=where, base_dir=entry.base_dir, cluster=cluster, env=env,
                        fallback_cert=cert)
    token_file = _file(entry, "tokenFile", where, env)
    if token_file:  # like client-go, a token file wins over an inline token
        return TokenFileAuth(token_file, cert=cert)
    return StaticAuth(token=str(body["token"]) if body.get("token") else None, cert=cert)
