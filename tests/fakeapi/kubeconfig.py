"""Write kubeconfig files pointing at a fake API (or anywhere), in the variants tests need.

File paths or inline `-data` for the CA and client cert/key, a token, a tokenFile, an exec
plugin, insecure-skip-tls-verify and tls-server-name.
"""
from __future__ import annotations

import base64
import os
from typing import Any, Dict, List, Optional

import yaml


def _b64(path: str) -> str:
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def build_kubeconfig(server: str, *, ca_file: Optional[str] = None, token: Optional[str] = None,
                     token_file: Optional[str] = None, client_cert: Optional[str] = None,
                     client_key: Optional[str] = None, inline: bool = False, insecure: bool = False,
                     tls_server_name: Optional[str] = None, exec_spec: Optional[Dict[str, Any]] = None,
                     namespace: Optional[str] = None, context: str = "fake",
                     cluster: str = "fake-cluster", user: str = "lbsync",
                     extra_contexts: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """The kubeconfig document as a dict (inline=True embeds CA and client cert/key as -data)."""
    cluster_doc: Dict[str, Any] = {"server": server}
    if ca_file:
        if inline:
            cluster_doc["certificate-authority-data"] = _b64(ca_file)
        else:
            cluster_doc["certificate-authority"] = ca_file
    if insecure:
        cluster_doc["insecure-skip-tls-verify"] = True
    if tls_server_name:
        cluster_doc["tls-server-name"] = tls_server_name
    user_doc: Dict[str, Any] = {}
    if token:
        user_doc["token"] = token
    if token_file:
        user_doc["tokenFile"] = token_file
    if client_cert and client_key:
        if inline:
            user_doc["client-certificate-data"] = _b64(client_cert)
            user_doc["client-key-data"] = _b64(client_key)
        else:
            user_doc["client-certificate"], user_doc["client-key"] = client_cert, client_key
    if exec_spec:
        user_doc["exec"] = exec_spec
    ctx: Dict[str, Any] = {"cluster": cluster, "user": user}
    if namespace:
        ctx["namespace"] = namespace
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": cluster, "cluster": cluster_doc}],
        "users": [{"name": user, "user": user_doc}],
        "contexts": [{"name": context, "context": ctx}] + list(extra_contexts or []),
        "current-context": context,
    }


def write_kubeconfig(path: str, server: str, **kwargs: Any) -> str:
    """Write build_kubeconfig(...) to `path` with mode 600; returns the path."""
    doc = build_kubeconfig(server, **kwargs)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    return path
