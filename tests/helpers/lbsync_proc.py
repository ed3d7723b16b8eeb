"""Run `lbsync` as a real process (the daemon), read its JSON log, talk to its metrics port."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Callable, Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class LbsyncProcess:
    """`python -m lbsync ARGS` with JSON logs captured line by line."""

    def __init__(self, args: Sequence[str], *, env: Optional[Dict[str, str]] = None) -> None:
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        self.env.setdefault("PYTHONPATH", ROOT)
        self.events: List[dict] = []
        self.raw: List[str] = []
        self.proc: Optional[subprocess.Popen] = None
        self._lock = threading.Lock()

    def start(self) -> "LbsyncProcess":
        self.proc = subprocess.Popen([sys.executable, "-m", "lbsync", "--log-format", "json", *self.args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env,
                                     cwd=ROOT, text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.raw.append(line)
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    pass

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 10.0, *, after: int = 0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for event in self.events[after:]:
                    if predicate(event):
                        return event
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no matching log event within {timeout}s; log:\n{''.join(self.raw[-40:])}")

    def event(self, name: str, timeout: float = 10.0, *, after: int = 0) -> dict:
        return self.wait_for(lambda e: e.get("event") == name, timeout, after=after)

    def count(self, name: str) -> int:
        with self._lock:
            return sum(1 for e in self.events if e.get("event") == name)

    @property
    def mark(self) -> int:
        with self._lock:
            return len(self.events)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 5.0) -> Optional[int]:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> "LbsyncProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http(url: str, timeout: float = 3.0) -> tuple:
    """(status, body) without proxies; HTTP errors are returned, not raised."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def parse_prometheus(text: str) -> Dict[str, float]:
    """{'name{labels}': value}; raises ValueError on any line that is not the text format."""
    out: Dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        name, _, value = line.rpartition(" ")
        if not name or name.startswith("#"):
            raise ValueError(f"not Prometheus text: {line!r}")
        out[name] = float(value)
    return out
