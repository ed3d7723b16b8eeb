"""Watch-mode benchmark (issue #12): endpoint change -> traffic latency with --watch beside
polling, the API cost of an idle watch, and a soak. Run by hand, not by the test suite:

    python benchmarks/watch.py --out docs/performance.md                     # the full recipe
    python benchmarks/watch.py --samples 5 --idle-minutes 1 --soak-minutes 2  # a quick look

Everything on loopback: the fake API server in this process, a real HAProxy (master-worker,
Runtime API) and lbsync as subprocesses. Every endpoint of the synthetic cluster is an
address in 127.0.0.0/8 (a live HAProxy health-checks its servers: that traffic must stay on
this host); only the probe Service's Pods listen. Health checks are off in the benchmark's
template (see unchecked_template). Writes its own section of the report,
between WATCH_START and WATCH_END, and leaves the rest of the file alone.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import synth  # noqa: E402
from benchmarks.run import Load, log, machine, proc_status, self_signed  # noqa: E402
from lbsync.kube import ApiSource, credentials  # noqa: E402
from tests.fakeapi.server import FakeKubeApi  # noqa: E402
from tests.helpers.backends import Backend, free_port  # noqa: E402
from tests.helpers.haproxy_proc import HAPROXY, HAProxyProcess  # noqa: E402
from tests.helpers.lbsync_proc import LbsyncProcess, http, parse_prometheus  # noqa: E402

WATCHED = ("/services", "/endpointslices", "/endpoints")
WATCH_START, WATCH_END = "<!-- watch-benchmark:start -->", "<!-- watch-benchmark:end -->"


def loopback(ips: List[str]) -> List[str]:
    """synth's 10.x Pod addresses moved into 127.0.0.0/8, one for one."""
    return ["127." + ip.split(".", 1)[1] for ip in ips]


def unchecked_template(workdir: str) -> str:
    """The bundled template without health checks. HAProxy reserves a file descriptor per
    checked server: the ~25,000 server slots of 1,000 Services x 10 endpoints need ~27,000,
    over the 20,000 fd hard limit of the benchmark machine. Checks play no part in what is
    measured (a server set `ready` over the Runtime API takes traffic at once either way)."""
    marker, found = "default-server check inter", False
    folder = os.path.join(workdir, "templates")
    shutil.copytree(os.path.join(ROOT, "templates"), folder, dirs_exist_ok=True)  # includes resolve here
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        with open(path) as f:
            text = f.read()
        if marker in text:
            found = True
            with open(path, "w") as f:
                f.write(text.replace(marker, "default-server inter"))
    if not found:
        raise SystemExit("the bundled templates changed: %r not found" % marker)
    return os.path.join(folder, "haproxy.cfg.j2")


class Rig:
    """The synthetic cluster (n Services x 10 endpoints) plus the probe, a live HAProxy."""

    def __init__(self, n: int, workdir: str, tls: str, *, bookmark_interval: float = 60.0) -> None:
        os.makedirs(workdir, exist_ok=True)
        self.n, self.wd = n, workdir
        self.api = FakeKubeApi(anonymous=True, bookmark_interval=bookmark_interval)
        self.specs = list(synth.service_specs(n))
        for ns, name, ports, ann, ips in self.specs:
            self.api.add_service(name, ns, ports, labels={"app": name, "tier": "bench"}, annotations=ann or None)
            self.api.set_endpoints(ns, name, ready=loopback(ips))
        self.pod_port = free_port()
        self.pods: Dict[str, Backend] = {}
        self.current = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        for ip in self.current:
            self.pod(ip)
        synth.add_probe(self.api, self.pod_port, self.current)
        self.api.start()
        self.kubeconfig = self.api.write_kubeconfig(os.path.join(workdir, "kubeconfig"), auth="none")
        self.cfg = os.path.join(workdir, "haproxy.cfg")
        self.haproxy = HAProxyProcess(self.cfg, workdir)
        self.http = free_port()
        self.metrics = free_port()
        self.common = ["--kubeconfig", self.kubeconfig, "--http-bind", "127.0.0.1:%d" % self.http,
                       "--https-bind", "127.0.0.1:%d" % free_port(), "--tls-cert", tls, "--stats-bind", "",
                       "--tcp-bind-address", "127.0.0.1", "--deny-networks", "none", "--haproxy-log", "",
                       "--haproxy-binary", HAPROXY, "--runtime-socket", self.haproxy.admin_socket,
                       "--template", unchecked_template(workdir),
                       "--no-events"]  # Kubernetes Events (issue 14) are writes of their own, not the watch's cost
        self.step = 0

    def pod(self, ip: str) -> Backend:
        if ip not in self.pods:
            self.pods[ip] = Backend(ip, host=ip, port=self.pod_port).start()
        return self.pods[ip]

    def start(self) -> "Rig":
        once = LbsyncProcess([*self.common, "--haproxy-config", self.cfg, "--once"]).start()
        if once.proc.wait(300) != 0:
            raise SystemExit("lbsync --once failed:\n" + "".join(once.raw[-20:]))
        self.haproxy.start()
        return self

    def daemon(self, *extra: str) -> LbsyncProcess:
        return LbsyncProcess([*self.common, "--haproxy-config", self.cfg, "--master-socket",
                              self.haproxy.master_socket, "--metrics-bind", "127.0.0.1:%d" % self.metrics, *extra])

    def change_endpoint(self, rnd: random.Random) -> None:
        """One Pod of a random Service replaced by a new (loopback) address."""
        self.step += 1
        ns, name, _, _, ips = self.specs[rnd.randrange(len(self.specs))]
        moved = loopback(ips)
        moved[-1] = "127.250.%d.%d" % (self.step // 250 % 250, self.step % 250 + 1)
        self.api.set_endpoints(ns, name, ready=moved)

    def churn(self, rnd: random.Random) -> None:
        """Revision churn: an EndpointSlice written again unchanged (a new resourceVersion)."""
        ns, name, *_ = self.specs[rnd.randrange(len(self.specs))]
        for slice_name in self.api.store.slice_names(ns, name)[:1]:
            self.api.put(dict(self.api.store.get("endpointslices", ns, slice_name)))

    def metric_values(self) -> Dict[str, float]:
        return parse_prometheus(http("http://127.0.0.1:%d/metrics" % self.metrics)[1])

    def close(self) -> None:
        self.haproxy.stop()
        self.api.stop()
        for b in self.pods.values():
            b.stop()


# -- 1. endpoint change -> traffic ---------------------------------------------------------------
def latency(rig: Rig, mode: str, samples: int, seed: int = 11) -> Dict:
    extra = ["--watch", "--interval", "60"] if mode == "watch" else ["--interval", "1"]
    rnd = random.Random(seed)
    latencies: List[float] = []
    next_ip = 5 + 40 * (mode == "watch")
    with rig.daemon(*extra) as lb, Load(rig.http) as load:
        lb.event("daemon.started", timeout=60)
        time.sleep(3.0)
        mark = lb.mark
        machine_load = os.getloadavg()  # the machine may be shared: its load goes beside the figures
        for _ in range(samples):
            new = "127.0.0.%d" % next_ip
            next_ip += 1
            before = len(rig.pod(new).requests)
            rig.current = rig.current[1:] + [new]
            t0 = time.monotonic()
            rig.api.set_endpoints(synth.PROBE_NS, synth.PROBE_NAME, ready=rig.current)
            while len(rig.pods[new].requests) == before:
                if time.monotonic() > t0 + 30:
                    raise SystemExit("no traffic at %s within 30s (%s):\n%s" % (new, mode, "".join(lb.raw[-20:])))
                time.sleep(0.001)
            latencies.append(time.monotonic() - t0)
            time.sleep(rnd.uniform(0.2, 1.2))  # changes land at random points of a poll
        applied = [e for e in lb.events[mark:] if e.get("event") == "config.applied"]
        ok, failed = load.ok, load.failed
    return {"median_s": statistics.median(latencies), "worst_s": max(latencies), "samples": len(latencies),
            "all_s": [round(x, 4) for x in latencies], "reloads": sum(1 for e in applied if e.get("reloaded")),
            "requests_ok": ok, "requests_failed": failed, "load_before": [round(x, 2) for x in machine_load],
            "load_after": [round(x, 2) for x in os.getloadavg()]}


def latencies_on(rig: Rig, samples: int) -> Dict[str, Dict]:
    out = {}
    for mode in ("watch", "poll"):
        out[mode] = latency(rig, mode, samples)
        log("latency %d %s: median %.3fs worst %.3fs %s" % (rig.n, mode, out[mode]["median_s"],
                                                           out[mode]["worst_s"], out[mode]["all_s"]))
    return out


def latencies(n: int, workdir: str, tls: str, samples: int) -> Dict[str, Dict]:
    """Latency at another cluster size, on a rig of its own."""
    rig = Rig(n, os.path.join(workdir, str(n)), tls).start()
    try:
        return latencies_on(rig, samples)
    finally:
        rig.close()


# -- 2. idle -----------------------------------------------------------------------------------------
def one_poll_bytes(rig: Rig) -> int:
    before = rig.api.bytes_sent
    with ApiSource(credentials.load(rig.kubeconfig, env={})) as src:
        src.fetch()
    return rig.api.bytes_sent - before


def idle(rig: Rig, minutes: float) -> Dict:
    with rig.daemon("--watch", "--interval", "60") as lb:
        lb.event("daemon.started", timeout=60)
        time.sleep(5.0)
        rig.api.reset_counters()
        t0 = time.monotonic()
        time.sleep(minutes * 60)
        elapsed = time.monotonic() - t0
        requests = rig.api.requests
        total, stream = rig.api.bytes_sent, rig.api.stream_bytes_sent
        m = rig.metric_values()
    reads = [r for r in requests if r.method == "GET" and r.path.endswith(WATCHED)]
    lists = [r for r in reads if r.query.get("watch") is None]
    relists: Dict[str, float] = {}
    for key, value in m.items():
        if key.startswith("lbsync_watch_relists_total"):
            reason = key.split('reason="')[1].split('"')[0]
            relists[reason] = relists.get(reason, 0.0) + value  # summed over resources
    poll = one_poll_bytes(rig)
    return {"minutes": elapsed / 60, "list_requests": len(lists), "watch_requests": len(reads) - len(lists),
            "other_requests": len(requests) - len(reads),
            "bytes": total, "stream_bytes": stream, "list_bytes": total - stream, "poll_bytes": poll,
            "relists_by_reason": relists,
            "bytes_per_min_pct_of_poll": 100.0 * total / (elapsed / 60) / poll,
            "stream_bytes_per_min_pct_of_poll": 100.0 * stream / (elapsed / 60) / poll}


# -- 3. soak -----------------------------------------------------------------------------------------
def fds(pid: int) -> int:
    return len(os.listdir("/proc/%d/fd" % pid))


def servers_by_backend(text: str) -> Dict[str, List[str]]:
    """Each backend's enabled server addresses, whatever slots they sit in."""
    out: Dict[str, List[str]] = {}
    backend = ""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("backend "):
            backend = s.split()[1]
        elif s.startswith("server ") and " disabled" not in s:
            out.setdefault(backend, []).append(s.split()[2])
    return {k: sorted(v) for k, v in out.items()}


def fresh_once(rig: Rig, previous: Optional[str]) -> str:
    """What `lbsync --once` writes for the cluster as it is now, into a new file (seeded with
    `previous`: then it keeps that file's slot layout, and leaves it alone if it is right)."""
    path = os.path.join(rig.wd, "fresh-%d.cfg" % time.monotonic_ns())
    if previous is not None:
        with open(path, "w") as f:
            f.write(previous)
    once = LbsyncProcess([*rig.common, "--haproxy-config", path, "--once"]).start()
    if once.proc.wait(300) != 0:
        raise SystemExit("lbsync --once failed:\n" + "".join(once.raw[-20:]))
    with open(path) as f:
        return f.read()


def soak(rig: Rig, minutes: float, drop_every: float, seed: int = 5) -> Dict:
    rnd = random.Random(seed)
    samples: List[Dict] = []
    drops = 0
    with rig.daemon("--watch", "--interval", "60") as lb:
        lb.event("daemon.started", timeout=60)
        pid = lb.proc.pid
        t0 = time.monotonic()
        next_drop, next_sample = t0 + drop_every, t0
        while time.monotonic() < t0 + minutes * 60:
            rig.change_endpoint(rnd)
            rig.churn(rnd)
            now = time.monotonic()
            if now >= next_drop:
                drops += 1
                rig.api.drop_watches_mid_line()
                next_drop += drop_every
            if now >= next_sample:
                samples.append({"t_s": now - t0, "rss_mb": proc_status(pid)["VmRSS"] / 1024, "fds": fds(pid)})
                next_sample += 10
            time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
        time.sleep(5.0)  # the last change settles
        m = rig.metric_values()
        live = open(rig.cfg).read()
        # why HAProxy was reloaded, and what lbsync warned of (its log says; the metrics only count)
        reasons = [e.get("reason") for e in lb.events if e.get("event") == "haproxy.reloaded"]
        warned = sorted({e.get("event") for e in lb.events if e.get("level") in ("warning", "error")
                         and e.get("event") != "service.problem"})
    fresh = fresh_once(rig, None)  # slots allocated from scratch
    over_copy = fresh_once(rig, live)  # given the live file's slots, as after a restart
    warm = [s for s in samples if s["t_s"] >= min(300.0, minutes * 60 / 3)]
    return {"minutes": minutes, "drops": drops, "changes": rig.step, "samples": samples,
            "rss_first_mb": warm[0]["rss_mb"], "rss_last_mb": warm[-1]["rss_mb"],
            "rss_max_mb": max(s["rss_mb"] for s in warm),
            "rss_drift_pct": 100.0 * (warm[-1]["rss_mb"] - warm[0]["rss_mb"]) / warm[0]["rss_mb"],
            "fds_first": warm[0]["fds"], "fds_last": warm[-1]["fds"], "fds_max": max(s["fds"] for s in warm),
            "byte_identical": live == over_copy, "same_servers": servers_by_backend(live) == servers_by_backend(fresh),
            "relists": {k: v for k, v in m.items() if k.startswith("lbsync_watch_relists_total")},
            "resync_differences": sum(v for k, v in m.items()
                                      if k.startswith("lbsync_watch_resync_differences_total")),
            "reloads": sum(v for k, v in m.items() if k.startswith('lbsync_reloads_total{result="success"')),
            "reload_reasons": reasons, "warnings": warned,
            "failed_syncs": m.get('lbsync_syncs_total{result="failed"}', 0.0)}


# -- report ------------------------------------------------------------------------------------------
def ms(x: float) -> str:
    return "%.0f ms" % (x * 1000)


def section(env: Dict, command: str, lat: Dict[int, Dict],  idle_: Optional[Dict], soak_: Optional[Dict]) -> str:
    out = [WATCH_START, "## Watch mode (`--watch`) against polling", "",
           "Written by `benchmarks/watch.py`; machine: %s, %s cores, HAProxy %s. Command: `%s`." % (
               env["cpu"], env["cores"], env["haproxy"].split()[2] if len(env["haproxy"].split()) > 2 else "?",
               command), "",
           "### Endpoint change -> traffic at the new Pod", "",
           "A real HAProxy with the Runtime API; every endpoint is a loopback address; the probe Service's "
           "Pods are real servers. Each sample replaces one of the probe's 3 Pods and times until the new "
           "Pod gets a request (2 keep-alive client threads); the next change follows after 0.2-1.2 s.", "",
           "| Services x 10 endpoints | mode | median | worst | samples | reloads | client requests ok / failed "
           "| machine load before -> after (1-min avg) |",
           "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for size in sorted(lat, reverse=True):
        for mode, label in (("watch", "watch (`--watch`)"), ("poll", "poll (`--interval 1`)")):
            x = lat[size][mode]
            out.append("| %s | %s | %s | %s | %d | %d | %d / %d | %s |" % (
                format(size, ","), label, ms(x["median_s"]), ms(x["worst_s"]), x["samples"], x["reloads"],
                x["requests_ok"], x["requests_failed"], "%.2f -> %.2f" % (x["load_before"][0], x["load_after"][0])
                if "load_before" in x else "not recorded"))
    out += ["", "A watch event reaches lbsync within a few milliseconds (the fake API writes it as one chunk; "
            "lbsync wakes its loop at once). Then one pass, in this order: the store's snapshot, the "
            "incremental model (only the changed Service's Part is built again; when only servers moved, "
            "the last pass's settled conflicts are kept, lbsync/reassemble.py), the slot layout, and the "
            "decision from the model alone that only Pods moved between slots HAProxy has (`Plan.quick`). "
            "Such a plan goes to the Runtime API before any text is rendered; the render, the check that "
            "only server lines differ, and the checked file write (`haproxy -c`, ~0.5-1 s at 1,000 "
            "Services, in a thread of its own: lbsync/writebehind.py) all come after the traffic moved. On "
            "2 cores they still compete with the next change for CPU. The rest of a sample is the client: "
            "2 keep-alive threads in this process send ~80 requests/s through HAProxy's round robin over 3 "
            "Pods, so the new Pod's first request follows its `ready` by a few tens of ms. Polling adds "
            "half an interval on average and the list itself. The load column is the 1-minute load average "
            "(2 cores) at the start and end of each run: the machine is shared."]
    if idle_:
        out += ["", "### Idle API cost", "",
                "The watching daemon left alone for %.1f minutes with the defaults (`--watch-timeout 300`, "
                "`--resync 300`; the fake API sends a bookmark every 60 s like kube-apiserver)." % idle_["minutes"], "",
                "| | |", "|---|---:|",
                "| list requests during the idle time | %d (lbsync's relists since it started, by reason: %s) |" % (
                    idle_["list_requests"], ", ".join("%s %d" % (k, v) for k, v in sorted(idle_["relists_by_reason"].items())) or "none"),
                "| watch requests | %d |" % idle_["watch_requests"],
                "| other requests | %d |" % idle_.get("other_requests", 0),
                "| bytes sent by the API server | %s (watch streams %s, relists %s) |" % (
                    format(idle_["bytes"], ","), format(idle_["stream_bytes"], ","), format(idle_["list_bytes"], ",")),
                "| one poll (`--interval` mode) costs | %s bytes |" % format(idle_["poll_bytes"], ","),
                "| watch bytes per minute, as a share of one poll | %.3f%% (streams alone: %.4f%%) |" % (
                    idle_["bytes_per_min_pct_of_poll"], idle_["stream_bytes_per_min_pct_of_poll"])]
    if soak_:
        out += ["", "### Soak", "",
                "%g minutes at one endpoint change per second plus one unchanged EndpointSlice rewrite per "
                "second (revision churn), every watch dropped mid-event %d times; RSS and open descriptors of "
                "the daemon sampled every 10 s." % (soak_["minutes"], soak_["drops"]), "",
                "| | |", "|---|---:|",
                "| RSS after warm-up -> end (max) | %.1f -> %.1f MB (%.1f), drift %+.1f%% |" % (
                    soak_["rss_first_mb"], soak_["rss_last_mb"], soak_["rss_max_mb"], soak_["rss_drift_pct"]),
                "| open fds after warm-up -> end (max) | %d -> %d (%d) |" % (
                    soak_["fds_first"], soak_["fds_last"], soak_["fds_max"]),
                "| endpoint changes / reloads / failed passes | %d / %d / %d |" % (
                    soak_["changes"], soak_["reloads"], soak_["failed_syncs"]),
                "| why HAProxy was reloaded; what lbsync warned of | %s; %s |" % (
                    "; ".join(soak_["reload_reasons"]) if "reload_reasons" in soak_ else "not recorded by this run",
                    "not recorded" if "warnings" not in soak_ else ", ".join(soak_["warnings"]) or "nothing"),
                "| relists | %s |" % ", ".join("%s %d" % (re.sub(r"lbsync_watch_relists_total", "", k), v)
                                               for k, v in sorted(soak_["relists"].items())),
                "| resyncs that found a lost event | %d |" % soak_["resync_differences"],
                "| live config against a fresh `lbsync --once` | over a copy of the live file: %s; from scratch "
                "(new slot layout): same servers in every backend: %s |" % (
                    "byte-identical (nothing to change)" if soak_["byte_identical"] else "DIFFERENT",
                    "yes" if soak_["same_servers"] else "NO")]
    out += ["", WATCH_END]
    return "\n".join(out) + "\n"


def write_section(path: str, text: str) -> None:
    old = open(path).read() if os.path.exists(path) else ""
    if WATCH_START in old and WATCH_END in old:
        new = old[:old.index(WATCH_START)] + text + old[old.index(WATCH_END) + len(WATCH_END) + 1:]
    else:
        new = old.rstrip() + "\n\n" + text
    with open(path, "w") as f:
        f.write(new)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--also-services", type=lambda t: [int(x) for x in t.split(",") if x], default=[],
                   help="also measure latency at these sizes (comma-separated), e.g. 100")
    p.add_argument("--idle-minutes", type=float, default=10.0)
    p.add_argument("--soak-minutes", type=float, default=30.0)
    p.add_argument("--drop-every", type=float, default=300.0, help="seconds between dropped watches in the soak")
    p.add_argument("--out", default=None, help="write the watch section of this Markdown report")
    p.add_argument("--json", default=None, help="write the raw figures here")
    p.add_argument("--merge-json", default=None, metavar="FILE",
                   help="take the parts this run skips (--samples 0, --idle-minutes 0, --soak-minutes 0) "
                        "from an earlier run's --json")
    args = p.parse_args(argv)
    env = machine()
    workdir = tempfile.mkdtemp(prefix="lbsync-watch-bench-")
    rig = None
    try:
        tls = self_signed(workdir)
        merged = json.load(open(args.merge_json)) if args.merge_json else {}
        lat = {n: latencies(n, workdir, tls, args.samples) for n in args.also_services}
        rig = Rig(args.services, os.path.join(workdir, str(args.services)), tls).start()
        if args.samples:
            lat[args.services] = latencies_on(rig, args.samples)
        lat = lat or {int(k): v for k, v in merged.get("latency", {}).items()}
        idle_ = idle(rig, args.idle_minutes) if args.idle_minutes > 0 else merged.get("idle")
        log("idle: %s" % idle_)
        soak_ = soak(rig, args.soak_minutes, args.drop_every) if args.soak_minutes > 0 else merged.get("soak")
        log("soak: %s" % {k: v for k, v in (soak_ or {}).items() if k != "samples"})
        shown = [a for a in (argv if argv is not None else sys.argv[1:])]
        for flag in ("--json",):  # where the raw figures went is no part of the recipe
            if flag in shown:
                del shown[shown.index(flag):shown.index(flag) + 2]
        command = "python benchmarks/watch.py " + " ".join(shown)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"machine": env, "latency": lat, "idle": idle_, "soak": soak_, "command": command},
                          f, indent=1)
        if merged.get("command"):  # the figures this run skipped came from that one
            command = merged["command"] + "`, then `" + command
        text = section(env, command, lat, idle_, soak_)
        print(text)
        if args.out:
            write_section(args.out, text)
    finally:
        if rig is not None:
            rig.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
