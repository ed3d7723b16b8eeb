"""The checked file write after a Runtime API update, off the sync loop (with --watch).

A pass that moved only Pods has already told HAProxy over the Runtime API; what is left is
the file: stage it, `haproxy -c` it (~0.5-1 s at 1,000 Services), rename it into place.
Done inside the pass, a change arriving meanwhile waits for that check before its own
runtime update: with --watch, that wait was most of an endpoint change's latency.

WriteBehind does those writes in one thread of its own. Writes land in order and the newest
pending text wins (a text queued behind another replaces it: the file only ever needs the
last). Until its write lands, `ahead()` is the plan HAProxy already runs: the next pass
compares against that, not against the older file. A write that fails is kept as `error`
for the next pass to raise (a failed pass: backoff, metrics, and a pass that starts again
from the file), and `on_failure` wakes the loop for it.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Optional


class WriteBehind:
    def __init__(self, write: Callable[[Any], None], on_failure: Callable[[], None] = lambda: None) -> None:
        self._write = write  # write(plan): stage, check, commit and settle; raises on failure
        self._on_failure = on_failure
        self._cond = threading.Condition()
        self._queued: Any = None  # the next plan to write
        self._ahead: Any = None  # the newest plan HAProxy runs whose file is not written yet
        self._busy = False
        self.error: Optional[Exception] = None

    def ahead(self) -> Any:
        with self._cond:
            return self._ahead

    def submit(self, plan: Any) -> None:
        with self._cond:
            self._queued = self._ahead = plan
            if not self._busy:
                self._busy = True
                threading.Thread(target=self._run, name="write-behind", daemon=True).start()

    def take_error(self) -> Optional[Exception]:
        with self._cond:
            error, self.error = self.error, None
            return error

    def drain(self, timeout: Optional[float] = None) -> bool:
        """Wait until no write is pending (before a write of the caller's own); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                plan, self._queued = self._queued, None
                if plan is None:
                    self._busy = False
                    self._cond.notify_all()
                    return
            try:
                self._write(plan)
            except Exception as e:  # noqa: BLE001 - handed to the next pass, which raises it
                self._failed(e)
                continue
            with self._cond:
                if self._ahead is plan:
                    self._ahead = None

    def _failed(self, error: Exception) -> None:
        """The file is behind HAProxy: drop what is queued; the next pass starts from the file."""
        with self._cond:
            self.error, self._queued, self._ahead = error, None, None
        self._on_failure()
