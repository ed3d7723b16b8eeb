"""A warm pass in watch mode against a cold one, in one process (issue #11's warm-pass target
measured where the API lets a pass cost the change: with `--watch` there is no list to read).

    python benchmarks/watch_cycle.py --services 5000 --changes 5 [--json]

Cold: the first pass of a fresh Syncer with `--watch` (the watch's first lists, model, layout,
render, a dry run's diff). Warm: after one endpoint of one Service moved, the next pass (the
store's snapshot, the incremental model, layout, render, diff). The same dry-run cycle as
benchmarks/cycle.py measures for polling. Loopback fake API; no HAProxy is run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import synth  # noqa: E402
from benchmarks.run import self_signed  # noqa: E402
from lbsync import cli, settings as settings_mod, sync  # noqa: E402
from lbsync.textdiff import unified_diff  # noqa: E402
from tests.fakeapi.server import FakeKubeApi  # noqa: E402


def cycle(syncer: sync.Syncer, path: str):
    started = time.monotonic()
    plan = syncer.plan()
    if plan.changed:
        unified_diff(plan.live, plan.text, path)
    return time.monotonic() - started, plan


def measure(services: int, changes: int) -> dict:
    """The cold pass and `changes` warm passes (seconds), each after one endpoint moved."""
    wd = tempfile.mkdtemp(prefix="lbsync-watch-cycle-")
    api = FakeKubeApi(anonymous=True)
    synth.populate(api, services)
    with api:
        kubeconfig = api.write_kubeconfig(os.path.join(wd, "kubeconfig"), auth="none")
        cfg = os.path.join(wd, "haproxy.cfg")
        flags = ["--kubeconfig", kubeconfig, "--haproxy-config", cfg, "--deny-networks", "none", "--no-events",
                 "--http-bind", "127.0.0.1:18080", "--https-bind", "127.0.0.1:18443", "--stats-bind", "",
                 "--tls-cert", self_signed(wd), "--watch"]
        syncer = sync.Syncer(settings_mod.load(args=cli.parser().parse_args(flags), env={}))
        try:
            cold, plan = cycle(syncer, cfg)
            warm = []
            for step in range(1, changes + 1):
                with open(cfg, "w") as f:
                    f.write(plan.text)
                syncer._settled(plan)  # as after a write: the next pass compares with this file
                synth.change_one_endpoint(api, services, step=step)
                time.sleep(0.5)  # the event reaches the store
                seconds, plan = cycle(syncer, cfg)
                warm.append(seconds)
        finally:
            syncer.source.close()
    median = sorted(warm)[len(warm) // 2]
    return {"services": services, "cold_s": cold, "warm_s": warm, "warm_median_s": median,
            "ratio_median": median / cold, "ratio_best": min(warm) / cold, "load": os.getloadavg()[0]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=5000)
    p.add_argument("--changes", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = p.parse_args(argv)
    r = measure(args.services, args.changes)
    if args.json:
        print(json.dumps(r))
        return 0
    print("%d Services, --watch: cold %.0f ms; warm %s ms; median warm / cold = %.1f%% (best %.1f%%); load %.2f" % (
        args.services, r["cold_s"] * 1000, [round(w * 1000) for w in r["warm_s"]], 100 * r["ratio_median"],
        100 * r["ratio_best"], r["load"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
