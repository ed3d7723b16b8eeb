"""JSON documents the fake API answers with: Status errors and the discovery documents.

Shapes copied from what kube-apiserver v1.3x prints (kubectl's legacy discovery reads
/api, /api/v1, /apis and /apis/<group>/<version>).
"""
from __future__ import annotations

import json
from typing import Any, Dict, Optional

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 406: "NotAcceptable", 409: "AlreadyExists", 410: "Expired",
           429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
           504: "Timeout"}
DEFAULT_MESSAGES = {401: "Unauthorized", 404: "the server could not find the requested resource",
                    429: "Too many requests, please try again later.",
                    500: "Internal error occurred: fake fault",
                    503: "the server is currently unable to handle the request",
                    504: "the server was unable to return a response in the time allotted"}


def status(code: int, message: Optional[str] = None, reason: Optional[str] = None,
           details: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A metav1.Status failure object."""
    body: Dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure",
                            "message": message if message is not None else DEFAULT_MESSAGES.get(code, "fake error"),
                            "reason": reason or REASONS.get(code, "Unknown")}
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def forbidden(user: str, verb: str, resource: str, group: str, namespace: Optional[str]) -> Dict[str, Any]:
    """The RBAC denial exactly as the authorizer words it."""
    scope = 'in the namespace "%s"' % namespace if namespace else "at the cluster scope"
    message = '%s is forbidden: User "%s" cannot %s resource "%s" in API group "%s" %s' % (
        resource, user, verb, resource, group, scope)
    details: Dict[str, Any] = {"kind": resource}
    if group:
        details = {"group": group, "kind": resource}
    return status(403, message, "Forbidden", details)


def _resource(name: str, singular: str, kind: str, namespaced: bool = True,
              short: Optional[list] = None, categories: Optional[list] = None) -> Dict[str, Any]:
    doc: Dict[str, Any] = {"name": name, "singularName": singular, "namespaced": namespaced,
                           "kind": kind, "verbs": VERBS if namespaced else
                           ["create", "delete", "get", "list", "patch", "update", "watch"]}
    if short:
        doc["shortNames"] = short
    if categories:
        doc["categories"] = categories
    return doc


def version() -> Dict[str, Any]:
    return {"major": "1", "minor": "32", "gitVersion": "v1.32.0-lbsync-fake",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.4", "compiler": "gc",
            "platform": "linux/amd64"}


def core_versions(address: str) -> Dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}


def core_v1() -> Dict[str, Any]:
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        _resource("endpoints", "endpoints", "Endpoints", short=["ep"]),
        _resource("namespaces", "namespace", "Namespace", namespaced=False, short=["ns"]),
        _resource("nodes", "node", "Node", namespaced=False, short=["no"]),
        _resource("services", "service", "Service", short=["svc"], categories=["all"]),
        {"name": "services/status", "singularName": "", "namespaced": True, "kind": "Service",
         "verbs": ["get", "patch", "update"]},
        _resource("events", "event", "Event", short=["ev"]),
    ]}


def _discovery_group() -> Dict[str, Any]:
    gv = {"groupVersion": "discovery.k8s.io/v1", "version": "v1"}
    return {"name": "discovery.k8s.io", "versions": [gv], "preferredVersion": gv}


def groups(serve_slices: bool, serve_events: bool = True) -> Dict[str, Any]:
    found = ([_discovery_group()] if serve_slices else []) + ([_events_group()] if serve_events else [])
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": found}


def _events_group() -> Dict[str, Any]:
    gv = {"groupVersion": "events.k8s.io/v1", "version": "v1"}
    return {"name": "events.k8s.io", "versions": [gv], "preferredVersion": gv}


def events_group() -> Dict[str, Any]:
    return {"kind": "APIGroup", "apiVersion": "v1", **_events_group()}


def events_v1() -> Dict[str, Any]:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "events.k8s.io/v1",
            "resources": [_resource("events", "event", "Event", short=["ev"])]}


def discovery_group() -> Dict[str, Any]:
    return {"kind": "APIGroup", "apiVersion": "v1", **_discovery_group()}


def discovery_v1() -> Dict[str, Any]:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "discovery.k8s.io/v1",
            "resources": [_resource("endpointslices", "endpointslice", "EndpointSlice")]}


def namespace(name: str) -> Dict[str, Any]:
    return {"metadata": {"name": name, "uid": "ns-" + name, "resourceVersion": "1",
                         "creationTimestamp": "2025-01-01T00:00:00Z",
                         "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def encode(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()
