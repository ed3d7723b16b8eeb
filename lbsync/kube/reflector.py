"""Keeps one resource mirrored from the API server: list, then watch, resume, relist.

The loop of client-go's reflector, in lbsync's words:
- list (paged, like a poll), then watch from the list's resourceVersion with bookmarks;
- each watch asks `timeoutSeconds` drawn between 1x and 2x `watch_timeout` (so that many
  replicas do not all reconnect at once); a stream that ends normally is resumed from the
  last resourceVersion seen (an event's or a bookmark's), without a list;
- any trouble (410 Gone, a silent or cut stream, an error) falls back to a full relist,
  after a backoff that doubles up to BACKOFF_MAX while the trouble lasts;
- every `resync` seconds the watch is ended and the resource listed again: a relist that
  finds a difference means an event was lost, and is counted.
A half-written event is never applied (lbsync.kube.stream reads whole lines only).
The objects themselves live in the Store the reflector writes to.
"""
from __future__ import annotations

import random
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

from lbsync.exceptions import ApiError, ApiForbidden, ApiGone, ApiNotFound, SourceError
from lbsync.kube import errors, stream
from lbsync.kube.client import ENDPOINTS, NODE_UNUSED, NODES, SLICES, ApiSource, Resource
from lbsync.kube.lists import path as list_path
from lbsync.kube.store import Store
from lbsync.logs import get as get_logger

log = get_logger("lbsync.kube.watch")

BACKOFF_FIRST = 0.2  # seconds before the first relist after trouble (a 410 is routine)
BACKOFF_MAX = 30.0
Record = Callable[..., None]  # metrics.inc(name, amount=1, **labels)
# endpoints keep their `nodeName` whatever the backend mode: a Service annotated into nodeport
# mode must not wait for a relist to learn where its endpoints run
KEEP_NODE_NAME = errors.keeping(("nodeName",))


def _no_record(*_: Any, **__: Any) -> None:
    pass


class Reflector:
    """One (resource, namespace) pair; `run()` is its thread's body."""

    def __init__(self, api: ApiSource, store: Store, resource: Resource, namespace: Optional[str], *,
                 selector: str = "", watch_timeout: float = 300.0, resync: float = 300.0,
                 stop: Optional[threading.Event] = None, record: Record = _no_record,
                 rand: Callable[[], float] = random.random) -> None:
        self.api, self.store = api, store
        self.resource, self.namespace, self.selector = resource, namespace, selector
        self.watch_timeout, self.resync = watch_timeout, resync
        self.stop = stop or threading.Event()
        self.record = record
        self.rand = rand
        self.key = "%s/%s" % (namespace or "*", resource[1])  # the store's name for this mirror
        self.rv = ""
        self.listed = threading.Event()  # the first list is in the store
        self.error: Optional[SourceError] = None  # the store is known to be stale: why
        self.last_activity = time.monotonic()
        self.failures = 0
        self._relisted_at = 0.0
        self._accounted = (0, 0)

    @property
    def name(self) -> str:
        return self.resource[1]

    @property
    def unused(self) -> Tuple[str, ...]:
        """The keys dropped while decoding, as a poll drops them (a Node keeps its status)."""
        return NODE_UNUSED if self.resource is NODES else KEEP_NODE_NAME

    @property
    def longest_stream(self) -> float:
        """The longest a healthy stream stays open, and then silent: 2x timeout plus grace."""
        return 2 * self.watch_timeout + self._grace(2 * self.watch_timeout)

    # --- the loop --------------------------------------------------------------------------
    def run(self) -> None:
        need_list, reason = True, "initial"
        while not self.stop.is_set():
            try:
                if need_list:
                    self._relist(reason)
                need_list = False
                self._watch(reason)
                need_list = self._resync_due()
                reason = "resync" if need_list else "resume"
            except Exception as e:  # noqa: BLE001 - nothing may end the watch for good: relist
                need_list, reason = True, _reason(e)
                self._trouble(e, reason)
                self.stop.wait(self._backoff())

    def _relist(self, reason: str) -> None:
        self.record("lbsync_watch_relists_total", resource=self.name, reason=reason)
        try:
            items, rv = self.api.list_objects(self.resource, self.namespace, self.selector, self.unused)
        except (ApiNotFound, ApiForbidden) as e:
            if self.resource is not SLICES:
                raise
            self._fall_back(e)
            items, rv = self.api.list_objects(self.resource, self.namespace, self.selector, self.unused)
        finally:
            self._account()
        differed = self.store.replace(self.key, self.resource, items)
        if differed and reason == "resync":
            self.record("lbsync_watch_resync_differences_total", resource=self.name)
            log.warning("watch.resync_found_difference", resource=self.name, namespace=self.namespace,
                        meaning="a watch event was lost; the relist repaired it")
        was_broken = self.error is not None
        self.rv, self.error, self._relisted_at = rv, None, time.monotonic()
        self._alive()
        self.listed.set()
        if was_broken and not differed:
            self.store.on_change()  # the sync loop learns that the state is whole again

    def _fall_back(self, e: ApiError) -> None:
        log.warning("api.endpointslices_unavailable", status=e.status, error=str(e),
                    action="watching v1 Endpoints instead")
        self.store.replace(self.key, self.resource, [])
        self.resource = ENDPOINTS

    def _watch(self, reason: str) -> None:
        """One watch request, applied event by event until it ends normally."""
        seconds = self._timeout_seconds()
        params = {"watch": "1", "resourceVersion": self.rv, "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(seconds)}
        if self.selector:
            params["labelSelector"] = self.selector
        self.record("lbsync_watch_starts_total", resource=self.name, reason=reason)
        path = list_path(self.resource, self.namespace)
        events = stream.events(self.api.transport, path, params, read_timeout=seconds + self._grace(seconds),
                               unused=self.unused)
        for kind, obj in events:
            self._apply(kind, obj)
            if self.stop.is_set():
                break
        self._account()
        self.failures = 0  # a stream that ran to its end: the trouble, if any, is over

    def _apply(self, kind: str, obj: Dict[str, Any]) -> None:
        self._alive()
        self.failures = 0
        self.record("lbsync_watch_events_total", resource=self.name, type=kind)
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind != "BOOKMARK":
            self.store.apply(self.key, self.resource, kind, obj)
        if rv:
            self.rv = rv
        self._account()

    # --- helpers ---------------------------------------------------------------------------
    def _trouble(self, e: Exception, reason: str) -> None:
        if self.stop.is_set():
            return  # closing: the stream was cut on purpose
        self.failures += 1
        self._account()
        routine = isinstance(e, (ApiGone, stream.StreamSilent, stream.StreamCut))
        if not isinstance(e, (ApiError, SourceError)):
            log.exception("watch.crashed", resource=self.name, error=repr(e))  # a bug: please report it
        if not routine or not self.listed.is_set():
            was_broken = self.error is not None
            self.error = e if isinstance(e, SourceError) else SourceError(
                "watch of %s: internal error %r; relisting" % (self.key, e))
            if not was_broken:
                self.store.on_change()  # a pass now fails and says why; the live config stays
        (log.info if routine and self.failures == 1 else log.warning)(
            "watch.restarting", resource=self.name, namespace=self.namespace, reason=reason,
            error=str(e), failures=self.failures, action="relisting")

    def _backoff(self) -> float:
        base = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self.failures - 1))
        return base * (0.75 + 0.5 * self.rand())

    def _timeout_seconds(self) -> int:
        """1x to 2x watch_timeout, as client-go draws it; never past the next resync."""
        seconds = self.watch_timeout * (1.0 + self.rand())
        if self.resync > 0:
            seconds = min(seconds, self._relisted_at + self.resync - time.monotonic())
        return max(1, int(seconds))

    def _resync_due(self) -> bool:
        return self.resync > 0 and time.monotonic() >= self._relisted_at + self.resync - 0.5

    @staticmethod
    def _grace(seconds: float) -> float:
        return max(2.0, 0.1 * seconds)

    def _alive(self) -> None:
        self.last_activity = time.monotonic()

    def _account(self) -> None:
        """Report the requests and bytes spent since the last report."""
        t = self.api.transport
        requests, bytes_ = t.requests - self._accounted[0], t.bytes - self._accounted[1]
        self._accounted = (t.requests, t.bytes)
        if requests:
            self.record("lbsync_api_requests_total", requests)
        if bytes_:
            self.record("lbsync_api_bytes_total", bytes_)


def _reason(e: Exception) -> str:
    """The label a (re)start is counted under."""
    if isinstance(e, ApiGone):
        return "410"
    if isinstance(e, stream.StreamSilent):
        return "silent"
    if isinstance(e, stream.StreamCut):
        return "cut"
    return "error"
