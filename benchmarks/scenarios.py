"""Benchmark scenarios beside the cycle measurements of run.py (issue #11): a plain workload,
revision churn, and `--source` YAML against JSON. Each runs lbsync as a fresh process, the way a
user runs it, and returns plain figures for the report.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Sequence, Tuple

from benchmarks import synth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_ARGS = ["--http-bind", "127.0.0.1:18080", "--stats-bind", "", "--haproxy-log", "",
             "--tcp-bind-address", "127.0.0.1", "--deny-networks", "none"]  # synthetic Pods are on loopback


def timed(argv: Sequence[str], *, stdout=subprocess.DEVNULL) -> Tuple[float, float, int]:
    """(wall s, CPU s, peak RSS MB) of one child process; raises if it fails."""
    with tempfile.TemporaryFile() as log:  # not a pipe: a child logging a lot would block on it
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=stdout, stderr=log, cwd=ROOT)
        peak = 0
        while True:  # VmHWM only grows: its last reading is the peak (wait4's ru_maxrss would
            peak = max(peak, _vm_hwm_mb(proc.pid))  # include this big parent's RSS at fork)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        err = log.read().decode(errors="replace")
    code = proc.returncode
    if code not in (0, 1):  # --dry-run exits 1 when the config would change
        raise SystemExit("%s failed (%d):\n%s" % (" ".join(argv), code, err[-2000:]))
    return wall, usage.ru_utime + usage.ru_stime, peak


def _vm_hwm_mb(pid: int) -> int:
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def best(runs: int, argv: Sequence[str]) -> Tuple[float, float, int]:
    return min((timed(argv) for _ in range(runs)), key=lambda r: r[0])


def lbsync(*args: str) -> List[str]:
    return [sys.executable, "-m", "lbsync", "--log-format", "json", *args]


# -- plain workload: 1 port per Service, no annotations, no TLS --------------------------------
def populate_plain(api, n: int, endpoints: int = 10) -> None:
    for i in range(n):
        ns = "plain-%03d" % (i % max(1, n // 50))
        api.add_service("svc-%05d" % i, ns, [("http", 80, 8080)])
        api.set_endpoints(ns, "svc-%05d" % i, ready=synth.pod_ips(i, endpoints))


def measure_plain(kubeconfig: str, workdir: str, haproxy: str, runs: int = 3) -> Dict:
    """`lbsync --once --dry-run` (from no file) net of start-up, against `haproxy -c` on its output."""
    cfg = os.path.join(workdir, "plain.cfg")
    args = ["--kubeconfig", kubeconfig, "--haproxy-config", cfg, "--haproxy-binary", haproxy, *BASE_ARGS]
    start = best(runs, lbsync("--version"))
    dry = best(runs, lbsync(*args, "--once", "--dry-run"))
    timed(lbsync(*args, "--once"))  # writes the file haproxy -c then reads
    check = best(runs, [haproxy, "-c", "-q", "-f", cfg])
    with open(cfg) as f:
        servers = sum(1 for line in f if line.startswith("    server "))
    return {"dry_run_s": dry[0], "startup_s": start[0], "net_s": dry[0] - start[0], "haproxy_check_s": check[0],
            "ratio": (dry[0] - start[0]) / check[0], "servers": servers, "peak_rss_mb": dry[2]}


# -- revision churn: the global resourceVersion moves on, nothing else changes -----------------
def measure_churn(api, lb, cfg: str, cpu_ticks: Callable[[int], int], clk_tck: int, polls: int = 5) -> Dict:
    """CPU per poll of a running daemon (`--interval 1`), quiet and then with the revision moving
    every 0.25 s; the config file must stay untouched."""
    quiet = _cpu_per_poll(api, lb, cpu_ticks, clk_tck, polls)
    before, mark = _file_state(cfg), lb.mark
    stop = api.churn(0.25)
    try:
        churn = _cpu_per_poll(api, lb, cpu_ticks, clk_tck, polls)
    finally:
        stop.set()
    return {"quiet_poll_cpu_s": quiet, "churn_poll_cpu_s": churn, "ratio": churn / quiet,
            "file_untouched": _file_state(cfg) == before,
            "applied_during_churn": sum(1 for e in lb.events[mark:] if e.get("event") == "config.applied")}


def _cpu_per_poll(api, lb, cpu_ticks, clk_tck: int, polls: int) -> float:
    time.sleep(1.2)  # let a poll in progress finish
    start_req, ticks0 = api.request_count(), cpu_ticks(lb.proc.pid)
    deadline = time.monotonic() + 30 + 3 * polls
    while api.request_count() < start_req + 2 * polls and time.monotonic() < deadline:
        time.sleep(0.02)
    done = (api.request_count() - start_req) // 2
    return (cpu_ticks(lb.proc.pid) - ticks0) / clk_tck / max(1, done)


def _file_state(path: str) -> Tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


# -- `--source` YAML against JSON: what `kubectl get services,endpointslices -A -o yaml` prints --
def measure_source(kubeconfig: str, workdir: str, runs: int = 2) -> Dict:
    out: Dict[str, Dict] = {}
    for fmt in ("json", "yaml"):
        dump = os.path.join(workdir, "dump.%s" % fmt)
        with open(dump, "w") as f:
            subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "get", "services,endpointslices", "-A",
                            "-o", fmt], stdout=f, check=True)
        read = best(runs, [sys.executable, os.path.join(ROOT, "benchmarks", "source_read.py"), dump])
        once = best(runs, lbsync("--source", dump, "--haproxy-config", os.path.join(workdir, "src.cfg"),
                                 *BASE_ARGS, "--once", "--dry-run"))
        out[fmt] = {"bytes": os.path.getsize(dump), "read_s": read[0], "read_rss_mb": read[2],
                    "once_s": once[0], "once_rss_mb": once[2]}
        os.unlink(dump)
    out["ratio_read"] = out["yaml"]["read_s"] / out["json"]["read_s"]
    out["ratio_once"] = out["yaml"]["once_s"] / out["json"]["once_s"]
    return out


# -- the warm pass with --watch: no list to read, the store's snapshot (benchmarks/watch_cycle.py) --
def measure_watch_cycle(services: int, changes: int = 5) -> Dict:
    """A cold pass and `changes` warm ones with `--watch`, in a fresh process with its own cluster."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "watch_cycle.py"), "--services",
                           str(services), "--changes", str(changes), "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit("watch_cycle.py failed:\n" + proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])
