"""The fake API's change log: what a watch replays, and when history is gone (410).

kube-apiserver keeps a window of recent changes (its watch cache, backed by etcd until
compaction): a watch from a resourceVersion inside the window gets every change after it;
one from before the window gets an ERROR event with a 410 Status ("too old resource
version") and must list again. `History` is that window, bounded by `window` events or
emptied on purpose by `compact()`.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, Tuple


class TooOld(Exception):
    """The asked resourceVersion is older than the oldest change still kept."""


@dataclass(frozen=True)
class Change:
    rv: int
    resource: str
    kind: str  # ADDED | MODIFIED | DELETED
    namespace: str
    labels: Dict[str, str]
    line: bytes  # the whole watch event, JSON, newline-terminated


class History:
    """Thread-safe; `wait()` blocks until a change after `rv` or the timeout."""

    def __init__(self, lock: "threading.RLock", window: int = 10000) -> None:
        self.cond = threading.Condition(lock)
        self.window = window
        self._changes: Deque[Change] = deque()
        self.oldest = 0  # changes at or before this RV are gone (0: nothing was ever dropped)

    def record(self, change: Change) -> None:
        """Called with the store lock held, after the store's RV moved to change.rv."""
        self._changes.append(change)
        while len(self._changes) > self.window:
            self.oldest = self._changes.popleft().rv
        self.cond.notify_all()

    def compact(self, upto: int) -> None:
        """Forget every change up to `upto` (like an etcd compaction at the current RV)."""
        with self.cond:
            while self._changes and self._changes[0].rv <= upto:
                self._changes.popleft()
            self.oldest = max(self.oldest, upto)
            self.cond.notify_all()

    def poke(self) -> None:
        """Wake every waiting watch (a control knob changed)."""
        with self.cond:
            self.cond.notify_all()

    def after(self, resource: str, rv: int) -> List[Change]:
        """Changes of `resource` newer than `rv`; TooOld when some of them are forgotten."""
        if rv < self.oldest:
            raise TooOld()
        return [c for c in self._changes if c.rv > rv and c.resource == resource]

    def wait(self, resource: str, rv: int, current: Callable[[], int], timeout: float) -> Tuple[List[Change], int]:
        """(changes after rv, the store RV they bring the watcher to); waits up to `timeout`."""
        with self.cond:
            if current() <= rv:
                self.cond.wait(timeout)
            return self.after(resource, rv), current()
