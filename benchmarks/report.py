"""The report's section on issue #11's targets: churn, warm against cold, plain workload, YAML."""
from __future__ import annotations

from typing import Dict, List


def ms(x: float) -> str:
    return "%.0f ms" % (x * 1000) if x >= 0.0995 else "%.1f ms" % (x * 1000)


def scenarios(rows: List[Dict], plain: Dict, plain_size: int, sources: Dict, source_size: int,
              watched: Dict) -> List[str]:
    by_n = {r["n"]: r for r in rows}
    lines = ["", "## Targets of issue #11, from this run", "",
             "| target | figure | met |", "|---|---|---|"]
    for r in rows:
        if r["n"] < 2000:
            continue
        c = r["daemon"]["churn"]
        lines.append("| revision churn, nothing changed, %s Services: CPU per poll <= 2x a quiet poll; file "
                     "never rewritten | %s against %s (x%.2f); file untouched: %s, configs applied: %d | %s |" % (
                         "{:,}".format(r["n"]), ms(c["churn_poll_cpu_s"]), ms(c["quiet_poll_cpu_s"]), c["ratio"],
                         "yes" if c["file_untouched"] else "**no**", c["applied_during_churn"],
                         _yes(c["ratio"] <= 2 and c["file_untouched"] and not c["applied_during_churn"])))
    if 5000 in by_n:
        cy = by_n[5000]["cycles"]
        ratio = cy["warm"]["total_s"] / cy["cold"]["total_s"]
        lines.append("| warm pass, one endpoint changed, 5,000 x 10: <= 10%% of the cold pass | %s against %s "
                     "(%.0f%%), polling | %s |" % (ms(cy["warm"]["total_s"]), ms(cy["cold"]["total_s"]),
                                                   ratio * 100, _yes(ratio <= 0.10)))
    if watched:
        lines.append("| warm pass, one endpoint changed, %s x 10, with `--watch`: <= 10%% of the cold pass "
                     "| median of %d warm passes %s against a cold %s (%.1f%%; "
                     "each: %s) | %s |" % (
                         "{:,}".format(watched["services"]), len(watched["warm_s"]), ms(watched["warm_median_s"]),
                         ms(watched["cold_s"]), watched["ratio_median"] * 100,
                         ", ".join(ms(w) for w in watched["warm_s"]), _yes(watched["ratio_median"] <= 0.10)))
    if sources:
        y, j = sources["yaml"], sources["json"]
        lines.append("| `--source` YAML at %s Services: <= 2x the JSON time, <= 150 MB peak RSS | read %s against "
                     "%s (x%.2f), peak RSS %d MB (JSON %d MB); whole `--once --dry-run` %s against %s (x%.2f), "
                     "peak RSS %d MB | %s |" % (
                         "{:,}".format(source_size), ms(y["read_s"]), ms(j["read_s"]), sources["ratio_read"],
                         y["read_rss_mb"], j["read_rss_mb"], ms(y["once_s"]), ms(j["once_s"]), sources["ratio_once"],
                         y["once_rss_mb"], _yes(sources["ratio_read"] <= 2 and y["read_rss_mb"] <= 150)))
    lines.append("| plain workload, %s x 10: `--once --dry-run` net of start-up <= 1.0x `haproxy -c` | %s "
                 "(%s - %s start-up) against %s (x%.2f) | %s |" % (
                     "{:,}".format(plain_size), ms(plain["net_s"]), ms(plain["dry_run_s"]), ms(plain["startup_s"]),
                     ms(plain["haproxy_check_s"]), plain["ratio"], _yes(plain["ratio"] <= 1.0)))
    if 1000 in by_n and 5000 in by_n:
        peak = by_n[5000]["daemon"]["VmHWM_MB"]
        growth = by_n[5000]["cycles"]["cold"]["total_s"] / by_n[1000]["cycles"]["cold"]["total_s"]
        lines.append("| no regression: daemon peak RSS at 5,000 x 10 <= 150 MB; cold cycle growth 1k -> 5k <= 6x "
                     "| %d MB; x%.2f | %s |" % (peak, growth, _yes(peak <= 150 and growth <= 6)))
    lines += ["", "*Churn*: the daemon (`--interval 1`) polls a cluster whose global resourceVersion the fake "
              "API moves on every 0.25 s with no Service or endpoint changing (as node leases and Events do), "
              "after five quiet polls; CPU is the daemon's user + system time per poll, and its peak RSS in the "
              "table above is taken after this. *Plain workload*: 1 port per Service, no annotations, no TLS; "
              "start-up = `python -m lbsync --version`; best of 3 fresh processes each. *`--source`*: "
              "`kubectl get services,endpointslices -A -o yaml` (and `-o json`) of the synthetic cluster; "
              "*read* = a fresh process reading it with lbsync's FileSource; best of 2. *`--watch`*: "
              "`benchmarks/watch_cycle.py` in a fresh process with its own cluster: the first pass of a Syncer "
              "with `--watch`, then a pass after each of 5 endpoint changes (the store's snapshot, no list "
              "read), both dry runs as in the table above."]
    return lines


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"
