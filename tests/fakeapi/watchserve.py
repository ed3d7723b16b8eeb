"""The watch verb of the fake API, spoken like kube-apiserver (`?watch=1`).

A 200 answer with a chunked body of newline-delimited JSON events: ADDED / MODIFIED /
DELETED with the whole object; BOOKMARK (only with allowWatchBookmarks=true) carrying just
a resourceVersion, every `bookmark_interval` seconds and shortly before the stream's end;
an ERROR event with a 410 Status when the asked resourceVersion is older than the kept
history (then the stream ends). `timeoutSeconds` ends a stream normally (no error event).
A watch with no resourceVersion (or "0") first gets an ADDED event per current object.

Faults the tests need, steered through FakeKubeApi: end every open watch now, drop every
open watch in the middle of its next event line, make open watches go silent (a dead
connection: no bytes, no end).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

from tests.fakeapi import responses
from tests.fakeapi.history import TooOld
from tests.fakeapi.store import LIST_KINDS

if TYPE_CHECKING:
    from tests.fakeapi.handler import Handler
    from tests.fakeapi.store import Store
    from tests.fakeapi.server import FakeKubeApi

DEFAULT_TIMEOUT = 1800.0  # kube-apiserver's --min-request-timeout; it randomises up to 2x
SILENT_LIMIT = 600.0  # a silenced stream's thread gives up after this long


@dataclass(frozen=True)
class WatchRequest:
    """What the router found: a watch to stream instead of a one-shot answer."""

    resource: str
    namespace: Optional[str]
    query: Dict[str, str]
    match: Callable[[Dict[str, str]], bool]


@dataclass
class OpenWatch:
    """One streaming watch, as the fault knobs see it."""

    request: WatchRequest
    end: bool = False  # end normally at the next occasion
    drop_mid_line: bool = False  # cut the next event line in half, then close the connection
    silent: bool = False  # the connection is dead: write nothing more, ever
    started: float = field(default_factory=time.monotonic)


def status_event(code: int, message: str, reason: str) -> bytes:
    doc = {"type": "ERROR", "object": responses.status(code, message, reason)}
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def bookmark(resource: str, rv: int) -> bytes:
    kind, api_version = LIST_KINDS[resource][2], LIST_KINDS[resource][1]
    doc = {"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version,
                                          "metadata": {"resourceVersion": str(rv)}}}
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


class Streamer:
    """Writes one watch's chunked answer on the handler's connection."""

    def __init__(self, handler: "Handler", fake: "FakeKubeApi", request: WatchRequest) -> None:
        self.handler = handler
        self.fake = fake
        self.request = request
        self.watch = OpenWatch(request)
        q = request.query
        self.bookmarks = q.get("allowWatchBookmarks") in ("1", "true")
        self.timeout = float(q.get("timeoutSeconds") or DEFAULT_TIMEOUT)

    def serve(self) -> None:
        """Stream until the timeout, a fault, or the client going away."""
        try:
            rv, first = self._start()
        except ValueError:
            return self.handler._send(self.fake, (400, responses.encode(responses.status(
                400, "invalid resourceVersion %r" % self.request.query.get("resourceVersion"))),
                "application/json", {}), None)
        self._headers()
        self.fake._open_watch(self.watch)
        try:
            if self._write_lines(first):
                self._follow(rv)
            self._end()
        except OSError:
            self.handler.close_connection = True  # the client went away, or a fault cut the stream
        finally:
            self.fake._close_watch(self.watch)

    def _start(self) -> "tuple[int, List[bytes]]":
        """The RV to follow from, and the events to send first (ADDED for RV ''/'0')."""
        asked = self.request.query.get("resourceVersion", "")
        store = self.fake.store
        if asked in ("", "0"):
            with store.lock:
                objs = [o for o in store.items(self.request.resource) if self._wanted_obj(o)]
                rv = store.rv
            return rv, [json.dumps({"type": "ADDED", "object": self._typed(o)},
                                   separators=(",", ":")).encode() + b"\n" for o in objs]
        return int(asked), []

    def _follow(self, rv: int) -> None:
        store, history = self.fake.store, self.fake.store.history
        deadline = self.watch.started + self.timeout
        next_bookmark = time.monotonic() + self.fake.bookmark_interval
        while not self.watch.end and time.monotonic() < deadline:
            wait = max(0.0, min(deadline, next_bookmark) - time.monotonic())
            try:
                changes, rv_now = history.wait(self.request.resource, rv, lambda: store.rv, min(wait, 1.0))
            except TooOld:
                self._write_lines([status_event(410, "too old resource version: %d (%d)" % (
                    rv, history.oldest + 1), "Expired")])
                return
            if self.watch.silent:
                return self._play_dead()
            lines = [c.line for c in changes if self._wanted(c.namespace, c.labels)]
            if not self._write_lines(lines):
                return
            rv = rv_now
            if self.bookmarks and (time.monotonic() >= next_bookmark or deadline - time.monotonic() < 1.0):
                self._write_lines([bookmark(self.request.resource, rv)])
                next_bookmark = time.monotonic() + self.fake.bookmark_interval

    def _play_dead(self) -> None:
        """A dead connection: nothing more is written, and the stream never ends by itself."""
        until = time.monotonic() + SILENT_LIMIT
        while time.monotonic() < until and self.fake.running:
            time.sleep(0.2)
        self.watch.end = True
        raise OSError("silenced watch closed")

    def _write_lines(self, lines: List[bytes]) -> bool:
        """Each event is one chunk. False when the stream was cut (fault) or silenced."""
        for line in lines:
            if self.watch.silent:
                self._play_dead()
            if self.watch.drop_mid_line:
                self._chunk(line[:max(1, len(line) // 2)])
                raise OSError("dropped mid-line (fault)")  # no final chunk: the connection just ends
            self._chunk(line)
        return True

    def _headers(self) -> None:
        h = self.handler
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Cache-Control", "no-cache, private")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        out = b"%x\r\n%s\r\n" % (len(data), data)
        self.handler.wfile.write(out)
        self.handler.wfile.flush()
        self.fake._count_bytes(len(out), stream=True)

    def _end(self) -> None:
        if not self.watch.silent:
            self.handler.wfile.write(b"0\r\n\r\n")
            self.handler.wfile.flush()

    def _wanted(self, namespace: str, labels: Dict[str, str]) -> bool:
        ns = self.request.namespace
        return (ns is None or ns == namespace) and self.request.match(labels)

    def _wanted_obj(self, obj: dict) -> bool:
        meta = obj.get("metadata") or {}
        return self._wanted(meta.get("namespace", ""), meta.get("labels") or {})

    def _typed(self, obj: dict) -> dict:
        kind, api_version = LIST_KINDS[self.request.resource][2], LIST_KINDS[self.request.resource][1]
        return obj if "kind" in obj else dict(obj, kind=kind, apiVersion=api_version)


class WatchRegistry:
    """The open watches of one FakeKubeApi, for the fault knobs (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: List[OpenWatch] = []

    def add(self, watch: OpenWatch) -> None:
        with self._lock:
            self._open.append(watch)

    def remove(self, watch: OpenWatch) -> None:
        with self._lock:
            if watch in self._open:
                self._open.remove(watch)

    def mark(self, **flags: bool) -> int:
        """Set flags on every open watch; returns how many there were."""
        with self._lock:
            for w in self._open:
                for key, value in flags.items():
                    setattr(w, key, value)
            return len(self._open)

    def count(self, resource: Optional[str] = None) -> int:
        with self._lock:
            return sum(1 for w in self._open if not w.silent and
                       (resource is None or w.request.resource == resource))


class WatchControlMixin:
    """The watch fault knobs of FakeKubeApi (which provides store and _watches)."""

    store: "Store"
    _watches: WatchRegistry

    def _open_watch(self, watch: OpenWatch) -> None:
        self._watches.add(watch)

    def _close_watch(self, watch: OpenWatch) -> None:
        self._watches.remove(watch)

    def open_watches(self, resource: Optional[str] = None) -> int:
        """Watches streaming now (silenced ones excluded)."""
        return self._watches.count(resource)

    def end_watches(self) -> int:
        """End every open watch normally (as timeoutSeconds would); returns how many."""
        n = self._watches.mark(end=True)
        self.store.history.poke()
        return n

    def drop_watches_mid_line(self) -> int:
        """Every open watch sends half of its next event line, then the connection drops."""
        return self._watches.mark(drop_mid_line=True)

    def silence_watches(self) -> int:
        """Every open watch goes dead: no more bytes, no end (a connection lost without a FIN)."""
        n = self._watches.mark(silent=True)
        self.store.history.poke()
        return n

    def lose_next_events(self, n: int = 1) -> None:
        """The next n changes are stored and listed but never sent to a watch."""
        with self.store.lock:
            self.store.lose_events += n

    def compact(self) -> None:
        """Forget the change history up to now: a watch resuming from an older RV gets 410."""
        with self.store.lock:
            self.store.history.compact(self.store.rv)
