"""The fake API's object store: resourceVersions, consistent list snapshots, paging.

Every object is serialised once when written, so a list is a join of cached bytes; a list
at resourceVersion N is an immutable sorted tuple kept for a while so continue tokens can
page through the same snapshot (like etcd until compaction).
"""
from __future__ import annotations

import base64
import bisect
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from tests.fakeapi.history import Change, History
from tests.fakeapi.objects import SERVICE_NAME_LABEL, timestamp, uid_for

Key = Tuple[str, str]  # (namespace, name)

# resource -> (List kind, apiVersion)
LIST_KINDS = {
    "services": ("ServiceList", "v1", "Service"),
    "endpoints": ("EndpointsList", "v1", "Endpoints"),
    "endpointslices": ("EndpointSliceList", "discovery.k8s.io/v1", "EndpointSlice"),
    "nodes": ("NodeList", "v1", "Node"),
}
CLUSTER_SCOPED = ("nodes",)  # stored under namespace "", listed only cluster-wide
KEEP_SNAPSHOTS = 64
_META_ORDER = ("name", "generateName", "namespace", "uid", "resourceVersion", "generation",
               "creationTimestamp", "deletionTimestamp", "labels", "annotations", "ownerReferences")


def _ordered_meta(meta: Dict[str, Any]) -> Dict[str, Any]:
    """metadata keys in the order the apiserver prints them."""
    out = {k: meta[k] for k in _META_ORDER if k in meta}
    out.update((k, v) for k, v in meta.items() if k not in out)
    return out


class ExpiredToken(Exception):
    """The continue token's snapshot was compacted (answer 410 Gone)."""


class BadToken(Exception):
    """The continue token cannot be decoded (answer 400 BadRequest)."""


@dataclass(frozen=True)
class Entry:
    key: Key
    labels: Dict[str, str]
    obj: Dict[str, Any]
    blob: bytes  # the object as it appears in a list (no kind/apiVersion)


@dataclass(frozen=True)
class Page:
    resource_version: int
    blobs: List[bytes]
    continue_token: str
    remaining: Optional[int]


class Store:
    """Thread-safe store of the three resource types, with a global resourceVersion."""

    def __init__(self, compaction_window: Optional[int] = None, history_window: int = 10000) -> None:
        self.lock = threading.RLock()
        self.rv = 1000
        self.history = History(self.lock, history_window)
        self.lose_events = 0  # the next N changes never reach a watch (a lost event, for resync tests)
        self.compaction_window = compaction_window
        self._token_epoch = 0
        self._objects: Dict[str, Dict[Key, Entry]] = {r: {} for r in LIST_KINDS}
        self._snapshots: "OrderedDict[Tuple[str, int], Tuple[List[Key], List[Entry]]]" = OrderedDict()
        self._next_ip = 10
        self._slice_index: Dict[Key, set] = {}  # (namespace, service) -> slice names

    # -- writes ---------------------------------------------------------------------------
    def put(self, resource: str, obj: Dict[str, Any]) -> Dict[str, Any]:
        """Create or replace an object; stamps uid, resourceVersion, creationTimestamp."""
        with self.lock:
            meta = obj.setdefault("metadata", {})
            if resource not in CLUSTER_SCOPED:
                meta.setdefault("namespace", "default")
            key = (meta.get("namespace", ""), meta["name"])
            old = self._objects[resource].get(key)
            self.rv += 1
            meta["uid"] = old.obj["metadata"]["uid"] if old else meta.get("uid") or uid_for(
                resource, key[0], key[1], str(self.rv))
            meta["creationTimestamp"] = (old.obj["metadata"]["creationTimestamp"] if old
                                         else meta.get("creationTimestamp") or timestamp())
            meta["resourceVersion"] = str(self.rv)
            if resource == "services":
                self._allocate_cluster_ip(obj)
            if resource == "endpointslices":
                meta.setdefault("generation", 1)
                self._index_slice(key, meta, old)
            obj["metadata"] = meta = _ordered_meta(meta)
            listed = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
            blob = json.dumps(listed, separators=(",", ":")).encode()
            self._objects[resource][key] = Entry(key, dict(meta.get("labels") or {}), obj, blob)
            self._changed(resource, "MODIFIED" if old else "ADDED", obj)
            return obj

    def advance_revision(self, by: int = 1) -> int:
        """A write to something this store does not serve (a node Lease renewal, an Event):
        etcd's global revision moves on, so every list's resourceVersion does too, while no
        Service or endpoint changes. Returns the new revision."""
        with self.lock:
            self.rv += by
            return self.rv

    def delete(self, resource: str, namespace: str, name: str) -> bool:
        with self.lock:
            entry = self._objects[resource].pop((namespace, name), None)
            if entry is None:
                return False
            if resource == "endpointslices":
                self._slice_index.get((namespace, entry.labels.get(SERVICE_NAME_LABEL, "")), set()).discard(name)
            self.rv += 1
            gone = dict(entry.obj, metadata=dict(entry.obj["metadata"], resourceVersion=str(self.rv)))
            self._changed(resource, "DELETED", gone)
            return True

    def _changed(self, resource: str, kind: str, obj: Dict[str, Any]) -> None:
        """Log the change for watches: the event line as kube-apiserver writes it."""
        if self.lose_events > 0:
            self.lose_events -= 1
            return
        meta = obj["metadata"]
        typed = obj if "kind" in obj else dict(obj, kind=LIST_KINDS[resource][2], apiVersion=LIST_KINDS[resource][1])
        line = json.dumps({"type": kind, "object": typed}, separators=(",", ":")).encode() + b"\n"
        self.history.record(Change(self.rv, resource, kind, meta.get("namespace", ""), dict(meta.get("labels") or {}),
                                   line))

    def _index_slice(self, key: Key, meta: Dict[str, Any], old: Optional[Entry]) -> None:
        if old is not None:
            self._slice_index.get((key[0], old.labels.get(SERVICE_NAME_LABEL, "")), set()).discard(key[1])
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL, "")
        self._slice_index.setdefault((key[0], service), set()).add(key[1])

    def slice_names(self, namespace: str, service: str) -> List[str]:
        """Names of the EndpointSlices labelled for a Service."""
        with self.lock:
            return sorted(self._slice_index.get((namespace, service), ()))

    def _allocate_cluster_ip(self, obj: Dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("clusterIP"):
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            return
        n = self._next_ip
        self._next_ip += 1
        ip = "10.96.%d.%d" % (n // 250, n % 250 + 1)
        spec["clusterIP"], spec["clusterIPs"] = ip, [ip]

    def expire_continue_tokens(self) -> None:
        """Every continue token issued so far now answers 410 Gone (like a compaction)."""
        with self.lock:
            self._token_epoch += 1
            self._snapshots.clear()

    # -- reads ----------------------------------------------------------------------------
    def get(self, resource: str, namespace: str, name: str) -> Optional[Dict[str, Any]]:
        with self.lock:
            entry = self._objects[resource].get((namespace, name))
            return entry.obj if entry else None

    def items(self, resource: str) -> List[Dict[str, Any]]:
        with self.lock:
            return [e.obj for _, e in sorted(self._objects[resource].items())]

    def namespaces(self) -> List[str]:
        with self.lock:
            found = {k[0] for objs in self._objects.values() for k in objs if k[0]}
        return sorted(found | {"default", "kube-system", "kube-public", "kube-node-lease"})

    def _snapshot(self, resource: str, rv: int) -> Tuple[List[Key], List[Entry]]:
        with self.lock:
            snap = self._snapshots.get((resource, rv))
            if snap is None:
                if rv != self.rv:
                    raise ExpiredToken()
                entries = sorted(self._objects[resource].values(), key=lambda e: e.key)
                snap = ([e.key for e in entries], entries)
                self._snapshots[(resource, rv)] = snap
                while len(self._snapshots) > KEEP_SNAPSHOTS:
                    self._snapshots.popitem(last=False)
            return snap

    def list(self, resource: str, namespace: Optional[str], match: Callable[[Dict[str, str]], bool],
             limit: int = 0, token: str = "") -> Page:
        """One page of a list; raises ExpiredToken/BadToken for bad continue tokens."""
        with self.lock:
            rv, start = self._decode(token) if token else (self.rv, None)
            keys, entries = self._snapshot(resource, rv)
        i = 0
        if namespace is not None:
            i = bisect.bisect_left(keys, (namespace, ""))
        if start is not None:
            i = max(i, bisect.bisect_right(keys, start))
        blobs: List[bytes] = []
        last: Optional[Key] = None
        while i < len(entries) and (namespace is None or entries[i].key[0] == namespace):
            if limit and len(blobs) >= limit:
                break
            if match(entries[i].labels):
                blobs.append(entries[i].blob)
                last = entries[i].key
            i += 1
        more = i < len(entries) and (namespace is None or entries[i].key[0] == namespace)
        if not more or last is None:
            return Page(rv, blobs, "", None)
        remaining = sum(1 for e in entries[i:] if namespace is None or e.key[0] == namespace)
        return Page(rv, blobs, self._encode(rv, last), remaining)

    def _encode(self, rv: int, start: Key) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": "%s/%s" % start,
                          "e": self._token_epoch}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _decode(self, token: str) -> Tuple[int, Key]:
        try:
            raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            rv, (ns, name), epoch = int(raw["rv"]), raw["start"].split("/", 1), raw["e"]
        except Exception as e:
            raise BadToken(str(e)) from e
        with self.lock:
            if epoch != self._token_epoch:
                raise ExpiredToken()
            if self.compaction_window is not None and self.rv - rv > self.compaction_window:
                raise ExpiredToken()
        return rv, (ns, name)
