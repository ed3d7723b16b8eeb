"""lbsync's metrics, declared in one table, and the /metrics, /healthz, /readyz server.

lbsync keeps the values; `prometheus_client` writes the exposition format (text, or
OpenMetrics when the scraper asks for it): label values are escaped correctly, and
the standard process_* (CPU, resident memory, open fds), python_info and python_gc_*
metrics come with it. Each Metrics has a registry of its own, so two daemons in one
process (tests) never share values. Thread-safe: the sync loop writes, the HTTP
server thread reads. prometheus_client and http.server are imported only when metrics
are served or read (a daemon without --metrics-bind never needs them).
"""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

if TYPE_CHECKING:
    import prometheus_client

# name: (kind, help, label names). The one place a metric is declared: add new ones here,
# then call Metrics.inc/set/observe by name.
DEFINITIONS: Dict[str, Tuple[str, str, Tuple[str, ...]]] = {
    "lbsync_syncs_total": ("counter", "Sync passes by result (changed, unchanged, failed, deferred).",
                           ("result",)),
    "lbsync_reloads_total": ("counter", "HAProxy reloads by result (success, failure).", ("result",)),
    "lbsync_runtime_updates_total": ("counter", "Server slot changes over the Runtime API, by result "
                                     "(success; fallback_to_reload when HAProxy's answer was unexpected).",
                                     ("result",)),
    "lbsync_api_errors_total": ("counter", "Failed polls of the Kubernetes API by HTTP status "
                                "('none': no answer).", ("status",)),
    "lbsync_api_requests_total": ("counter", "HTTP requests made to the Kubernetes API.", ()),
    "lbsync_api_bytes_total": ("counter", "Response bytes received from the Kubernetes API "
                               "(gzipped, when it gzipped them).", ()),
    "lbsync_sync_duration_seconds": ("summary", "Seconds spent in successful sync passes.", ()),
    "lbsync_last_sync_duration_seconds": ("gauge", "Duration of the last successful pass.", ()),
    "lbsync_last_success_timestamp_seconds": ("gauge", "Unix time of the last successful pass.", ()),
    "lbsync_backends": ("gauge", "Backends in the live config.", ()),
    "lbsync_servers": ("gauge", "Servers (ready endpoints) in the live config.", ()),
    "lbsync_problems": ("gauge", "Services, ports or annotations left out in the last pass, by level "
                        "(warning: a mistake to fix; info: left out by design, e.g. kube-system).", ("level",)),
    "lbsync_events_total": ("counter", "Kubernetes Event writes by result (created, patched, failed; "
                            "deferred: held back by the rate limit for a later pass).", ("result",)),
    "lbsync_ready": ("gauge", "1 when the last syncs succeeded (see /readyz).", ()),
    # --watch (resource: services | endpointslices | endpoints)
    "lbsync_watch_starts_total": ("counter", "Watch requests opened, by resource and reason (initial; resume: "
                                  "the last one ended normally; 410, silent, cut, error: after trouble and "
                                  "a relist; resync: after a periodic relist).", ("resource", "reason")),
    "lbsync_watch_events_total": ("counter", "Watch events received, by resource and type (ADDED, MODIFIED, "
                                  "DELETED, BOOKMARK).", ("resource", "type")),
    "lbsync_watch_relists_total": ("counter", "Full lists made in watch mode, by resource and reason "
                                   "(initial, 410, silent, cut, error, resync).", ("resource", "reason")),
    "lbsync_watch_resync_differences_total": ("counter", "Periodic relists that found a difference from "
                                              "the watched state: each means a watch event was lost.",
                                              ("resource",)),
    "lbsync_watch_last_event_age_seconds": ("gauge", "Seconds since each watched resource last heard from "
                                            "the API server (an event, a bookmark or a list).", ("resource",)),
}

Labels = Tuple[str, ...]


class Metrics:
    """The values of every metric in DEFINITIONS, plus the liveness and readiness state.

    A metric appears once it was first counted or set, as before prometheus_client: an
    alert on `absent(...)` or on a timestamp that is not there yet keeps working.
    """

    def __init__(self, *, unready_after: int = 3) -> None:
        self._values: Dict[Tuple[str, Labels], List[float]] = {}  # [value] or [count, sum]
        self._lock = threading.Lock()
        self._registry: Optional["prometheus_client.CollectorRegistry"] = None
        self._registry_lock = threading.Lock()
        self.synced_once = False
        self.consecutive_failures = 0
        self.unready_after = unready_after
        self.last_beat = time.monotonic()
        self.stall_after = 300.0  # seconds without a pass starting: the loop is stuck
        # called at each scrape: gauges only known then, e.g. {resource: age} -> a labelled gauge
        self.collectors: List[Callable[[], Iterable[Tuple[str, float, Dict[str, str]]]]] = []
        # called by /healthz: '' when fine, else why lbsync is not healthy
        self.health_checks: List[Callable[[], str]] = []

    @property
    def registry(self) -> "prometheus_client.CollectorRegistry":
        """prometheus_client's registry for these values and the standard process_*, python_*
        metrics, made when first needed (serve() makes it before the first scrape)."""
        with self._registry_lock:
            if self._registry is None:
                import prometheus_client
                registry = prometheus_client.CollectorRegistry()
                for collector in (prometheus_client.ProcessCollector, prometheus_client.PlatformCollector,
                                  prometheus_client.GCCollector):
                    collector(registry=registry)
                registry.register(self)
                self._registry = registry
            return self._registry

    def beat(self) -> None:
        """The sync loop started a pass: it is alive."""
        self.last_beat = time.monotonic()

    @property
    def alive(self) -> bool:
        return time.monotonic() - self.last_beat < self.stall_after

    def _key(self, name: str, labels: Dict[str, str]) -> Tuple[str, Labels]:
        names = DEFINITIONS[name][2]
        if set(labels) != set(names):
            raise ValueError(f"{name} takes labels {names}, not {tuple(labels)}")
        return name, tuple(str(labels[n]) for n in names)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = self._key(name, labels)
        with self._lock:
            self._values.setdefault(key, [0.0])[0] += amount

    def set(self, name: str, value: float, **labels: str) -> None:
        key = self._key(name, labels)
        with self._lock:
            self._values[key] = [float(value)]

    def observe(self, name: str, value: float, **labels: str) -> None:
        """One observation of a summary: its _count and _sum."""
        key = self._key(name, labels)
        with self._lock:
            total = self._values.setdefault(key, [0.0, 0.0])
            total[0], total[1] = total[0] + 1, total[1] + value

    def get(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when never set): `lbsync_syncs_total`, `..._count`, ..."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def collect(self) -> Iterator["prometheus_client.metrics_core.Metric"]:
        """prometheus_client's Collector protocol: the families that have a value."""
        from prometheus_client import metrics_core
        families = {"counter": metrics_core.CounterMetricFamily, "gauge": metrics_core.GaugeMetricFamily,
                    "summary": metrics_core.SummaryMetricFamily}
        for gauges in self.collectors:  # values only known at scrape time
            for name, value, labels in gauges():
                self.set(name, value, **labels)
        with self._lock:
            values = {key: list(v) for key, v in self._values.items()}
        for name, (kind, help_text, label_names) in DEFINITIONS.items():
            family = families[kind](name, help_text, labels=label_names)
            found = sorted((labels, v) for (n, labels), v in values.items() if n == name)
            for labels, v in found:
                if kind == "summary":
                    family.add_metric(list(labels), count_value=v[0], sum_value=v[1])
                else:
                    family.add_metric(list(labels), v[0])
            if found:
                yield family

    def success(self, duration: float) -> None:
        self.synced_once, self.consecutive_failures = True, 0
        self.observe("lbsync_sync_duration_seconds", duration)
        self.set("lbsync_last_sync_duration_seconds", duration)
        self.set("lbsync_last_success_timestamp_seconds", time.time())
        self.set("lbsync_ready", 1.0 if self.ready else 0.0)

    def failure(self) -> None:
        self.consecutive_failures += 1
        self.set("lbsync_ready", 1.0 if self.ready else 0.0)

    @property
    def ready(self) -> bool:
        """Ready once a sync succeeded, and not while syncs keep failing."""
        return self.synced_once and self.consecutive_failures < self.unready_after

    def problems(self) -> List[str]:
        """Why /healthz fails: a stuck loop, or what a health check says."""
        found = [] if self.alive else [
            f"sync loop stuck: no pass started for {time.monotonic() - self.last_beat:.0f}s"]
        return found + [why for why in (check() for check in self.health_checks) if why]

    def text(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        from prometheus_client import exposition
        return exposition.generate_latest(self.registry).decode("utf-8")


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        metrics: Metrics = self.server.metrics  # type: ignore[attr-defined]
        if self.path == "/metrics":
            from prometheus_client import exposition
            encoder, content_type = exposition.choose_encoder(self.headers.get("Accept", ""))
            self._send(200, encoder(metrics.registry), content_type)
        elif self.path == "/healthz":
            problems = metrics.problems()
            self._send(503, "".join(p + "\n" for p in problems)) if problems else self._send(200, "ok\n")
        elif self.path == "/readyz":
            ok = metrics.ready
            why = "ready\n" if ok else ("waiting for the first successful sync\n" if not metrics.synced_once
                                        else f"{metrics.consecutive_failures} syncs failed in a row\n")
            self._send(200 if ok else 503, why)
        else:
            self._send(404, "not found: try /metrics, /healthz or /readyz\n")

    def _send(self, code: int, body, ctype: str = "text/plain; charset=utf-8") -> None:
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - probes are not news
        pass


def serve(metrics: Metrics, bind: str) -> ThreadingHTTPServer:
    """Start the HTTP server in a daemon thread; `bind` is ADDRESS:PORT ('*' = all)."""
    host, _, port = bind.rpartition(":")
    host = "" if host in ("*", "") else host.strip("[]")
    cls = ThreadingHTTPServer
    if ":" in host:
        import socket
        cls = type("_V6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    server = cls((host, int(port)), _Handler)
    server.daemon_threads = True
    server.metrics = metrics  # type: ignore[attr-defined]
    metrics.registry  # noqa: B018 - made now, not at the first scrape
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def status_label(status: Optional[int]) -> str:
    return str(status) if status else "none"
