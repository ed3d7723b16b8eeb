"""Everything lbsync does to HAProxy: check a config, replace it atomically, reload, Runtime API.

Only the standard library is used here; the rest of lbsync sees HAProxy through
this package's public names, re-exported below.
"""
from __future__ import annotations

from lbsync.haproxy.check import check_config, has_prometheus_exporter, version
from lbsync.haproxy.files import commit, discard, read, replace, stage
from lbsync.haproxy.reload import (MasterSocketReloader, ProcState, Reloader,
                                   ReloadResult, SignalReloader, master_command, parse_show_proc,
                                   show_proc)
from lbsync.haproxy.reload_command import CommandReloader
from lbsync.haproxy.runtime import RuntimeApi

__all__ = [
    "check_config", "has_prometheus_exporter", "version",
    "stage", "commit", "discard", "read", "replace",
    "Reloader", "ReloadResult", "MasterSocketReloader", "SignalReloader", "CommandReloader",
    "ProcState", "master_command", "parse_show_proc", "show_proc",
    "RuntimeApi",
]
