"""Kubernetes Events for the Problems of each pass: one Event per problem, a series while it lasts.

The person who wrote a Service rarely reads the load balancer's log; `kubectl describe
service` shows them these. Reads only what a pass produced (its Problems, the uids of the
Services they name) and writes at the edge through lbsync.kube.events; never reaches back
into the model. Which problems: those the Service's owner can act on (Problem.for_owner).
- One Event per (Service uid, code, annotation, reason). Seen again, the Event's series
  moves on (count: the passes that saw it), written when the count reaches 2, 4, 8, ...
  and at least every `refresh` seconds, so a long problem costs a write per 5 minutes.
- A problem that is gone is not written again; if it comes back, a new Event says so.
- At most `per_pass` writes a pass and `rate` a second on average: new Events first,
  Warnings before Normal ones; the rest wait for later passes.
- A 403 logs one warning and leaves that namespace alone for FORBIDDEN_PAUSE seconds.
"""
from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass, replace
from typing import Callable, Dict, Iterable, Mapping, Optional, Tuple

from lbsync.exceptions import ApiError, ApiForbidden, ApiNotFound, LbsyncError
from lbsync.kube.events import EventSink, Note
from lbsync.logs import get as get_logger
from lbsync.settings import Settings
from lbsync.topology import Problem

log = get_logger("lbsync.events")

PER_PASS = 25  # client-go's spam filter lets an object burst 25 Events too
RATE = 1.0  # writes per second on average, across passes
REFRESH = 300.0  # seconds: LAST SEEN of a lasting problem is never older (Events live 1 h by default)
FORBIDDEN_PAUSE = 600.0  # seconds before a namespace that answered 403 is tried again
WRITE_BUDGET = 2.0  # seconds of writing per pass at most: a slow API must not stall syncing
NOTE_LIMIT = 400  # characters; the API allows 1024, kubectl's table shows far fewer
ACTION = "Routing"  # what lbsync was doing for the Service (as the scheduler says "Scheduling")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ANNOTATION = re.compile(r"^serviceloadbalancer/[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
Key = Tuple[str, str, str, str, str, str]  # namespace, service, uid, code, annotation, reason


@dataclass
class _Series:
    note: Note
    written: int = 0  # the count the API has; 0: not created yet
    written_at: float = 0.0

    def due(self, now: float, refresh: float) -> bool:
        if not self.written:
            return True
        n = self.note.count
        return n >= 2 * self.written or (n > self.written and now - self.written_at >= refresh)


class EventReporter:
    """Turns each pass's Problems into Event writes; keeps the series between passes."""

    def __init__(self, sink: EventSink, *, clock: Callable[[], float] = time.time, per_pass: int = PER_PASS,
                 rate: float = RATE, refresh: float = REFRESH) -> None:
        self.sink, self.clock = sink, clock
        self.per_pass, self.rate, self.refresh = per_pass, rate, refresh
        self.series: Dict[Key, _Series] = {}
        self.paused: Dict[str, float] = {}  # namespace -> until when (403)
        self.tokens = float(per_pass)
        self._filled = clock()
        self._seq = 0
        self._warned_forbidden = False
        self._failing = ""

    def observe(self, problems: Iterable[Problem], uids: Mapping[Tuple[str, str], str]) -> Dict[str, int]:
        """A pass's problems: new ones get an Event, lasting ones a longer series, gone ones none."""
        now = self.clock()
        current: Dict[Key, Problem] = {}
        for p in problems:
            uid = uids.get((p.namespace, p.service), "")
            if p.for_owner and uid and _LABEL.match(p.namespace) and _LABEL.match(p.service):
                current[(p.namespace, p.service, uid, p.code, p.annotation, p.reason)] = p
        for key in [k for k in self.series if k not in current]:
            del self.series[key]
        for key, p in current.items():
            s = self.series.get(key) or self.series.setdefault(key, _Series(self._note(key, p, now)))
            s.note = replace(s.note, count=s.note.count + 1, last=now)
        return self._flush(now)

    def again(self) -> Dict[str, int]:
        """A pass that found the cluster as the last one did: every problem is seen once more."""
        now = self.clock()
        for s in self.series.values():
            s.note = replace(s.note, count=s.note.count + 1, last=now)
        return self._flush(now)

    def _note(self, key: Key, p: Problem, now: float) -> Note:
        return Note(namespace=p.namespace, name=self._name(p.service, now), service=p.service, uid=key[2],
                    type="Warning" if p.level == "warning" else "Normal", reason=p.code, action=ACTION,
                    note=note_text(p), first=now, last=0.0, count=0)

    def _name(self, service: str, now: float) -> str:
        """Like client-go: the object's name and a hex timestamp (ns), unique within lbsync."""
        self._seq += 1
        return "%s.%x" % (service, int(now * 1e9) + self._seq)

    def _flush(self, now: float) -> Dict[str, int]:
        """Write what is due, most useful first, within this pass's cap, the tokens and the time budget."""
        self.tokens = min(float(self.per_pass), self.tokens + (now - self._filled) * self.rate)
        self._filled = now
        due = sorted((s for s in self.series.values() if s.due(now, self.refresh)),
                     key=lambda s: (s.written > 0, s.note.type != "Warning", s.note.first))
        done = {"created": 0, "patched": 0, "failed": 0, "deferred": 0}
        started, writes, stopped = time.monotonic(), 0, False
        for s in due:
            if self.paused.get(s.note.namespace, 0.0) > now:  # a 403, maybe earlier in this pass
                continue
            if stopped or writes >= self.per_pass or self.tokens < 1 or time.monotonic() - started > WRITE_BUDGET:
                done["deferred"] += 1
                continue
            writes, self.tokens = writes + 1, self.tokens - 1
            outcome = self._write(s, now)
            stopped = outcome == "stop"
            done["failed" if stopped else outcome] += 1
        return done

    def _write(self, s: _Series, now: float) -> str:
        try:
            if s.written:
                self.sink.patch_series(s.note)
            else:
                self.sink.create(s.note)
        except ApiError as e:
            return self._failed(s, e, now)
        except LbsyncError as e:  # credentials (an exec plugin failed): as for an unreachable API
            return self._failed(s, ApiError(str(e)), now)
        outcome = "patched" if s.written else "created"
        s.written, s.written_at = s.note.count, now
        if self._failing:
            log.info("events.recovered", after=self._failing)
            self._failing = ""
        return outcome

    def _failed(self, s: _Series, e: ApiError, now: float) -> str:
        ns = s.note.namespace
        if isinstance(e, ApiForbidden):
            self.paused[ns] = now + FORBIDDEN_PAUSE
            if not self._warned_forbidden:  # once: RBAC left out on purpose must not fill the log
                log.warning("events.forbidden", namespace=ns, error=str(e),
                            action=f"no Events in a namespace that forbids them; retried after "
                                   f"{FORBIDDEN_PAUSE:g}s; lbsync carries on")
                self._warned_forbidden = True
            return "failed"
        if isinstance(e, ApiNotFound) and s.written:  # expired (1 h TTL) or deleted: start again
            s.note, s.written = replace(s.note, name=self._name(s.note.service, now)), 0
            return "failed"
        if e.status in (404, 409, 422):  # namespace going away, name taken, or refused: a new name, later
            s.note = replace(s.note, name=self._name(s.note.service, now))
            s.written_at = now
            return "failed"
        if not self._failing:
            log.warning("events.write_failed", error=str(e), action="retried at the next passes")
        self._failing = type(e).__name__
        return "stop"  # the API is unwell: no more writes this pass


def note_text(p: Problem) -> str:
    """The Event's note: the annotation (if it is one of ours) and the reason, printable and short."""
    text = f"{p.annotation}: {p.reason}" if _ANNOTATION.match(p.annotation) else p.reason
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return text if len(text) <= NOTE_LIMIT else text[:NOTE_LIMIT - 3] + "..."


def reporter_for(settings: Settings) -> Optional[EventReporter]:
    """The reporter a daemon or `--once` uses: None with events off or a source file."""
    if not settings.events or settings.source:
        return None
    from lbsync.kube import credentials
    creds = credentials.load(settings.kubeconfig, settings.context)
    sink = EventSink(creds, instance=instance_name(os.environ), timeout=settings.api_timeout)
    return EventReporter(sink)


def instance_name(environ: Mapping[str, str]) -> str:
    """reportingInstance: the Pod's name (POD_NAME, from the downward API), else the host's."""
    return (environ.get("POD_NAME") or socket.gethostname() or "lbsync")[:128]

