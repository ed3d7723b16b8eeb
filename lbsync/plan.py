"""What a pass would do (Plan) and what it did (Result), before and after applying.

Pure data plus cheap questions about it (changed? structural? why a reload?); no I/O.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, NamedTuple, Optional, Tuple

from lbsync import incremental, model, reassemble, slots
from lbsync.exceptions import SourceError


@dataclass(frozen=True)
class Result:
    """What one pass found and did. `changed`: the config would differ (dry run too)."""

    changed: bool
    written: bool = False
    reloaded: bool = False
    runtime_updates: int = 0
    runtime_fallbacks: int = 0  # runtime updates HAProxy refused: applied by a reload instead
    diff: str = ""
    backends: int = 0
    servers: int = 0
    problems: Tuple[model.Problem, ...] = ()
    reason: str = ""
    duration_s: float = 0.0
    api_requests: int = 0
    api_bytes: int = 0
    skipped_render: bool = field(default=False)
    uids: Mapping[Tuple[str, str], str] = field(default_factory=dict)  # (namespace, name) -> uid, see Plan


class Written(NamedTuple):
    """What lbsync last wrote into the live file: with the file's identity, what HAProxy runs
    once it is in sync. Has `layout`, `topology` and `text` like the Plan it came from."""

    file_id: Tuple[int, int, int]
    layout: slots.Layout
    topology: model.Topology
    text: Optional[str]  # kept only with a watch (Syncer._keep_text)


class GuardTripped(SourceError):
    """A poll would drop too many live backends at once; treated like a failed poll."""


@dataclass(frozen=True)
class Plan:
    """What a pass would do, before it does anything: the new text and how to apply it.

    The text is rendered when first asked (`draw`): a plan that only moves Pods between the
    slots HAProxy runs (`quick`) is applied over the Runtime API first, and rendered after."""

    draw: Callable[[], str]
    live: str
    layout: slots.Layout
    topology: model.Topology
    source_version: str  # the snapshot's version; the objects themselves are not kept (memory)
    api_requests: int
    api_bytes: int
    started: float
    # the uid of each Service named by a problem for its owner (Kubernetes Events name it)
    uids: Mapping[Tuple[str, str], str] = field(default_factory=dict)
    objects: Optional[incremental.Fingerprint] = None  # every object's uid and resourceVersion
    parsed: Optional[slots.Layout] = None  # the live file's layout, if the pass needed it
    quick: bool = False  # only Pods moved, between slots HAProxy has: see only_pods_moved

    @functools.cached_property
    def text(self) -> str:
        return self.draw()

    @functools.cached_property
    def previous(self) -> slots.Layout:
        """The live file's slot layout: parsed only when asked (80,000 server lines at 5,000
        Services take longer than the rest of a pass where one endpoint changed)."""
        return self.parsed if self.parsed is not None else slots.parse(self.live)

    @property
    def changed(self) -> bool:
        return self.text != self.live

    @functools.cached_property
    def structural(self) -> bool:
        """True unless only Pods moved between existing server slots (compares the lines
        that differ: computed once per plan, however often it is asked)."""
        return (not slots.same_shape(self.previous, self.layout)
                or not slots.only_servers_differ(self.text, self.live))

    def why(self, running_known: bool = True) -> str:
        """Why this change needs a reload, in words for the log. `running_known`: whether the
        running HAProxy is known to run the live file (else even a Pod move is reloaded)."""
        # slot counts only: the live file's Servers are not built for a log line
        before = ({k: len(v) for k, v in self.parsed.items()} if self.parsed is not None
                  else slots.shape(self.live))
        added = sorted(self.layout.keys() - before.keys())
        removed = sorted(before.keys() - self.layout.keys())
        grown = sorted(k for k in self.layout.keys() & before.keys() if len(self.layout[k]) != before[k])
        parts = [f"{label}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
                 for label, names in (("backends added", added), ("backends removed", removed),
                                      ("server slots resized", grown)) if names]
        if not parts and not running_known and not self.structural:
            return ("only Pods moved, but HAProxy is not known to run the live file yet (lbsync's "
                    "first pass since it started, or a reload that failed)")
        return "; ".join(parts) or "routing or settings changed"

    def result(self, **kw) -> Result:
        t = self.topology
        return Result(changed=self.changed, backends=len(t.backends), servers=t.server_count,
                      problems=t.problems, api_requests=self.api_requests, api_bytes=self.api_bytes,
                      duration_s=time.monotonic() - self.started, uids=self.uids, **kw)


def only_pods_moved(running: model.Topology, topology: model.Topology, previous: Optional[slots.Layout],
                    layout: slots.Layout) -> bool:
    """Only Pods moved, between slots HAProxy already has: the backends are those HAProxy runs but
    for their servers, each keeps its slot count, and some slot changed. Decided from the model,
    before any text is rendered (a Runtime API update need not wait for the render)."""
    if previous is None or len(running.backends) != len(topology.backends) or not slots.same_shape(previous, layout):
        return False
    if not all(a is b or (a.name == b.name and reassemble.same_but_servers(a, b))
               for a, b in zip(running.backends, topology.backends)):
        return False
    return any(layout[name] is not previous[name] and layout[name] != previous[name] for name in layout)
