"""The objects a watch keeps: one mirror per watched (resource, namespace), decoded once.

Reflectors write (a whole list, or one event); the sync loop reads a Snapshot of all of it,
the same kind of Snapshot a poll hands over. Its version changes with every applied change,
so an unchanged store costs a pass nothing. A Node's resourceVersion moves with every status
heartbeat (every 10 s to 1 min per node): a Node event that changes nothing the node pool
reads (lbsync.nodes.digest) is kept without moving the version, so it wakes nothing.
Thread-safe; knows nothing of HTTP.
"""
from __future__ import annotations

import os
import threading
from collections import defaultdict
from typing import Any, Callable, Dict, List, Tuple

from lbsync import nodes
from lbsync.kube.client import ENDPOINTS, NODES, SERVICE_NAME_LABEL, SERVICES, SLICES, Resource
from lbsync.snapshot import Snapshot

Key = Tuple[str, str]  # (namespace, name)


def _key(obj: Dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _rv(obj: Dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _signature(resource: Resource, objects: Dict[Key, Dict[str, Any]]) -> object:
    """Equal signatures, equal mirrors for a pass: resourceVersions, or for Nodes what the
    node pool reads (their resourceVersions move with every heartbeat)."""
    if resource is NODES:
        return nodes.digest(objects.values())
    return {k: _rv(o) for k, o in objects.items()}


def _typed(resource: Resource, obj: Dict[str, Any]) -> Dict[str, Any]:
    obj.setdefault("kind", resource[2])
    obj.setdefault("apiVersion", resource[3])
    return obj


class Store:
    """`on_change()` is called (outside the lock) after every change that moved the version."""

    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self.on_change = on_change
        self._lock = threading.Lock()
        self._mirrors: Dict[str, Tuple[Resource, Dict[Key, Dict[str, Any]]]] = {}
        self._generation = 0
        self._id = os.urandom(4).hex()  # a new store (after a settings reload) never matches an old version

    @property
    def version(self) -> str:
        with self._lock:
            return "watch:%s:%d" % (self._id, self._generation)

    def replace(self, mirror: str, resource: Resource, items: List[Dict[str, Any]]) -> bool:
        """A mirror's whole content, from a list; True when it differed from what was kept."""
        new = {_key(o): _typed(resource, o) for o in items}
        with self._lock:
            old_resource, old = self._mirrors.get(mirror, (resource, {}))
            differed = old_resource is not resource or _signature(resource, old) != _signature(resource, new)
            self._mirrors[mirror] = (resource, new)
            if differed:
                self._generation += 1
        if differed:
            self.on_change()
        return differed

    def apply(self, mirror: str, resource: Resource, kind: str, obj: Dict[str, Any]) -> None:
        """One ADDED / MODIFIED / DELETED event; a Node heartbeat moves nothing."""
        key = _key(obj)
        with self._lock:
            objects = self._mirrors.setdefault(mirror, (resource, {}))[1]
            if kind == "DELETED":
                if objects.pop(key, None) is None:
                    return
            else:
                old, objects[key] = objects.get(key), _typed(resource, obj)
                if resource is NODES and old is not None and nodes.digest([old]) == nodes.digest([obj]):
                    return  # a heartbeat: kept (a relist compares it) but nothing a pass reads moved
            self._generation += 1
        self.on_change()

    def snapshot(self) -> Snapshot:
        """Everything kept, as a poll would have listed it (sorted; endpoints only of listed Services)."""
        found: Dict[str, List[Tuple[Key, Dict[str, Any]]]] = defaultdict(list)  # by resource plural
        with self._lock:
            version = "watch:%s:%d" % (self._id, self._generation)
            for resource, objects in self._mirrors.values():
                found[resource[1]].extend(objects.items())
        for pairs in found.values():
            pairs.sort(key=_first)  # keys are unique: (namespace, name) within a resource
        wanted = {k for k, _ in found[SERVICES[1]]}
        return Snapshot(services=_objects(found[SERVICES[1]]),
                        endpoint_slices=tuple([o for k, o in found[SLICES[1]] if _slice_owner(k, o) in wanted]),
                        endpoints=tuple([o for k, o in found[ENDPOINTS[1]] if k in wanted]),
                        nodes=_objects(found[NODES[1]]), version=version, held=True)


def _first(pair: Tuple[Key, Any]) -> Key:
    return pair[0]


def _objects(pairs: List[Tuple[Key, Dict[str, Any]]]) -> Tuple[Dict[str, Any], ...]:
    return tuple([o for _, o in pairs])


def _slice_owner(key: Key, obj: Dict[str, Any]) -> Key:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return key[0], str(labels.get(SERVICE_NAME_LABEL, ""))
