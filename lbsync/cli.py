"""`lbsync` command: flags -> Settings -> one sync (--once), the daemon, or `lbsync routes`.

Exit codes, as `kubectl diff`: with --once --dry-run 0 = no change, 1 = changes;
--once 0 = done (changed or not); `routes` 0 = printed; 2 = an error, printed as one line
naming what was wrong.
"""
from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys
from typing import List, Optional

from lbsync import __version__, logs
from lbsync import settings as settings_mod
from lbsync.exceptions import LbsyncError

EXIT_OK, EXIT_CHANGES, EXIT_ERROR = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lbsync", description="Keep an HAProxy config true to a Kubernetes cluster's Services.",
        epilog="Every flag can also be set as LBSYNC_<NAME> in the environment or as <name> in the "
               "--config YAML file; flags win over the environment, which wins over the file.")
    p.add_argument("command", nargs="?", choices=["routes"],
                   help="routes: print what the load balancer serves (host, path, Service, servers) and "
                        "what was left out and why; reads the cluster as a sync does, writes nothing. "
                        "Without a command: sync (the daemon, or --once).")
    p.add_argument("-o", "--output", choices=["table", "json"],
                   help="routes only: 'table' (default) or 'json' (stable form, see docs/operations.md).")
    p.add_argument("--config", metavar="FILE", help="YAML settings file (also $LBSYNC_CONFIG).")
    p.add_argument("--once", action="store_true", help="Sync once and exit instead of polling forever.")
    p.add_argument("--dry-run", action="store_true",
                   help="Print the diff a sync would make; write and reload nothing. "
                        "Exit 0: no change, 1: changes, 2: error.")
    p.add_argument("--version", action="version", version=f"lbsync {__version__}")
    settings_mod.add_arguments(p)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.command == "routes" and (args.once or args.dry_run):
        p.error("routes prints and exits: --once and --dry-run do not apply")
    if args.output and args.command != "routes":
        p.error("-o/--output goes with the routes command")
    config_file = args.config or os.environ.get("LBSYNC_CONFIG")
    try:
        settings = settings_mod.load(args=args, config_file=config_file)
    except LbsyncError as e:
        print(f"lbsync: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    # a dry run's stdout is the diff: keep log lines on stderr
    logs.setup(settings.log_format, settings.log_level,
               stream=sys.stderr if args.dry_run or args.command else None)
    if not (args.command or args.once or args.dry_run):
        return _run(args, settings, config_file)
    gc_was_on = gc.isenabled()
    _one_shot()
    try:
        return _run(args, settings, config_file)
    finally:
        if gc_was_on:
            gc.enable()


def _run(args: argparse.Namespace, settings: settings_mod.Settings, config_file: Optional[str]) -> int:
    try:
        if args.command == "routes":
            return _routes(settings, output=args.output or "table")
        if args.once or args.dry_run:
            return _once(settings, dry_run=args.dry_run)
        from lbsync import daemon
        return daemon.run(settings, config_file=config_file, args=args)
    except LbsyncError as e:
        logs.get("lbsync").error(f"{args.command or 'sync'}.failed", error=str(e), kind=type(e).__name__)
        print(f"lbsync: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _one_shot() -> None:
    """A run that makes one pass and exits builds its objects once and keeps them to the end:
    the cyclic garbage collector would only walk them again and again (~30 ms at 1,000
    Services), and once more at exit to free what the exit frees anyway (frozen by then).
    The daemon keeps it."""
    gc.disable()
    atexit.unregister(gc.freeze)  # once, however often main() runs in one process
    atexit.register(gc.freeze)


def _once(settings: settings_mod.Settings, *, dry_run: bool) -> int:
    from lbsync import sync
    syncer = sync.Syncer(settings, source=sync.make_source(settings))  # no stand-ins: no next pass
    result = syncer.run(dry_run=dry_run, reason="once")
    report(result)
    if not dry_run:
        from lbsync import events
        reporter = events.reporter_for(settings)  # each problem's Event, once (no series)
        if reporter is not None:
            reporter.observe(result.problems, result.uids)
    if dry_run:
        sys.stdout.write(result.diff)
        return EXIT_CHANGES if result.changed else EXIT_OK
    return EXIT_OK


def _routes(settings: settings_mod.Settings, *, output: str) -> int:
    """Build the model as a sync would (same source, same settings), print it, write nothing."""
    from lbsync import haproxy, model, routes, sync
    topology = model.build(sync.make_source(settings).fetch(), sync.options_from(settings))
    live = None
    if settings.runtime_socket:
        live = routes.live_states(haproxy.RuntimeApi(settings.runtime_socket, timeout=10.0).all_servers())
    sys.stdout.write(routes.to_json(topology, live) if output == "json" else routes.table(topology, live))
    return EXIT_OK


def report(result) -> None:
    """Log the Problems of a pass and its outcome, as events."""
    log = logs.get("lbsync")
    for p in result.problems:
        (log.warning if p.level == "warning" else log.info)(
            "service.problem", namespace=p.namespace, service=p.service, code=p.code,
            annotation=p.annotation or None, reason=p.reason, value=p.value or None)
    log.info("sync.done", changed=result.changed, written=result.written, reloaded=result.reloaded,
             backends=result.backends, servers=result.servers, duration_s=round(result.duration_s, 4))
