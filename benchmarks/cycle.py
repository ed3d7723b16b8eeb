"""Benchmark worker: lbsync's sync cycles, measured in a fresh process (run by benchmarks/run.py).

    python benchmarks/cycle.py --kubeconfig KC --workdir DIR [--tls-cert PEM] [--profile PREFIX]

Talks to its parent over stdin/stdout (one JSON object per line): it prints
{"need": "change"} when it wants one endpoint changed in the API and waits for a line
on stdin; the last line is {"result": {...}}. Phases are timed by wrapping the very
functions Syncer.plan() calls (source.fetch, the incremental cache's topology and render,
slots.layout, sync.unified_diff), so the figures are those of the real code path, not a re-enactment.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

T_START = time.monotonic()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from lbsync import slots, sync  # noqa: E402
from lbsync.settings import Settings  # noqa: E402

T_IMPORTED = time.monotonic()


class Phases:
    """Wraps the functions a pass calls and sums the time spent in each."""

    def __init__(self, syncer: sync.Syncer) -> None:
        self.t = {}
        self._wrap(syncer.source, "fetch", "poll")
        self._wrap(syncer.cache, "topology", "model")  # model.build, Parts kept between passes
        self._wrap(slots, "layout", "layout")
        self._wrap(syncer.cache, "render", "render")  # Renderer.render, sections kept between passes
        self._wrap(sync, "unified_diff", "diff")

    def _wrap(self, owner, attr, label):
        inner = getattr(owner, attr)

        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                self.t[label] = self.t.get(label, 0.0) + time.perf_counter() - t0
        setattr(owner, attr, timed)

    def take(self):
        out, self.t = {k: round(v, 4) for k, v in self.t.items()}, {}
        return out


def haproxy_check(path: str, binary: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run([binary, "-c", "-q", "-f", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit("haproxy -c failed on %s:\n%s" % (path, proc.stdout.decode()[-2000:]))
    return min(times)  # the least disturbed run: the machine may be busy with other work


def file_state(path: str):
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def say(doc) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--tls-cert")
    p.add_argument("--haproxy", default="haproxy")
    p.add_argument("--check-repeat", type=int, default=3)
    p.add_argument("--profile", help="write cProfile stats to PREFIX-{cold,warm}.prof")
    args = p.parse_args()
    cfg = os.path.join(args.workdir, "haproxy.cfg")
    if os.path.exists(cfg):
        os.unlink(cfg)
    settings = Settings(kubeconfig=args.kubeconfig, haproxy_config=cfg, http_bind="127.0.0.1:18080",
                        https_bind="127.0.0.1:18443", stats_bind="", tcp_bind_address="127.0.0.1",
                        tls_cert=args.tls_cert, haproxy_log="", haproxy_binary=args.haproxy,
                        deny_networks=())  # the synthetic Pods are on loopback
    syncer = sync.Syncer(settings)  # no master socket, pid file or command: nothing to reload
    phases = Phases(syncer)
    prof = None
    if args.profile:
        import cProfile
        prof = cProfile.Profile()
    out = {"import_s": round(T_IMPORTED - T_START, 4)}

    def measured(label, **kw):
        if prof is not None and label in ("cold", "warm"):
            prof.enable()
        t0 = time.perf_counter()
        result = syncer.run(**kw)
        elapsed = time.perf_counter() - t0
        if prof is not None and label in ("cold", "warm"):
            prof.disable()
            prof.dump_stats("%s-%s.prof" % (args.profile, label))
            prof.clear()
        out[label] = {"total_s": round(elapsed, 4), "phases": phases.take(), "changed": result.changed,
                      "written": result.written, "skipped_render": result.skipped_render,
                      "api_requests": result.api_requests, "api_bytes": result.api_bytes,
                      "backends": result.backends, "servers": result.servers,
                      "duration_s": round(result.duration_s, 4)}
        return result

    # 1. cold: the first pass of a fresh process (poll, model, render, diff), dry run: no write
    measured("cold", dry_run=True)
    # 2. apply: the same pass for real (write to a staged file, haproxy -c, rename)
    measured("apply_first")
    out["config_bytes"] = os.path.getsize(cfg)
    out["config_lines"] = sum(1 for _ in open(cfg, encoding="utf-8"))
    out["haproxy_check_s"] = round(haproxy_check(cfg, args.haproxy, args.check_repeat), 4)
    # 3. unchanged: nothing moved in the API, so no model, no render, no write
    before = file_state(cfg)
    unchanged = []
    for _ in range(3):
        measured("unchanged")
        unchanged.append(out["unchanged"]["total_s"])
    out["unchanged"]["total_s"] = round(min(unchanged), 4)
    out["unchanged"]["file_untouched"] = file_state(cfg) == before
    # 4. warm changed: one endpoint replaced (parent changes it in the API)
    say({"need": "change"})
    sys.stdin.readline()
    measured("warm", dry_run=True)
    measured("apply_warm")
    say({"result": out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
