"""Counters and gauges in Prometheus text format, and the /metrics, /healthz, /readyz server.

Thread-safe: the sync loop writes, the HTTP server thread reads. No client library:
the text format is small and stable, and one dependency fewer is one less to patch.
"""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Optional, Tuple

Labels = Tuple[Tuple[str, str], ...]

_HELP = {
    "lbsync_syncs_total": ("counter", "Sync passes by result (changed, unchanged, failed, deferred)."),
    "lbsync_reloads_total": ("counter", "HAProxy reloads by result (success, failure)."),
    "lbsync_runtime_updates_total": ("counter", "Server slot changes over the Runtime API, by result "
                                     "(success; fallback_to_reload when HAProxy's answer was unexpected)."),
    "lbsync_api_errors_total": ("counter", "Failed polls of the Kubernetes API by HTTP status ('none': no answer)."),
    "lbsync_api_requests_total": ("counter", "HTTP requests made to the Kubernetes API."),
    "lbsync_api_bytes_total": ("counter", "Response bytes read from the Kubernetes API."),
    "lbsync_sync_duration_seconds": ("summary", "Seconds spent in successful sync passes."),
    "lbsync_last_sync_duration_seconds": ("gauge", "Duration of the last successful pass."),
    "lbsync_last_success_timestamp_seconds": ("gauge", "Unix time of the last successful pass."),
    "lbsync_backends": ("gauge", "Backends in the live config."),
    "lbsync_servers": ("gauge", "Servers (ready endpoints) in the live config."),
    "lbsync_problems": ("gauge", "Services, ports or annotations left out in the last pass, by level "
                        "(warning: a mistake to fix; info: left out by design, e.g. kube-system)."),
    "lbsync_events_total": ("counter", "Kubernetes Event writes by result (created, patched, failed; "
                            "deferred: held back by the rate limit for a later pass)."),
    "lbsync_ready": ("gauge", "1 when the last syncs succeeded (see /readyz)."),
}


class Metrics:
    """Named values with labels; `text()` renders the exposition format."""

    def __init__(self, *, unready_after: int = 3) -> None:
        self._values: Dict[Tuple[str, Labels], float] = {}
        self._lock = threading.Lock()
        self.synced_once = False
        self.consecutive_failures = 0
        self.unready_after = unready_after
        self.last_beat = time.monotonic()
        self.stall_after = 300.0  # seconds without a pass starting: the loop is stuck

    def beat(self) -> None:
        """The sync loop started a pass: it is alive."""
        self.last_beat = time.monotonic()

    @property
    def alive(self) -> bool:
        return time.monotonic() - self.last_beat < self.stall_after

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = float(value)

    def get(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    def success(self, duration: float) -> None:
        self.synced_once, self.consecutive_failures = True, 0
        self.inc("lbsync_sync_duration_seconds_sum", duration)
        self.inc("lbsync_sync_duration_seconds_count")
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

    def text(self) -> str:
        with self._lock:
            items = sorted(self._values.items())
        lines, seen = [], set()
        for (name, labels), value in items:
            family = _family(name)
            if family not in seen:
                seen.add(family)
                kind, help_text = _HELP.get(family, ("untyped", family))
                lines += [f"# HELP {family} {help_text}", f"# TYPE {family} {kind}"]
            label_text = ",".join(f'{k}="{v}"' for k, v in labels)
            number = str(int(value)) if value.is_integer() else repr(value)
            lines.append(f"{name}{{{label_text}}} {number}" if labels else f"{name} {number}")
        return "\n".join(lines) + "\n"


def _family(name: str) -> str:
    for suffix in ("_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and _HELP.get(base, ("",))[0] == "summary":
            return base
    return name


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        metrics: Metrics = self.server.metrics  # type: ignore[attr-defined]
        if self.path == "/metrics":
            self._send(200, metrics.text(), "text/plain; version=0.0.4; charset=utf-8")
        elif self.path == "/healthz":
            stuck = time.monotonic() - metrics.last_beat
            self._send(200, "ok\n") if metrics.alive else self._send(
                503, f"sync loop stuck: no pass started for {stuck:.0f}s\n")
        elif self.path == "/readyz":
            ok = metrics.ready
            why = "ready\n" if ok else ("waiting for the first successful sync\n" if not metrics.synced_once
                                        else f"{metrics.consecutive_failures} syncs failed in a row\n")
            self._send(200 if ok else 503, why)
        else:
            self._send(404, "not found: try /metrics, /healthz or /readyz\n")

    def _send(self, code: int, body: str, ctype: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
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
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def status_label(status: Optional[int]) -> str:
    return str(status) if status else "none"
