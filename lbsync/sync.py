"""One sync pass, put together in one place: fetch -> build -> render -> diff -> apply.

Reads like a checklist (confd's lesson): read the live file, render, compare, and only
for a real change stage the file, have HAProxy check the staged copy, rename it into
place, then tell HAProxy — over the Runtime API when only servers moved, by a reload
otherwise. A dry run takes the same path and stops before the first write.
"""
from __future__ import annotations

import gc
import os
import time
from typing import Callable, Dict, Optional, Tuple

from lbsync import haproxy, incremental, model, render, runtime_update, slots, writebehind
from lbsync.exceptions import LbsyncError, RuntimeApiError
from lbsync.haproxy.reload import Reloader
from lbsync.logs import get as get_logger
from lbsync.plan import GuardTripped, Plan, Result, Written, only_pods_moved
from lbsync.settings import Settings
from lbsync.snapshot import NotRead, Snapshot
from lbsync.textdiff import unified_diff
from lbsync.wiring import frame_from, make_reloader, make_source, options_from

log = get_logger("lbsync.sync")


class Syncer:
    """Holds what passes share: the compiled template, the source, the slot layout."""

    def __init__(self, settings: Settings, *, source=None, reloader: Optional[Reloader] = None,
                 runtime: Optional[haproxy.RuntimeApi] = None) -> None:
        self.settings = settings
        self.path = settings.haproxy_config
        self.source = source if source is not None else make_source(settings, stand_ins=True)
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
        # (the live file's identity, the layout, topology and text written into it): the next
        # pass's previous layout and live text without reading the file (no extra memory: the
        # Slots are the cache's own, the text the one its next render splices into)
        self._written: Optional[Written] = None
        # Parts and rendered sections kept between passes (and the text around the sections)
        self.cache = incremental.Cache()
        # with a watch the text written is kept whole, as the next pass's live text (a pass
        # then decodes no list, so holding ~5 MB at 5,000 Services does not raise the peak)
        self._keep_text = settings.watch
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
        if not plan.quick and not plan.changed:  # a quick plan: to the Runtime API before any render
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
        try:
            topology = self.cache.topology(snapshot, self.options)
        except NotRead as e:  # a stand-in whose Part is no longer kept (a pass failed midway)
            log.info("source.read_again", service=str(e), why="a Service's kept Part is gone; reading in full")
            self.source.forget()
            snapshot = self.source.fetch()
            topology = self.cache.topology(snapshot, self.options)
        cost = (snapshot.version, snapshot.requests, snapshot.bytes)
        uids = _uids(topology.problems, snapshot.services) if self._wants_uids else {}
        del snapshot  # the raw objects are done with: free them before rendering (peak memory)
        # read after the poll and the model: not held while a list decodes (or is read again
        # in full); a text HAProxy runs while its file is still being written is what this
        # pass compares with
        written = self._written if self._written is not None and self._written.file_id == file_id else None
        running = ahead if ahead is not None else written  # what HAProxy runs: layout, topology, text
        live = running.text if running is not None and running.text is not None else haproxy.read(self.path)
        spares = self.runtime is not None  # only a Runtime API can fill spare slots
        previous = None if not spares else running.layout if running is not None else slots.parse(live)
        layout = slots.layout({b.name: b.servers for b in topology.backends}, previous or {}, spares=spares)
        cache, renderer = self.cache, self.renderer
        quick = spares and running is not None and self.in_sync and \
            only_pods_moved(running.topology, topology, previous, layout)
        return Plan(lambda: cache.render(renderer, topology, layout), live, layout, topology, *cost, started,
                    uids, objects, previous, quick)

    def apply(self, plan: Plan, *, reason: str = "poll", allow_reload: bool = True) -> Result:
        if not plan.quick:  # a quick plan has the backends HAProxy runs: nothing to guard
            self._guard(plan)
        fallbacks = 0
        if self.runtime is not None and self.in_sync and (plan.quick or not plan.structural):  # masks: last
            updates = self._runtime_update(plan)
            if updates is not None:
                return plan.result(written=True, runtime_updates=updates, reason=reason)
            fallbacks = 1
        if not allow_reload and self.reloader is not None:
            return plan.result(reason="deferred: reload rate limit")
        # after a refused runtime update the file is already written: no second stage and check
        self.drain()
        self._write(plan.text, plan.text if fallbacks else plan.live)
        reloaded = self._reload(f"{reason}: {plan.why(self.in_sync)}" if plan.live else f"{reason}: first config")
        self._settled(plan)
        return plan.result(written=True, reloaded=reloaded, reason=reason, runtime_fallbacks=fallbacks)

    def _settled(self, plan: Plan) -> None:
        self.in_sync = True
        self._seen = (plan.source_version, _file_id(self.path))
        text = vars(plan).get("text") if self._keep_text else None  # vars(): never renders here
        self._written = Written(self._seen[1], plan.layout, plan.topology, text)
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
            if plan.quick and plan.structural:  # a template of one's own shows more than server lines
                raise RuntimeApiError("the new config differs in more than server lines")
        except RuntimeApiError as e:
            log.warning("runtime.update_failed", error=str(e), fallback="reload")
            self.drain()
            self._write(plan.text, plan.live)
            self.reload_pending = True  # the file is written: HAProxy must catch up, now or later
            return None
        if self.behind is not None:
            plan.text  # noqa: B018 - rendered here: the render's cache is this thread's alone
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


__all__ = ["GuardTripped", "LbsyncError", "Plan", "Result", "Snapshot", "Syncer", "frame_from",
           "make_reloader", "make_source", "options_from", "unified_diff"]
