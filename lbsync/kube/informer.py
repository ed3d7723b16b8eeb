"""WatchSource: the cluster kept current by watches, handed over as a poll's Snapshot.

The `--watch` alternative to ApiSource. One Reflector thread per watched resource and
namespace keeps a Store; `fetch()` reads it (no request at all) and `subscribe()` lets the
daemon be woken by every applied change. Nodes are watched (cluster-scoped, one stream)
only while some Service is served through nodePorts, as a poll lists them only then; their
status heartbeats are kept by the Store without waking anything.

Never hands over a state it knows to be incomplete: `fetch()` waits for every first list,
and fails (so the live config stays as it is) while a mirror is known to be stale because
its relist failed. A mirror between a routine restart (timeout, 410, a cut stream) and its
relist still holds a consistent state of a moment ago, and is served.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence

from lbsync import nodes
from lbsync.exceptions import SourceError
from lbsync.kube.client import NODES, SERVICES, SLICES, ApiSource, Resource
from lbsync.kube.credentials import Credentials
from lbsync.kube.reflector import Record, Reflector, _no_record
from lbsync.kube.store import Store
from lbsync.snapshot import Snapshot

FIRST_LIST_GRACE = 3  # fetch() waits this many API timeouts for the first lists


class WatchSource:
    """Same fetch()/close() as ApiSource; threads start at the first fetch()."""

    def __init__(self, credentials: Credentials, *, namespaces: Sequence[str] = (), selector: str = "",
                 timeout: float = 10.0, page_size: int = 500, watch_timeout: float = 300.0,
                 resync: float = 300.0, resources: Sequence[Resource] = (SERVICES, SLICES),
                 backend_mode: str = "pod") -> None:
        self.credentials = credentials
        self.namespaces = tuple(namespaces)
        self.selector = selector
        self.timeout = timeout
        self.backend_mode = backend_mode
        self.store = Store()
        self._stop = threading.Event()
        self._started = False
        self._lock = threading.Lock()
        self._page_size = page_size
        self._options = dict(watch_timeout=watch_timeout, resync=resync)
        self._record: Record = _no_record
        self.reflectors = [self._reflector(resource, namespace, self._stop)
                           for resource in resources for namespace in (self.namespaces or (None,))]
        self.node_reflector: Optional[Reflector] = None  # while some Service is in nodeport mode

    def _reflector(self, resource: Resource, namespace: Optional[str], stop: threading.Event) -> Reflector:
        # one ApiSource (one HTTP session) per reflector: a stream holds its connection for minutes
        api = ApiSource(self.credentials, namespaces=self.namespaces, timeout=self.timeout, page_size=self._page_size)
        return Reflector(api, self.store, resource, namespace, selector=self.selector if resource is SERVICES else "",
                         stop=stop, record=self._record, **self._options)  # type: ignore[arg-type]

    @property
    def _watched(self) -> List[Reflector]:
        return self.reflectors + ([self.node_reflector] if self.node_reflector else [])

    def __repr__(self) -> str:
        return "WatchSource(%r, namespaces=%r, selector=%r)" % (self.credentials, self.namespaces, self.selector)

    def subscribe(self, on_change: Callable[[], None], record: Record = _no_record) -> None:
        """`on_change()` after every applied change; `record(name, amount, **labels)` counts."""
        self.store.on_change = on_change
        self._record = record
        for r in self._watched:
            r.record = record

    def fetch(self, *, unchanged_since: str = "") -> Snapshot:
        self._start()
        self._ready(self.reflectors)
        r = self.node_reflector
        nodes_whole = r is not None and r.listed.is_set() and r.error is None  # before reading the store
        if unchanged_since and unchanged_since == self.store.version and (r is None or nodes_whole):
            return Snapshot(version=unchanged_since)
        snapshot = self.store.snapshot()
        if not nodes.wants_nodes(snapshot.services, self.backend_mode):
            self._unwatch_nodes()  # a Node watch in trouble does not fail a pass that needs no Nodes
            return replace(snapshot, nodes=()) if snapshot.nodes else snapshot
        if r is None:
            r = self.node_reflector = self._reflector(NODES, None, threading.Event())
            self._run(r)
        self._ready([r])
        return snapshot if nodes_whole else self.store.snapshot()  # with the Nodes' (re)list

    def _ready(self, reflectors: List[Reflector]) -> None:
        """Every first list made, no mirror known to be stale; else raises why."""
        self._wait_for_first_lists(reflectors)
        for r in reflectors:
            if r.error is not None:
                raise r.error.with_traceback(None)  # raised at every pass: tracebacks must not pile up

    def _unwatch_nodes(self) -> None:
        """No Service is in nodeport mode any more: the Node watch ends (a poll would not list them)."""
        r, self.node_reflector = self.node_reflector, None
        if r is not None:
            r.stop.set()
            r.api.close()

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        for r in self.reflectors:
            self._run(r)

    @staticmethod
    def _run(r: Reflector) -> None:
        threading.Thread(target=r.run, name="watch:" + r.key, daemon=True).start()

    def _wait_for_first_lists(self, reflectors: List[Reflector]) -> None:
        deadline = time.monotonic() + FIRST_LIST_GRACE * self.timeout
        for r in reflectors:
            while not r.listed.wait(0.05):
                if r.error is not None:
                    raise r.error.with_traceback(None)
                if time.monotonic() >= deadline:
                    raise SourceError("watch: the first list of %s is not complete after %gs" % (
                        r.key, FIRST_LIST_GRACE * self.timeout))

    # --- health ----------------------------------------------------------------------------
    def ages(self) -> Dict[str, float]:
        """Seconds since each watched resource last heard from the API server (event,
        bookmark, list), the oldest per resource."""
        now, out = time.monotonic(), {}  # type: float, Dict[str, float]
        for r in self._watched:
            out[r.name] = max(out.get(r.name, 0.0), now - r.last_activity)
        return out

    def health(self) -> str:
        """'' when every watch is alive; else why not. Silent far past its longest stream
        (3x: several reconnections failed in a row), a watch is stuck, not just slow."""
        now = time.monotonic()
        for r in self._watched:
            limit = 3 * r.longest_stream
            if self._started and now - r.last_activity > limit:
                return "watch of %s silent for %.0fs (limit %.0fs)%s" % (
                    r.key, now - r.last_activity, limit, ": " + str(r.error) if r.error else "")
        return ""

    def close(self) -> None:
        self._stop.set()
        self._unwatch_nodes()
        for r in self.reflectors:
            r.api.close()
