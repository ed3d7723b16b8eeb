"""One sync pass, put together in one place: fetch -> build -> render -> diff -> apply.

Reads like a checklist (confd's lesson): read the live file, render, compare, and only
for a real change stage the file, have HAProxy check the staged copy, rename it into
place, then tell HAProxy — over the Runtime API when only servers moved, by a reload
otherwise. A dry run takes the same path and stops before the first write.
"""
from __future__ import annotations

import difflib
import functools
import gc
import os
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional, Tuple

from lbsync import haproxy, incremental, model, render, runtime_update, slots, writebehind
from lbsync.exceptions import LbsyncError, RuntimeApiError, SourceError
from lbsync.haproxy.reload import Reloader
from lbsync.logs import get as get_logger
from lbsync.settings import Settings, duration_ms
from lbsync.snapshot import Snapshot

log = get_logger("lbsync.sync")


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


class GuardTripped(SourceError):
    """A poll would drop too many live backends at once; treated like a failed poll."""


def options_from(settings: Settings) -> model.Options:
    return model.Options(
        publish=settings.publish, exclude_namespaces=settings.exclude_namespaces,
        exclude_services=settings.exclude_services, path_prefixes=settings.path_prefixes,
        check_interval_ms=duration_ms(settings.check_interval, what="check_interval"),
        tls=bool(settings.tls_cert), reserved_ports=_bind_ports(settings),
        deny_networks=settings.deny_networks, backend_mode=settings.backend_mode,
        node_address_types=settings.node_address_types, node_selector=settings.node_selector,
        node_health_port=settings.node_health_port)


def frame_from(settings: Settings) -> render.Frame:
    return render.Frame(
        http_bind=settings.http_bind, https_bind=settings.https_bind, stats_bind=settings.stats_bind,
        tcp_bind_address=settings.tcp_bind_address, tls_cert=settings.tls_cert,
        https_redirect=settings.https_redirect, hard_stop_after=settings.hard_stop_after,
        haproxy_log=settings.haproxy_log, maxconn=settings.maxconn, runtime_socket=settings.runtime_socket,
        runtime_socket_group=settings.runtime_socket_group, haproxy_user=settings.haproxy_user,
        haproxy_group=settings.haproxy_group, haproxy_version=_haproxy_version(settings),
        prometheus_exporter=_prometheus_exporter(settings))


def _haproxy_version(settings: Settings) -> Tuple[int, int]:
    if settings.haproxy_version != "auto":
        major, minor = settings.haproxy_version.split(".")
        return int(major), int(minor)
    try:
        return tuple(haproxy.version(settings.haproxy_binary)[:2])  # type: ignore[return-value]
    except LbsyncError:
        return (2, 4)  # cannot ask: write only what every supported version accepts


def _prometheus_exporter(settings: Settings) -> bool:
    if settings.haproxy_exporter != "auto" or not settings.stats_bind:
        return settings.haproxy_exporter == "true" and bool(settings.stats_bind)
    try:
        return haproxy.has_prometheus_exporter(settings.haproxy_binary)
    except LbsyncError:
        return False  # cannot ask: a `use-service` the binary lacks would fail the config check


def _bind_ports(settings: Settings) -> Tuple[int, ...]:
    binds = [settings.http_bind, settings.stats_bind, settings.metrics_bind or ""]
    if settings.tls_cert:
        binds.append(settings.https_bind)
    return tuple(sorted({int(b.rsplit(":", 1)[1]) for b in binds if b}))


def make_source(settings: Settings):
    """The file source for --source, else the Kubernetes API (listed each pass, or watched)."""
    if settings.source:
        from lbsync.source import FileSource
        return FileSource(settings.source)
    from lbsync import kube
    creds = kube.credentials.load(settings.kubeconfig, settings.context)
    if settings.watch:
        return kube.WatchSource(creds, namespaces=settings.namespaces, selector=settings.selector,
                                timeout=settings.api_timeout, page_size=settings.page_size,
                                watch_timeout=settings.watch_timeout, resync=settings.resync,
                                backend_mode=settings.backend_mode)
    return kube.ApiSource(creds, namespaces=settings.namespaces, selector=settings.selector,
                          timeout=settings.api_timeout, page_size=settings.page_size,
                          backend_mode=settings.backend_mode)


def make_reloader(settings: Settings) -> Optional[Reloader]:
    common = dict(config_path=settings.haproxy_config, binary=settings.haproxy_binary,
                  timeout=settings.reload_timeout)
    if settings.master_socket:
        return haproxy.MasterSocketReloader(settings.master_socket, **common)
    if settings.pidfile:
        return haproxy.SignalReloader(settings.pidfile, confirm_socket=settings.master_socket, **common)
    if settings.reload_cmd:
        return haproxy.CommandReloader(settings.reload_cmd, timeout=settings.reload_timeout)
    return None


@dataclass(frozen=True)
class Plan:
    """What a pass would do, before it does anything: the new text and how to apply it."""

    text: str
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

    def why(self) -> str:
        """Why this change needs a reload, in words for the log."""
        # slot counts only: the live file's Servers are not built for a log line
        before = ({k: len(v) for k, v in self.parsed.items()} if self.parsed is not None
                  else slots.shape(self.live))
        added = sorted(self.layout.keys() - before.keys())
        removed = sorted(before.keys() - self.layout.keys())
        grown = sorted(k for k in self.layout.keys() & before.keys() if len(self.layout[k]) != before[k])
        parts = [f"{label}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
                 for label, names in (("backends added", added), ("backends removed", removed),
                                      ("server slots resized", grown)) if names]
        return "; ".join(parts) or "routing or settings changed"

    def result(self, **kw) -> Result:
        t = self.topology
        return Result(changed=self.changed, backends=len(t.backends), servers=t.server_count,
                      problems=t.problems, api_requests=self.api_requests, api_bytes=self.api_bytes,
                      duration_s=time.monotonic() - self.started, uids=self.uids, **kw)


class Syncer:
    """Holds what passes share: the compiled template, the source, the slot layout."""

    def __init__(self, settings: Settings, *, source=None, reloader: Optional[Reloader] = None,
                 runtime: Optional[haproxy.RuntimeApi] = None) -> None:
        self.settings = settings
        self.path = settings.haproxy_config
        self.source = source if source is not None else make_source(settings)
        self.reloader = reloader if reloader is not None else make_reloader(settings)
        self.runtime = runtime if runtime is not None else (
            haproxy.RuntimeApi(settings.runtime_socket) if settings.runtime_socket else None)
        self.renderer = render.Renderer(frame_from(settings), template=settings.template,
                                        errors_dir=settings.errors_dir)
        self.options = options_from(settings)
        # True once the running HAProxy is known to run the live file (the slot layout itself is
        # read back from that file each pass: keeping 80,000 server objects between passes
        # pins the memory of the whole pass that made them)
        self.in_sync = False
        # (snapshot version, the live file's identity) after the last pass: both unchanged
        # means nothing to do, known without reading the file or decoding the cluster
        self._seen: Optional[Tuple[str, Tuple[int, int, int]]] = None
        # every object's uid and resourceVersion then: a list whose resourceVersion moved (a
        # real cluster's revision moves with every write anywhere) with the same items is
        # still nothing to do
        self._seen_objects: Optional[incremental.Fingerprint] = None
        # (the live file's identity, the layout written into it): the next pass's previous
        # layout without parsing the file (its Slots are the cache's own: no extra memory)
        self._written: Optional[Tuple[Tuple[int, int, int], slots.Layout]] = None
        self.cache = incremental.Cache()  # Parts and rendered sections kept between passes
        self.reload_pending = False  # the file is ahead of the running HAProxy
        self.behind: Optional[writebehind.WriteBehind] = None  # see write_behind()
        self._cleaned = False
        self._wants_uids = settings.events and not settings.source  # only API objects have uids

    def write_behind(self, on_failure: Callable[[], None]) -> None:
        """Write the file of a Runtime API update in a thread of its own (lbsync.writebehind):
        the next change need not wait for this one's `haproxy -c`."""
        self.behind = writebehind.WriteBehind(self._write_and_settle, on_failure)

    def drain(self, timeout: Optional[float] = None) -> None:
        """Wait for a write-behind still pending (before a write of our own, or stopping)."""
        if self.behind is not None:
            self.behind.drain(timeout)

    def _write_and_settle(self, plan: Plan) -> None:
        self._write(plan.text, None)  # None: compare with the file as it is now
        self._settled(plan)

    def _clean_leftovers(self) -> None:
        """Temp files of an lbsync killed mid-write (SIGKILL, OOM): removed by the first real pass."""
        if self._cleaned:
            return
        self._cleaned = True
        try:
            removed = haproxy.files.clean_stale(self.path)
        except OSError:
            return  # no directory yet, or not readable: staging will say so clearly
        if removed:
            log.info("config.leftovers_removed", count=removed, path=self.path)

    def run(self, *, dry_run: bool = False, reason: str = "poll", allow_reload: bool = True) -> Result:
        return self.run_plan(self.plan(), dry_run=dry_run, reason=reason, allow_reload=allow_reload)

    def run_plan(self, plan: Optional[Plan], *, dry_run: bool = False, reason: str = "poll",
                 allow_reload: bool = True) -> Result:
        if dry_run:
            assert plan is not None, "a dry run always renders"
            return plan.result(diff=unified_diff(plan.live, plan.text, self.path) if plan.changed else "")
        self._clean_leftovers()
        if plan is None:
            return Result(changed=False, skipped_render=True, reloaded=self._retry_reload(reason, allow_reload))
        if not plan.changed:
            if self.behind is None or self.behind.ahead() is None:  # else its write settles
                self._settled(plan)
            return plan.result(reloaded=self._retry_reload(reason, allow_reload))
        return self.apply(plan, reason=reason, allow_reload=allow_reload)

    def refresh_renderer(self) -> None:
        """Re-read the template and error pages (they changed on disk)."""
        self.renderer = render.Renderer(frame_from(self.settings), template=self.settings.template,
                                        errors_dir=self.settings.errors_dir)
        self._seen = self._seen_objects = None

    def _retry_reload(self, reason: str, allow_reload: bool) -> bool:
        """The file is right but HAProxy may not run it (a reload failed, a cert changed)."""
        if not self.reload_pending or not allow_reload:
            return False
        return self._reload(reason + "; reload pending")

    def plan(self) -> Optional[Plan]:
        """Fetch and render; None when the cluster and the live file are as last time."""
        # nothing a pass builds forms reference cycles: the cyclic GC would only scan the fresh
        # objects, and the items kept between polls, again and again (~30% of a big pass)
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            return self._plan()
        finally:
            if gc_was_on:
                gc.enable()

    def _plan(self) -> Optional[Plan]:
        started = time.monotonic()
        error = self.behind.take_error() if self.behind is not None else None
        if error is not None:
            self._seen = self._written = None  # start again from the file
            raise error
        ahead = self.behind.ahead() if self.behind is not None else None
        file_id = _file_id(self.path)
        hint = self._seen[0] if self._seen is not None and self._seen[1] == file_id else ""
        snapshot = self.source.fetch(unchanged_since=hint)  # with a hint, may skip decoding
        if snapshot.version and self._seen == (snapshot.version, file_id):
            return None  # nothing moved: no build, no render, no write
        objects = incremental.fingerprint(snapshot)
        if objects is not None and objects == self._seen_objects and self._seen and self._seen[1] == file_id:
            self._seen = (snapshot.version, file_id)
            return None  # only the revision moved: no object changed
        # read after the poll: not held while a big list decodes; a text HAProxy runs while
        # its file is still being written is what this pass compares with
        live = ahead.text if ahead is not None else haproxy.read(self.path)
        cost = (snapshot.version, snapshot.requests, snapshot.bytes)
        topology = self.cache.topology(snapshot, self.options)
        uids = _uids(topology.problems, snapshot.services) if self._wants_uids else {}
        del snapshot  # the raw objects are done with: free them before rendering (peak memory)
        spares = self.runtime is not None  # only a Runtime API can fill spare slots
        previous = None if not spares else ahead.layout if ahead is not None else self._written[1] \
            if self._written is not None and self._written[0] == file_id else slots.parse(live)
        layout = slots.layout({b.name: b.servers for b in topology.backends}, previous or {}, spares=spares)
        text = self.cache.render(self.renderer, topology, layout)
        return Plan(text, live, layout, topology, *cost, started, uids, objects, previous)

    def apply(self, plan: Plan, *, reason: str = "poll", allow_reload: bool = True) -> Result:
        self._guard(plan)
        fallbacks = 0
        if self.runtime is not None and self.in_sync and not plan.structural:  # masks two configs: last
            updates = self._runtime_update(plan)
            if updates is not None:
                return plan.result(written=True, runtime_updates=updates, reason=reason)
            fallbacks = 1
        if not allow_reload and self.reloader is not None:
            return plan.result(reason="deferred: reload rate limit")
        # after a refused runtime update the file is already written: no second stage and check
        self.drain()
        self._write(plan.text, plan.text if fallbacks else plan.live)
        reloaded = self._reload(f"{reason}: {plan.why()}" if plan.live else f"{reason}: first config")
        self._settled(plan)
        return plan.result(written=True, reloaded=reloaded, reason=reason, runtime_fallbacks=fallbacks)

    def _settled(self, plan: Plan) -> None:
        self.in_sync = True
        self._seen = (plan.source_version, _file_id(self.path))
        self._written = (self._seen[1], plan.layout)
        self._seen_objects = plan.objects

    def _guard(self, plan: Plan) -> None:
        """Refuse an answer that would drop most live backends at once (bad poll, not a real change)."""
        before = slots.count_backends(plan.live)
        after = len(plan.topology.backends)
        if before >= 4 and after < before * (1 - self.settings.shrink_guard):
            raise GuardTripped(f"refusing to apply: the poll returned {after} backends where {before} "
                               f"are live (more than {self.settings.shrink_guard:.0%} would go at once); "
                               "the live config is kept. Check the API answer, or run once with "
                               "--shrink-guard 1 to accept it")

    def _write(self, text: str, live: Optional[str]) -> bool:
        binary = self.settings.haproxy_binary
        return haproxy.replace(self.path, text, current=live,
                               check=lambda staged: haproxy.check_config(staged, binary=binary))

    def _reload(self, reason: str) -> bool:
        if self.reloader is None:
            return False
        if not self._haproxy_running():
            # e.g. an init container rendering the first config: HAProxy will read the file at start
            log.info("haproxy.not_running", action="config written; nothing to reload")
            self.reload_pending = False
            return False
        self.reload_pending = True
        self.in_sync = False  # unknown until the new worker runs the file
        result = self.reloader.reload(reason)
        self.reload_pending = False
        log.info("haproxy.reloaded", reason=reason, duration_s=round(result.duration_s, 3),
                 new_pids=list(result.new_pids))
        if self.runtime is not None and result.new_pids:
            # commands sent right after a reload can still reach the old worker
            self.runtime.wait_for_worker(result.new_pids, timeout=self.settings.reload_timeout)
        return True

    def _haproxy_running(self) -> bool:
        s = self.settings
        if s.master_socket:
            return os.path.exists(s.master_socket)
        if s.pidfile:
            return os.path.exists(s.pidfile)
        return True  # a reload command knows better

    def _runtime_update(self, plan: Plan) -> Optional[int]:
        """Apply slot changes over the Runtime API; None (caller reloads) if HAProxy disagrees."""
        todo = slots.changes(plan.previous, plan.layout)
        # Traffic first, then the file: `haproxy -c` of the staged file takes ~0.5 s at 1,000
        # Services, and an endpoint change should not wait for it. Only server addresses differ
        # (validated IPs in slots the live file already has), so the check cannot refuse what
        # HAProxy just accepted; the file still lands before the pass ends, so a later reload
        # or restart changes nothing.
        try:
            runtime_update.apply(self.runtime, todo)
        except RuntimeApiError as e:
            log.warning("runtime.update_failed", error=str(e), fallback="reload")
            self.drain()
            self._write(plan.text, plan.live)
            self.reload_pending = True  # the file is written: HAProxy must catch up, now or later
            return None
        if self.behind is not None:
            self.behind.submit(plan)
        else:
            self._write(plan.text, plan.live)
            self._settled(plan)
        log.info("runtime.updated", slots=len(todo), backends=sorted({c.backend for c in todo})[:10])
        return len(todo)


def _uids(problems: Tuple[model.Problem, ...], services: Tuple[dict, ...]) -> Dict[Tuple[str, str], str]:
    """The uid of each Service a problem for its owner names: all that is kept of the objects."""
    wanted = {(p.namespace, p.service) for p in problems if p.for_owner}
    out: Dict[Tuple[str, str], str] = {}
    for svc in services if wanted else ():
        meta = svc.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name"))
        if key in wanted and isinstance(meta.get("uid"), str):
            out[key] = meta["uid"]  # type: ignore[index]
    return out


def _file_id(path: str) -> Tuple[int, int, int]:
    """Identity of the live file: a rename (our atomic replace) or any edit changes it."""
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def unified_diff(old: str, new: str, path: str, context: int = 3) -> str:
    """`diff -u` of two configs. The text both share at the start and the end is found by
    comparing the strings block by block (in C) and cut at line ends before any line is
    split: a one-endpoint change at 5,000 Services no longer splits 2 x 150,000 lines."""
    cut = _cut(old, new, context)
    if cut is None:
        return _line_diff(old, new, path, context, 0)
    h, ta, tb = cut
    return _line_diff(old[h:ta], new[h:tb], path, context, old.count("\n", 0, h))


def _line_diff(old: str, new: str, path: str, context: int, offset: int) -> str:
    """Lines both share at the start and the end are cut before difflib sees them (its cost
    grows faster than linearly), and hunk headers are shifted back (by `offset` more lines)."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    if not a or not b:  # a first config (or an emptied one): one hunk, no matching to do
        return _whole(a, b, path) if a != b else ""
    head = _common(a, b)
    tail = _common(a[:head - 1:-1] if head else a[::-1], b[:head - 1:-1] if head else b[::-1])
    start = max(0, head - context)
    a_mid, b_mid = a[start:len(a) - max(0, tail - context)], b[start:len(b) - max(0, tail - context)]
    lines = difflib.unified_diff(a_mid, b_mid, fromfile=path, tofile=path + " (new)", n=context)
    return "".join(_HUNK.sub(lambda m: _shift(m, start + offset), line) if line.startswith("@@") else line
                   for line in lines)


def _other_breaks(text: str) -> bool:
    """Line ends other than \\n (splitlines splits there too): such texts are diffed line by line."""
    return any(c in text for c in "\r\x0b\x0c\x1c\x1d\x1e") or (
        not text.isascii() and any(c in text for c in "\x85\u2028\u2029"))


def _cut(a: str, b: str, context: int) -> Optional[Tuple[int, int, int]]:
    """(h, ta, tb): a[:h] == b[:h] and a[ta:] == b[tb:], each whole lines, with `context`
    shared lines left on either side of what differs; None when nothing can be cut."""
    if a == b or _other_breaks(a) or _other_breaks(b):
        return None
    h = a.rfind("\n", 0, _shared(a, b, 1)) + 1  # the start of the line where they differ
    for _ in range(context):
        h = a.rfind("\n", 0, max(0, h - 1)) + 1 if h else 0
    shortest = min(len(a), len(b)) - h
    ta = len(a) - min(_shared(a, b, -1), shortest)  # a[ta:] == b[-(len(a) - ta):]
    for _ in range(context + 1):  # past the first line end inside the shared end, then context lines
        end = a.find("\n", ta)
        ta = len(a) if end < 0 else end + 1
    tb = ta + len(b) - len(a)
    return (h, ta, tb) if (h or ta < len(a)) and h < ta and h < tb else None


def _shared(a: str, b: str, direction: int, block: int = 1 << 16) -> int:
    """How many characters a and b share at the start (direction 1) or the end (-1)."""
    n, i = min(len(a), len(b)), 0
    while block:
        while i < n and _part(a, i, block, direction) == _part(b, i, block, direction):
            i = min(n, i + block)
        block //= 16
    return i


def _part(s: str, i: int, size: int, direction: int) -> str:
    return s[i:i + size] if direction > 0 else s[max(0, len(s) - i - size):len(s) - i]


def _whole(a: list, b: list, path: str) -> str:
    """What difflib prints when one side is empty, without its cost (0.4 s for 200,000 lines)."""
    def span(lines: list) -> str:
        return "0,0" if not lines else "1" if len(lines) == 1 else f"1,{len(lines)}"
    body = "".join("-" + line for line in a) + "".join("+" + line for line in b)
    return f"--- {path}\n+++ {path} (new)\n@@ -{span(a)} +{span(b)} @@\n{body}"


def _common(a: list, b: list) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


_HUNK = re.compile(r"^@@ -(\d+)((?:,\d+)?) \+(\d+)((?:,\d+)?) @@")


def _shift(m: "re.Match[str]", by: int) -> str:
    return f"@@ -{int(m.group(1)) + by}{m.group(2)} +{int(m.group(3)) + by}{m.group(4)} @@"


__all__ = ["GuardTripped", "LbsyncError", "Result", "Snapshot", "Syncer", "unified_diff"]
