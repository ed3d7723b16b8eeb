"""The long-running loop: poll, batch, apply, back off; signals, file watching, health.

Syncs run in one worker thread; the main thread only waits for signals, so SIGTERM
stops lbsync within a second even while a poll is waiting on a slow API server (an
interrupted pass never leaves a half-written config: files are renamed into place).
A failed pass never writes anything: HAProxy keeps serving the last good config.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Callable, List, Optional, Tuple

from lbsync import events as events_mod, logs, metrics as metrics_mod, settings as settings_mod, sync
from lbsync.exceptions import ApiError, LbsyncError, ReloadFailed, RuntimeApiError, SettingsError
from lbsync.host import notify, release_memory

log = logs.get("lbsync.daemon")
STOP_GRACE = 0.8  # seconds the worker gets to finish after SIGTERM


class Daemon:
    def __init__(self, settings: settings_mod.Settings, *, config_file: Optional[str] = None,
                 syncer_factory: Callable[..., sync.Syncer] = sync.Syncer) -> None:
        self.settings = settings
        self.config_file = config_file
        self.syncer_factory = syncer_factory
        self.syncer = syncer_factory(settings)
        self.metrics = metrics_mod.Metrics()
        # /healthz fails when no pass started for this long: longer than any pass can legitimately take
        self.metrics.stall_after = max(120.0, 5 * settings.interval + settings.batch_max_wait +
                                       settings.reload_timeout + 4 * settings.api_timeout)
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.reasons: List[str] = []  # why the next pass runs early (signal, file change)
        self.failures = 0
        self.last_error = ""
        self.last_reload = 0.0
        self.notified = False
        self.reported: set = set()
        self.events = events_mod.reporter_for(settings)  # None: off, or a source file
        self._follow(self.syncer.source)
        self._write_behind(self.syncer)
        self.metrics.collectors.append(self._watch_ages)
        self.metrics.health_checks.append(self._watch_health)

    # --- the loop -----------------------------------------------------------------
    def loop(self) -> None:
        while not self.stop.is_set():
            delay = self.tick()
            release_memory()
            self.wake.wait(delay)
            self.wake.clear()

    def tick(self) -> float:
        """One pass; returns the seconds until the next one."""
        self.metrics.beat()
        reason = ", ".join(self.reasons) or "poll"
        self.reasons = []
        try:
            self._maybe_reload_settings(reason)
            result = self._pass(reason)
        except LbsyncError as e:
            return self._failed(e)
        except Exception as e:  # noqa: BLE001 - a bug must not stop the load balancer's updates
            log.exception("sync.crashed", error=repr(e))
            return self._failed(LbsyncError(f"internal error: {e!r}"))
        self._succeeded(result)
        self._tell_owners(result)
        if result.reason.startswith("deferred"):
            return max(0.05, self.settings.min_reload_interval - (time.monotonic() - self.last_reload))
        return self.settings.interval

    def _pass(self, reason: str) -> sync.Result:
        plan = self.syncer.plan()
        # the reloader first: `structural` compares two whole configs, needless without one
        if plan is not None and self.syncer.reloader is not None and not plan.quick and plan.changed \
                and plan.live and plan.structural:
            seen = _fingerprint(plan)
            plan = None  # freed before the next plan: two big plans at once double the memory
            plan = self._settle_burst(seen)
        allow = time.monotonic() - self.last_reload >= self.settings.min_reload_interval
        result = self.syncer.run_plan(plan, reason=reason, allow_reload=allow)
        if result.reloaded:
            self.last_reload = time.monotonic()
        return result

    def _settle_burst(self, seen: Tuple[str, int]) -> Optional["sync.Plan"]:
        """A reload is coming: wait for a quiet period (at most batch_max_wait) so that a burst
        of changes costs one reload. None: the cluster went back to the applied state."""
        deadline = time.monotonic() + self.settings.batch_max_wait
        while True:
            if self.settings.batch_quiet > 0 and self.stop.wait(self.settings.batch_quiet):
                return None
            plan = self.syncer.plan()
            if plan is None or _fingerprint(plan) == seen or time.monotonic() >= deadline \
                    or self.settings.batch_quiet <= 0:
                return plan
            seen = _fingerprint(plan)
            plan = None

    def _succeeded(self, result: sync.Result) -> None:
        m = self.metrics
        if self.failures:
            log.info("sync.recovered", after_failures=self.failures)
        self.failures, self.last_error = 0, ""
        outcome = ("deferred" if result.reason.startswith("deferred") else
                   "changed" if result.written else "unchanged")
        m.inc("lbsync_syncs_total", result=outcome)
        m.inc("lbsync_api_requests_total", result.api_requests)
        m.inc("lbsync_api_bytes_total", result.api_bytes)
        if result.reloaded:
            m.inc("lbsync_reloads_total", result="success")
        if result.runtime_updates:
            m.inc("lbsync_runtime_updates_total", result.runtime_updates, result="success")
        if result.runtime_fallbacks:
            m.inc("lbsync_runtime_updates_total", result.runtime_fallbacks, result="fallback_to_reload")
        if not result.skipped_render:
            m.set("lbsync_backends", result.backends)
            m.set("lbsync_servers", result.servers)
            for level in ("warning", "info"):
                m.set("lbsync_problems", sum(p.level == level for p in result.problems), level=level)
        m.success(result.duration_s)
        if not result.skipped_render:
            self._report_problems(result)
        if result.written or result.reloaded:
            log.info("config.applied", reloaded=result.reloaded, runtime_updates=result.runtime_updates,
                     backends=result.backends, servers=result.servers, reason=result.reason,
                     duration_s=round(result.duration_s, 4))
        if not self.notified:
            self.notified = notify("READY=1\nSTATUS=first sync done")

    def _tell_owners(self, result: sync.Result) -> None:
        """Kubernetes Events for what the pass left out; they never fail the pass."""
        if self.events is None:
            return
        try:
            done = self.events.again() if result.skipped_render else \
                self.events.observe(result.problems, result.uids)
        except Exception as e:  # noqa: BLE001 - a bug in telling must not stop the syncing
            log.exception("events.crashed", error=repr(e))
            return
        for outcome, count in done.items():
            if count:
                self.metrics.inc("lbsync_events_total", count, result=outcome)

    def _failed(self, e: LbsyncError) -> float:
        self.failures += 1
        self.metrics.failure()
        self.metrics.inc("lbsync_syncs_total", result="failed")
        if isinstance(e, ApiError):
            self.metrics.inc("lbsync_api_errors_total", status=metrics_mod.status_label(e.status))
        if isinstance(e, ReloadFailed):
            self.metrics.inc("lbsync_reloads_total", result="failure")
        if isinstance(e, RuntimeApiError):
            self.metrics.inc("lbsync_runtime_updates_total", result="failure")
        key = f"{type(e).__name__}: {e}"
        if key != self.last_error:  # once per state change, not once per retry
            log.error("sync.failed", error=str(e), kind=type(e).__name__, failures=self.failures,
                      action="keeping the live config; retrying with backoff")
            self.last_error = key
        delay = min(2.0 ** (self.failures - 1), max(self.settings.interval, 10.0))
        retry_after = getattr(e, "retry_after", None)
        return max(delay, min(float(retry_after), 300.0)) if retry_after else delay

    def _maybe_reload_settings(self, reason: str) -> None:
        if "SIGHUP" not in reason:
            return
        new = settings_mod.load(config_file=self.config_file, args=self._args) if self.config_file \
            else self.settings
        old = self.syncer
        if _events_key(new) != _events_key(self.settings):  # else the Events' series go on
            self.events = events_mod.reporter_for(new)
        self.settings = new
        self.syncer = self.syncer_factory(new)
        old.drain()  # its last file write lands before the new syncer reads the file
        _close(old.source)
        self._follow(self.syncer.source)
        self._write_behind(self.syncer)
        # what the running HAProxy has, and whether it still owes us a reload, stays true
        self.syncer.in_sync, self.syncer.reload_pending = old.in_sync, old.reload_pending
        log.info("settings.reloaded", config_file=self.config_file)

    _args = None  # the command-line flags, re-applied over a re-read settings file

    def _report_problems(self, result: sync.Result) -> None:
        """Each problem is logged once, when it appears; not again at every pass."""
        current = set(result.problems)
        for p in result.problems:
            if p not in self.reported:
                (log.warning if p.level == "warning" else log.info)(
                    "service.problem", namespace=p.namespace, service=p.service, code=p.code,
                    annotation=p.annotation or None, reason=p.reason, value=p.value or None)
        self.reported = current

    # --- a watching source ------------------------------------------------------------
    def _follow(self, source: object) -> None:
        """A source that watches (--watch) wakes the loop at each change: the pass that
        follows is the same as after a poll, only sooner."""
        subscribe = getattr(source, "subscribe", None)
        if subscribe is not None:
            subscribe(lambda: self.trigger("watch event"), self.metrics.inc)

    def _write_behind(self, syncer: sync.Syncer) -> None:
        """With --watch a change is applied at once: the file of a Runtime API update is written
        behind it (lbsync.writebehind), so the next change does not wait for its `haproxy -c`.
        A write that fails wakes the loop: that pass fails and starts again from the file."""
        if self.settings.watch and syncer.runtime is not None:
            syncer.write_behind(lambda: self.trigger("file write failed"))

    def _watch_ages(self):
        ages = getattr(self.syncer.source, "ages", dict)()
        return [("lbsync_watch_last_event_age_seconds", age, {"resource": r}) for r, age in ages.items()]

    def _watch_health(self) -> str:
        return getattr(self.syncer.source, "health", str)()

    # --- outside events ---------------------------------------------------------------
    def trigger(self, reason: str) -> None:
        if reason not in self.reasons:  # a burst of events: one reason, not thousands
            self.reasons.append(reason)
        self.wake.set()

    def files_changed(self, paths: List[str]) -> None:
        cert = self.settings.tls_cert
        if cert and any(os.path.abspath(p).startswith(os.path.abspath(cert)) for p in paths):
            self.syncer.reload_pending = True  # same config text, new certificate: HAProxy must reload
        self.syncer.refresh_renderer()
        self.trigger("files changed")

    def request_stop(self, *_: object) -> None:
        self.stop.set()
        self.wake.set()


def run(settings: settings_mod.Settings, *, config_file: Optional[str] = None, args=None) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop."""
    daemon = Daemon(settings, config_file=config_file)
    daemon._args = args
    signal.signal(signal.SIGTERM, daemon.request_stop)
    signal.signal(signal.SIGINT, daemon.request_stop)
    signal.signal(signal.SIGHUP, lambda *_: daemon.trigger("SIGHUP"))
    server = metrics_mod.serve(daemon.metrics, settings.metrics_bind) if settings.metrics_bind else None
    from lbsync import watch
    observer = watch.start(watch.paths_of(settings, daemon.syncer), daemon.files_changed)
    worker = threading.Thread(target=daemon.loop, name="sync-loop", daemon=True)
    log.info("daemon.started", interval=settings.interval, config=settings.haproxy_config,
             source=settings.source or ("kubernetes-api (watch)" if settings.watch else "kubernetes-api"))
    worker.start()
    while not daemon.stop.wait(0.2) and worker.is_alive():
        pass
    worker.join(STOP_GRACE)
    daemon.syncer.drain(STOP_GRACE)  # a Runtime API update's file write still under way
    _close(daemon.syncer.source)
    if observer is not None:
        observer.stop()
    if server is not None:
        server.shutdown()
    notify("STOPPING=1")
    log.info("daemon.stopped")
    return 0


def _events_key(s: settings_mod.Settings) -> Tuple[object, ...]:
    return (s.events, s.source, s.kubeconfig, s.context, s.api_timeout)


def _close(source: object) -> None:
    close = getattr(source, "close", None)
    if close is not None:
        close()


def _fingerprint(plan: "sync.Plan") -> Tuple[str, int]:
    return (plan.source_version, hash(plan.text))


__all__ = ["Daemon", "SettingsError", "notify", "run"]
