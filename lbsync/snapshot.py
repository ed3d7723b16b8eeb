"""What a source hands to the model: the cluster's raw objects, as the API prints them.

Dicts at the edge: each element is one Kubernetes object as decoded from the API's JSON
(or a kubectl YAML dump); the API source drops, while decoding, big fields lbsync never
reads (managedFields, last-applied-configuration, targetRef, ...). Nothing here
interprets the objects; `lbsync.model` does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Tuple


@dataclass(frozen=True)
class Snapshot:
    """One consistent read of the cluster.

    services: v1 Service objects.
    endpoint_slices: discovery.k8s.io/v1 EndpointSlice objects.
    endpoints: v1 Endpoints objects (used for a Service only when no EndpointSlice
        names it, e.g. on clusters that do not serve or permit EndpointSlices).
    nodes: v1 Node objects; listed only when some Service is served through nodePorts
        (backend mode `nodeport`), else empty.
    requests / bytes: what the read cost (HTTP requests made, response bytes read);
        0 for file sources.
    version: an opaque token that changes whenever any of these objects changes (the
        lists' resourceVersions, or file sizes and mtimes); '' when unknown. Equal
        versions let a sync skip building and rendering altogether.
    held: the source keeps these objects and hands each one that did not change on as the
        very same object at its next read (a watch's store; a poll's stand-ins): a cache may
        key on their identity without keeping them alive itself (lbsync.regroup).
    """

    services: Tuple[dict, ...] = ()
    endpoint_slices: Tuple[dict, ...] = ()
    endpoints: Tuple[dict, ...] = ()
    nodes: Tuple[dict, ...] = ()
    requests: int = 0
    bytes: int = field(default=0)
    version: str = ""
    held: bool = False


def identity(obj: Any) -> Optional[Tuple[str, str]]:
    """(uid, resourceVersion) of an API object, or None when it lacks either. The API server
    changes an object's resourceVersion on every write to it: equal pairs, equal objects."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return None
    uid, rv = meta.get("uid"), meta.get("resourceVersion")
    return (uid, rv) if isinstance(uid, str) and isinstance(rv, str) and uid and rv else None


class Unread(dict):
    """A stand-in for an object a poll did not decode again because its bytes did not change
    (lbsync.kube.pieces): only its name, namespace, uid, resourceVersion, and the labels and
    annotations that say which Service it belongs to and how that Service is served. Enough
    to group it and find its Service's kept Part; `model.part` refuses one (NotRead)."""


class NotRead(Exception):
    """A Service's Part had to be built from an object the source did not decode again (the
    kept Part was gone): the caller forgets the source's stand-ins and reads again in full."""

