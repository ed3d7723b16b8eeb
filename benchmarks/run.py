"""lbsync benchmark (issue #7): cycle time against `haproxy -c`, daemon memory, API cost, and
endpoint-change -> traffic latency with a real HAProxy. Run by hand, not by the test suite:

    python benchmarks/run.py --sizes 100,1000,5000 --out docs/performance.md --plot docs/performance.png
    python benchmarks/run.py --quick                      # 100 and 1,000 Services, 5 latency samples

Everything runs on loopback: the fake API server (tests/fakeapi) in this process, serving a
synthetic cluster (benchmarks/synth.py); lbsync's cycles in a fresh worker process
(benchmarks/cycle.py); the daemon (`python -m lbsync`) and HAProxy as subprocesses.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import report, scenarios, synth  # noqa: E402
from tests.fakeapi.server import FakeKubeApi  # noqa: E402
from tests.helpers.backends import Backend, free_port  # noqa: E402
from tests.helpers.haproxy_proc import HAPROXY, HAProxyProcess  # noqa: E402
from tests.helpers.lbsync_proc import LbsyncProcess  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
_changes = iter(range(1, 60000))  # each endpoint change puts a Pod IP never used before


def log(msg: str) -> None:
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# -- environment --------------------------------------------------------------------------------
def machine() -> Dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    hv = subprocess.run([HAPROXY, "-v"], stdout=subprocess.PIPE, text=True).stdout.splitlines()[0]
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": "%.1f GiB" % (mem_kb / 2 ** 20),
            "kernel": platform.release(), "python": platform.python_version(), "haproxy": hv.strip()}


def self_signed(workdir: str) -> str:
    """A PEM (certificate + key) for the HTTPS frontend of the lb.sslTerm Services."""
    key, crt, pem = (os.path.join(workdir, n) for n in ("tls.key", "tls.crt", "tls.pem"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=lbsync-bench", "-keyout", key, "-out", crt],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(pem, "w") as out:
        for part in (crt, key):
            with open(part) as f:
                out.write(f.read())
    return pem


def cluster(n: int, workdir: str):
    api = FakeKubeApi(anonymous=True)
    t0 = time.monotonic()
    counts = synth.populate(api, n)
    api.start()
    kubeconfig = api.write_kubeconfig(os.path.join(workdir, "kubeconfig-%d" % n), auth="none")
    log("cluster of %d Services ready in %.1fs: %s" % (n, time.monotonic() - t0, counts))
    return api, kubeconfig, counts


def proc_status(pid: int) -> Dict[str, int]:
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])  # kB
    return out


def cpu_ticks(pid: int) -> int:
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


# -- 1. cycles, in a fresh worker process ---------------------------------------------------------
def measure_cycles(api: FakeKubeApi, n: int, kubeconfig: str, workdir: str, tls: str,
                   profile: Optional[str] = None) -> Dict:
    wd = tempfile.mkdtemp(prefix="cycle-%d-" % n, dir=workdir)
    argv = [sys.executable, os.path.join(ROOT, "benchmarks", "cycle.py"), "--kubeconfig", kubeconfig,
            "--workdir", wd, "--tls-cert", tls, "--haproxy", HAPROXY]
    if profile:
        argv += ["--profile", profile]
    api.reset_counters()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    result, polls = None, {}
    for line in proc.stdout:
        msg = json.loads(line)
        if msg.get("need") == "change":
            polls = {"requests": api.request_count(), "bytes": api.bytes_sent}  # 5 polls so far
            synth.change_one_endpoint(api, n, step=next(_changes))
            proc.stdin.write("go\n")
            proc.stdin.flush()
        elif "result" in msg:
            result = msg["result"]
    if proc.wait() != 0 or result is None:
        raise SystemExit("cycle worker failed for %d Services" % n)
    if not (result["warm"]["changed"] and result["unchanged"]["skipped_render"]):
        raise SystemExit("%d Services: the warm pass saw no change or the unchanged one rendered: %s" % (n, result))
    result["fake_per_poll"] = {"requests": polls["requests"] / 5, "bytes": polls["bytes"] / 5}
    return result


def best_of(runs: List[Dict]) -> Dict:
    """Per measurement, the fastest of several fresh-process runs (a busy machine only adds time)."""
    best = dict(runs[0])
    for key in ("cold", "warm", "unchanged", "apply_first", "apply_warm"):
        best[key] = min((r[key] for r in runs), key=lambda x: x["total_s"])
    best["haproxy_check_s"] = min(r["haproxy_check_s"] for r in runs)
    best["import_s"] = min(r["import_s"] for r in runs)
    best["runs"] = len(runs)
    best["cold_all_s"] = [r["cold"]["total_s"] for r in runs]
    best["warm_all_s"] = [r["warm"]["total_s"] for r in runs]
    best["haproxy_check_all_s"] = [r["haproxy_check_s"] for r in runs]
    return best


# -- 2. daemon memory ---------------------------------------------------------------------------
def measure_daemon(api: FakeKubeApi, n: int, kubeconfig: str, workdir: str, tls: str) -> Dict:
    cfg = os.path.join(workdir, "daemon-%d.cfg" % n)
    args = ["--kubeconfig", kubeconfig, "--haproxy-config", cfg, "--interval", "1",
            "--http-bind", "127.0.0.1:18080", "--https-bind", "127.0.0.1:18443", "--stats-bind", "",
            "--tcp-bind-address", "127.0.0.1", "--tls-cert", tls, "--haproxy-log", "", "--haproxy-binary", HAPROXY,
            "--deny-networks", "none"]
    with LbsyncProcess(args) as lb:
        lb.event("config.applied", timeout=120)
        synth.change_one_endpoint(api, n, step=next(_changes))
        lb.wait_for(lambda e: e.get("event") == "config.applied", timeout=120, after=lb.mark)
        # three unchanged polls (2 list requests each), with their CPU
        start_req, ticks0 = api.request_count(), cpu_ticks(lb.proc.pid)
        deadline = time.monotonic() + 60
        while api.request_count() < start_req + 8 and time.monotonic() < deadline:
            time.sleep(0.05)  # 4 polls: the first may be the tail of the changed one
        seen = (api.request_count() - start_req) // 2
        ticks = cpu_ticks(lb.proc.pid) - ticks0
        status = proc_status(lb.proc.pid)
        unchanged = sum(1 for e in lb.events if e.get("event") == "config.applied")
        churn = scenarios.measure_churn(api, lb, cfg, cpu_ticks, CLK_TCK)
        peak = proc_status(lb.proc.pid)["VmHWM"]
    return {"VmHWM_MB": peak / 1024, "VmHWM_before_churn_MB": status["VmHWM"] / 1024,
            "VmRSS_MB": status["VmRSS"] / 1024, "idle_poll_cpu_s": ticks / CLK_TCK / max(1, seen),
            "applied": unchanged, "churn": churn}


# -- 3. endpoint change -> traffic at the new Pod -------------------------------------------------
class Load:
    """Keep-alive GETs through HAProxy for the probe host, from a few threads."""

    def __init__(self, port: int, threads: int = 2) -> None:
        self.port, self.ok, self.failed = port, 0, 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(5)

    def _run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/", headers={"Host": synth.PROBE_HOST})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    self.ok += 1
                else:
                    self.failed += 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except Exception:  # noqa: BLE001 - counted, not fatal
                self.failed += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)


def latency_args(kubeconfig: str, cfg: str, http_port: int, tls: str, haproxy: HAProxyProcess,
                 mode: str) -> List[str]:
    """lbsync's arguments in front of the live HAProxy (tests/integration/test_benchmark_loopback.py
    renders with them: every server must be on 127.0.0.0/8)."""
    args = ["--kubeconfig", kubeconfig, "--haproxy-config", cfg, "--http-bind", "127.0.0.1:%d" % http_port,
            "--https-bind", "127.0.0.1:%d" % free_port(), "--tls-cert", tls, "--stats-bind", "",
            "--tcp-bind-address", "127.0.0.1", "--deny-networks", "none", "--haproxy-log", "",
            "--master-socket", haproxy.master_socket, "--haproxy-binary", HAPROXY]
    if mode == "runtime":
        return args + ["--runtime-socket", haproxy.admin_socket]
    return args + ["--min-reload-interval", "0", "--batch-quiet", "0"]


def measure_plain(n: int, workdir: str) -> Dict:
    """The simplest cluster: 1 port per Service, no annotations, no TLS."""
    api = FakeKubeApi(anonymous=True)
    scenarios.populate_plain(api, n)
    with api:
        kubeconfig = api.write_kubeconfig(os.path.join(workdir, "kubeconfig-plain"), auth="none")
        return scenarios.measure_plain(kubeconfig, tempfile.mkdtemp(prefix="plain-", dir=workdir), HAPROXY)


def measure_latency(n: int, mode: str, samples: int, workdir: str, tls: str, seed: int = 11) -> Dict:
    wd = tempfile.mkdtemp(prefix="latency-%s-" % mode, dir=workdir)
    api = FakeKubeApi(anonymous=True)
    synth.populate(api, n)  # Pods on 127.1.x.y: health checks stay on this machine
    pod_port = free_port()
    pods: Dict[str, Backend] = {}

    def pod(ip: str) -> Backend:
        if ip not in pods:
            pods[ip] = Backend(ip, host=ip, port=pod_port).start()
        return pods[ip]

    current = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    for ip in current:
        pod(ip)
    synth.add_probe(api, pod_port, current)
    api.start()
    kubeconfig = api.write_kubeconfig(os.path.join(wd, "kubeconfig"), auth="none")
    cfg = os.path.join(wd, "haproxy.cfg")
    haproxy = HAProxyProcess(cfg, wd)
    http_port = free_port()
    args = latency_args(kubeconfig, cfg, http_port, tls, haproxy, mode)
    rnd = random.Random(seed)
    latencies: List[float] = []
    try:
        once = LbsyncProcess([*args, "--once"]).start()
        if once.proc.wait(120) != 0:
            raise SystemExit("lbsync --once failed:\n" + "".join(once.raw[-20:]))
        haproxy.start()
        with LbsyncProcess([*args, "--interval", "1"]) as lb, Load(http_port) as load:
            lb.event("daemon.started", timeout=30)
            time.sleep(2.0)
            next_ip = 5
            for _ in range(samples):
                new = "127.0.0.%d" % next_ip
                next_ip = next_ip + 1 if next_ip < 250 else 5
                before = len(pod(new).requests)
                current = current[1:] + [new]  # one Pod replaced by a new one
                t0 = time.monotonic()
                api.set_endpoints(synth.PROBE_NS, synth.PROBE_NAME, ready=current)
                deadline = t0 + 30
                while len(pods[new].requests) == before:
                    if time.monotonic() > deadline:
                        raise SystemExit("no traffic at %s within 30s (%s mode):\n%s" % (
                            new, mode, "".join(lb.raw[-20:])))
                    time.sleep(0.002)
                latencies.append(time.monotonic() - t0)
                time.sleep(rnd.uniform(0.2, 1.2))  # the next change lands at a random point of the poll
            reloads = sum(1 for e in lb.events if e.get("event") == "config.applied" and e.get("reloaded"))
            runtime = sum(1 for e in lb.events if e.get("event") == "config.applied" and e.get("runtime_updates"))
            ok, failed = load.ok, load.failed
    finally:
        haproxy.stop()
        api.stop()
        for b in pods.values():
            b.stop()
    return {"median_s": statistics.median(latencies), "worst_s": max(latencies), "samples": len(latencies),
            "all_s": [round(x, 4) for x in latencies], "reloads": reloads, "runtime_applied": runtime,
            "requests_ok": ok, "requests_failed": failed}


# -- report -------------------------------------------------------------------------------------
def profile_top(prefix: str, label: str, limit: int = 12) -> str:
    import io
    import pstats
    path = "%s-%s.prof" % (prefix, label)
    if not os.path.exists(path):
        return ""
    buf = io.StringIO()
    stats = pstats.Stats(path, stream=buf)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    return buf.getvalue()


def ms(x: float) -> str:
    return "%.0f ms" % (x * 1000) if x >= 0.0995 else "%.1f ms" % (x * 1000)


def write_report(path: str, env: Dict, command: str, rows: List[Dict], latency: Dict, plot: Optional[str],
                 latency_size: int, started: float, extra: List[str]) -> None:
    phases = ("poll", "model", "layout", "render", "diff")
    lines = [
        "# Performance",
        "",
        "Measured by `benchmarks/run.py` (issue #7) on loopback: the fake API server serves a "
        "synthetic cluster (benchmarks/synth.py: 10 ready endpoints per Service, 1-3 ports, ~40% "
        "`lb.host`, ~10% sticky, ~5% `lb.sslTerm`, ~15% `lb.check-path`, ~1% `lb.tcp`, ~3% "
        "`lb.ignore`, half with kubectl's last-applied-configuration); lbsync runs in a fresh process.",
        "",
        "## Machine",
        "",
        "| | |", "|---|---|",
        *["| %s | %s |" % (k, v) for k, v in env.items()],
        "",
        "## Reproduce",
        "",
        "```sh",
        "pip install -e '.[bench]'   # matplotlib, for the plot",
        command,
        "```",
        "",
        "Took %.0f s." % (time.monotonic() - started),
        "",
        "## Sync cycle against `haproxy -c`",
        "",
        "*Cycle* = poll (2 list requests) + model + slot layout + render + diff, the first pass of a "
        "fresh process (cold) and a pass after one endpoint changed (warm); both dry runs, so no "
        "write and no `haproxy -c` inside. *haproxy -c* = `haproxy -c -q -f` on the rendered file. "
        "*Unchanged* = a pass over an unchanged cluster. *Apply* = a real pass that writes: render, "
        "stage, `haproxy -c`, rename. Each figure is the best of %d fresh worker processes (3 runs "
        "of `haproxy -c` each): the machine was shared with other work, which only ever adds time; "
        "all runs are in the JSON output (`--json`)." % rows[0]["cycles"].get("runs", 1),
        "",
        "| Services | backends / servers | config | cold cycle | warm cycle | haproxy -c | cold / -c "
        "| warm / -c | unchanged pass | apply (incl. -c) | requests / poll | bytes / poll | daemon peak RSS "
        "| daemon CPU / idle poll |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c = r["cycles"]
        lines.append("| {n:,} | {b:,} / {s:,} | {kb:,.0f} kB, {ln:,} lines | {cold} | {warm} | {chk} | {rc:.2f} "
                     "| {rw:.2f} | {un} (render skipped: {sk}, file untouched: {ft}) | {ap} | {rq:g} | {by:,.0f} "
                     "| {rss:.0f} MB | {cpu} |".format(
                         n=r["n"], b=c["cold"]["backends"], s=c["cold"]["servers"], kb=c["config_bytes"] / 1024,
                         ln=c["config_lines"], cold=ms(c["cold"]["total_s"]), warm=ms(c["warm"]["total_s"]),
                         chk=ms(c["haproxy_check_s"]), rc=c["cold"]["total_s"] / c["haproxy_check_s"],
                         rw=c["warm"]["total_s"] / c["haproxy_check_s"], un=ms(c["unchanged"]["total_s"]),
                         sk="yes" if c["unchanged"]["skipped_render"] else "**no**",
                         ft="yes" if c["unchanged"]["file_untouched"] else "**no**",
                         ap=ms(c["apply_first"]["total_s"]), rq=c["cold"]["api_requests"],
                         by=c["cold"]["api_bytes"], rss=r["daemon"]["VmHWM_MB"],
                         cpu=ms(r["daemon"]["idle_poll_cpu_s"])))
    lines += ["", "Phases (ms), cold / warm:", "",
              "| Services | " + " | ".join(phases) + " | process start + imports |",
              "|---:|" + "---:|" * (len(phases) + 1)]
    for r in rows:
        c = r["cycles"]
        lines.append("| {:,} | ".format(r["n"]) + " | ".join(
            "%.0f / %.0f" % (c["cold"]["phases"].get(p, 0) * 1000, c["warm"]["phases"].get(p, 0) * 1000)
            for p in phases) + " | %.0f |" % (c["import_s"] * 1000))
    if len(rows) >= 2:
        by_n = {r["n"]: r for r in rows}
        if 1000 in by_n and 5000 in by_n:
            a, b = by_n[1000]["cycles"], by_n[5000]["cycles"]
            lines += ["", "Growth 1,000 -> 5,000 Services (5x): cold cycle x%.2f, warm cycle x%.2f, "
                      "haproxy -c x%.2f, daemon peak RSS x%.2f." % (
                          b["cold"]["total_s"] / a["cold"]["total_s"], b["warm"]["total_s"] / a["warm"]["total_s"],
                          b["haproxy_check_s"] / a["haproxy_check_s"],
                          by_n[5000]["daemon"]["VmHWM_MB"] / by_n[1000]["daemon"]["VmHWM_MB"])]
    lines += ["", "API cost cross-checked with the fake server's own counters (requests and body bytes it "
              "sent, averaged over 5 polls): " + "; ".join(
                  "{:,} Services: {:g} requests, {:,.0f} bytes".format(
                      r["n"], r["cycles"]["fake_per_poll"]["requests"], r["cycles"]["fake_per_poll"]["bytes"])
                  for r in rows) + ".",
              "",
              "*Daemon peak RSS* = `VmHWM` of `python -m lbsync --interval 1` (no HAProxy to reload) "
              "after its first pass, one changed pass, three unchanged polls and the churn polls below. "
              "*CPU / idle poll* = "
              "user + system time of the daemon per unchanged poll."]
    lines += extra
    if latency:
        lines += ["", "## Endpoint change -> traffic at the new Pod", "",
                  "A real HAProxy (master-worker) in front of loopback Pods (127.0.0.x), the %d-Service "
                  "cluster plus one probe Service; lbsync polls every second (`--interval 1`). Each "
                  "sample replaces one of the probe's 3 Pods with a new one in the API and times until "
                  "the new Pod receives a request (2 client threads, keep-alive); the next change "
                  "follows after a random 0.2-1.2 s so changes land at random points of the poll." % latency_size,
                  "",
                  "| Applied by | median | worst | samples | reloads | client requests ok / failed |",
                  "|---|---:|---:|---:|---:|---:|"]
        for mode, label in (("runtime", "Runtime API (`--runtime-socket`)"),
                            ("reload", "reload (`--min-reload-interval 0 --batch-quiet 0`)")):
            if mode in latency:
                x = latency[mode]
                lines.append("| %s | %s | %s | %d | %d | %d / %d |" % (
                    label, ms(x["median_s"]), ms(x["worst_s"]), x["samples"], x["reloads"],
                    x["requests_ok"], x["requests_failed"]))
        lines += ["", "Most of this is the poll interval: a change waits on average half an interval "
                  "for the next poll."]
    if plot:
        lines += ["", "## Plot", "", "![cycle time and memory against cluster size](%s)" % os.path.basename(plot)]
    # the hand-written part (what was changed, what was not reached) is kept from the old file
    lines += ["", _hand_written(path)]
    with open(path, "w") as f:
        f.write("\n".join(lines))


HAND_WRITTEN = "## What was changed to reach these figures"


def _hand_written(path: str) -> str:
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    if HAND_WRITTEN in old:
        return old[old.index(HAND_WRITTEN):].rstrip() + "\n"
    return HAND_WRITTEN + "\n\n(describe the changes behind these figures here)\n"


def write_plot(path: str, rows: List[Dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ns = [r["n"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(ns, [r["cycles"]["cold"]["total_s"] * 1000 for r in rows], "o-", label="lbsync cold cycle")
    ax1.plot(ns, [r["cycles"]["warm"]["total_s"] * 1000 for r in rows], "s-", label="lbsync warm cycle")
    ax1.plot(ns, [r["cycles"]["haproxy_check_s"] * 1000 for r in rows], "^--", label="haproxy -c")
    ax1.plot(ns, [r["cycles"]["unchanged"]["total_s"] * 1000 for r in rows], "x:", label="unchanged poll")
    ax1.set_xlabel("Services (x10 endpoints)")
    ax1.set_ylabel("ms")
    ax1.set_title("Sync cycle time")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(ns, [r["daemon"]["VmHWM_MB"] for r in rows], "o-", color="tab:red", label="daemon peak RSS")
    ax2.axhline(150, color="grey", linestyle="--", label="150 MB target")
    ax2.set_xlabel("Services (x10 endpoints)")
    ax2.set_ylabel("MB")
    ax2.set_title("lbsync daemon memory")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,1000,2000,5000", help="Service counts, comma-separated")
    p.add_argument("--plain-size", type=int, default=1000, help="Services of the plain workload (1 port, no TLS)")
    p.add_argument("--source-size", type=int, default=5000,
                   help="at this size, also time --source with kubectl's YAML and JSON dumps")
    p.add_argument("--watch-size", type=int, default=5000,
                   help="also time a cold and 5 warm passes with --watch at this size (0: not)")
    p.add_argument("--latency-size", type=int, default=100, help="cluster size of the latency test")
    p.add_argument("--latency-samples", type=int, default=20)
    p.add_argument("--no-latency", action="store_true")
    p.add_argument("--quick", action="store_true", help="sizes 100,1000 and 5 latency samples")
    p.add_argument("--repeat", type=int, default=3,
                   help="cycle measurements per size, each in a fresh process; the best is reported")
    p.add_argument("--out", default=None, help="write the Markdown report here")
    p.add_argument("--plot", default=None, help="write the PNG plot here")
    p.add_argument("--json", default=None, help="write the raw figures here")
    p.add_argument("--profile", default=None, metavar="DIR",
                   help="also profile (cProfile) the cold and warm cycles of each size into DIR")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.latency_samples, args.source_size, args.watch_size = "100,1000", 5, 1000, 1000
    sizes = [int(s) for s in args.sizes.split(",") if s]
    started = time.monotonic()
    shown = [a for a in (argv if argv is not None else sys.argv[1:])]
    if "--json" in shown:  # where the raw figures went is no part of the recipe
        i = shown.index("--json")
        del shown[i:i + 2]
    command = "python benchmarks/run.py " + " ".join(shown)
    env = machine()
    log("machine: %s" % env)
    workdir = tempfile.mkdtemp(prefix="lbsync-bench-")
    try:
        tls = self_signed(workdir)
        rows: List[Dict] = []
        sources: Dict = {}
        for n in sizes:
            api, kubeconfig, counts = cluster(n, workdir)
            try:
                cycles = best_of([measure_cycles(api, n, kubeconfig, workdir, tls) for _ in range(args.repeat)])
                log("%d: cold %.3fs warm %.3fs haproxy -c %.3fs unchanged %.3fs (skipped render %s) "
                    "phases cold %s warm %s" % (n, cycles["cold"]["total_s"], cycles["warm"]["total_s"],
                                                cycles["haproxy_check_s"], cycles["unchanged"]["total_s"],
                                                cycles["unchanged"]["skipped_render"], cycles["cold"]["phases"],
                                                cycles["warm"]["phases"]))
                if args.profile:
                    os.makedirs(args.profile, exist_ok=True)
                    prefix = os.path.join(os.path.abspath(args.profile), "cycle-%d" % n)
                    measure_cycles(api, n, kubeconfig, workdir, tls, profile=prefix)
                    for label in ("cold", "warm"):
                        with open("%s-%s.txt" % (prefix, label), "w") as f:
                            f.write(profile_top(prefix, label, 30))
                    log("profiles in %s-{cold,warm}.{prof,txt}" % prefix)
                daemon = measure_daemon(api, n, kubeconfig, workdir, tls)
                log("%d: daemon peak RSS %.1f MB, idle poll CPU %.3fs, churn %s" % (
                    n, daemon["VmHWM_MB"], daemon["idle_poll_cpu_s"], daemon["churn"]))
                if n == args.source_size:
                    sources = scenarios.measure_source(kubeconfig, workdir)
                    log("--source at %d: %s" % (n, sources))
            finally:
                api.stop()
            rows.append({"n": n, "annotations": counts, "cycles": cycles, "daemon": daemon})
        watched = scenarios.measure_watch_cycle(args.watch_size) if args.watch_size else {}
        if watched:
            log("--watch at %d: cold %.3fs, warm %s" % (args.watch_size, watched["cold_s"], watched["warm_s"]))
        plain = measure_plain(args.plain_size, workdir)
        log("plain workload at %d: %s" % (args.plain_size, plain))
        latency = {}
        if not args.no_latency:
            for mode in ("runtime", "reload"):
                latency[mode] = measure_latency(args.latency_size, mode, args.latency_samples, workdir, tls)
                log("latency %s: median %.3fs worst %.3fs (%s)" % (
                    mode, latency[mode]["median_s"], latency[mode]["worst_s"], latency[mode]["all_s"]))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"machine": env, "rows": rows, "latency": latency, "plain": plain,
                           "sources": sources, "watch_cycle": watched}, f, indent=1)
        if args.plot:
            write_plot(args.plot, rows)
        if args.out:
            extra = report.scenarios(rows, plain, args.plain_size, sources, args.source_size, watched)
            write_report(args.out, env, command, rows, latency, args.plot, args.latency_size, started, extra)
            log("wrote %s" % args.out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
