"""Ask the haproxy binary itself whether a config is valid, before it goes live.

HAProxy is the only authority on its own grammar: a rendered config is run through
`haproxy -c -f FILE` and its [ALERT] lines become the error the operator sees.
`-q` is deliberately not used: it silences the [WARNING] lines too, and those are
returned to the caller so they can be logged.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Dict, List, Optional, Sequence, Tuple

from lbsync.exceptions import HAProxyCheckFailed, HAProxyError, HAProxyNotFound

#: How many [ALERT] lines go into the exception message (all are kept in `.alerts`).
MESSAGE_ALERTS = 3

_PREFIX = re.compile(r"^\[(ALERT|WARNING|NOTICE)\]\s*(?:\(\d+\)\s*)?:\s*")
_VERSION = re.compile(r"HA-?Proxy version (\d+)\.(\d+)(?:\.(\d+))?", re.IGNORECASE)
# Alerts that only summarise the specific ones; they go last in the message.
_GENERIC = ("Error(s) found in configuration file", "Fatal errors found in configuration")


def _run(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    """Run haproxy with stdout and stderr merged; a missing binary is HAProxyNotFound."""
    try:
        return subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise HAProxyNotFound(f"haproxy binary not found: {argv[0]}") from exc
    except PermissionError as exc:
        raise HAProxyNotFound(f"haproxy binary not executable: {argv[0]}: {exc.strerror}") from exc


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def strip_prefix(line: str) -> str:
    """'[ALERT]    (123) : config : parsing ...' -> 'config : parsing ...'."""
    return _PREFIX.sub("", line.strip())


def alert_lines(output: str) -> List[str]:
    """The [ALERT] lines of HAProxy's output, as HAProxy printed them."""
    return [line.rstrip() for line in output.splitlines() if line.startswith("[ALERT]")]


def warning_text(output: str) -> str:
    """The [WARNING] blocks (with their '   | ...' continuation lines), '' when none."""
    kept: List[str] = []
    in_warning = False
    for line in output.splitlines():
        if line.startswith("["):
            in_warning = line.startswith("[WARNING]")
        elif not line.startswith("   |"):
            in_warning = False
        if in_warning:
            kept.append(line.rstrip())
    return "\n".join(kept)


def summarize_alerts(alerts: Sequence[str], limit: int = MESSAGE_ALERTS) -> str:
    """The first few alerts, specific ones before HAProxy's generic summaries."""
    specific = [a for a in alerts if not any(g in a for g in _GENERIC)]
    generic = [a for a in alerts if a not in specific]
    chosen = [strip_prefix(a) for a in (specific + generic)[:limit]]
    more = len(alerts) - len(chosen)
    return "; ".join(chosen) + (f" (+{more} more)" if more > 0 else "")


def _tail(output: str, lines: int = 5) -> str:
    return " | ".join(line.strip() for line in output.strip().splitlines()[-lines:])


def check_config(path: str, *, binary: str = "haproxy", timeout: float = 30.0) -> str:
    """Run `haproxy -c -f path`; return the warnings text ('' when clean).

    Raises HAProxyCheckFailed (with `.output` and `.alerts`) when HAProxy rejects the
    file or the check times out, HAProxyNotFound when the binary is missing.
    """
    argv = [binary, "-c", "-f", os.fspath(path)]
    try:
        proc = _run(argv, timeout)
    except subprocess.TimeoutExpired as exc:
        output = _decode(exc.output or b"")
        raise HAProxyCheckFailed(f"haproxy -c timed out after {timeout:g}s on {path}",
                                 output=output, alerts=alert_lines(output)) from exc
    output = _decode(proc.stdout)
    if proc.returncode == 0:
        return warning_text(output)
    alerts = alert_lines(output)
    reason = summarize_alerts(alerts) if alerts else (_tail(output) or "no output")
    raise HAProxyCheckFailed(f"haproxy rejected {path} (exit {proc.returncode}): {reason}",
                             output=output, alerts=alerts)


def version(binary: str = "haproxy", *, timeout: float = 10.0) -> Tuple[int, int, int]:
    """(major, minor, patch) from the first line of `haproxy -vv` (`-v`'s line); a dev build such
    as 2.9-dev3 -> (2, 9, 0)."""
    match = _VERSION.search(build_info(binary, timeout=timeout))
    assert match is not None  # build_info checked it
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def build_info(binary: str = "haproxy", *, timeout: float = 10.0) -> str:
    """`haproxy -vv`: the version and the build options. Asked once per binary file (its path,
    inode and modification time): a pass that needs both, and every later one, run it once."""
    path = shutil.which(binary) or binary
    try:
        st = os.stat(path)
        key: Optional[Tuple[str, int, int]] = (os.path.abspath(path), st.st_ino, st.st_mtime_ns)
    except OSError:
        key = None  # not found: _run says so
    if key is not None and key in _INFO:
        return _INFO[key]
    try:
        proc = _run([binary, "-vv"], timeout)
    except subprocess.TimeoutExpired as exc:
        raise HAProxyError(f"{binary} -vv timed out after {timeout:g}s") from exc
    output = _decode(proc.stdout)
    if proc.returncode != 0 or not _VERSION.search(output):
        raise HAProxyError(f"cannot read the version from `{binary} -vv`: {_tail(output) or 'no output'}")
    if key is not None:
        _INFO[key] = output
    return output


_INFO: Dict[Tuple[str, int, int], str] = {}


def forget_build_info() -> None:
    """Ask every binary again (a test that must see the binary run)."""
    _INFO.clear()


def has_prometheus_exporter(binary: str = "haproxy", *, timeout: float = 10.0) -> bool:
    """Whether `haproxy -vv` lists the built-in Prometheus exporter service (USE_PROMEX builds:
    Debian's 2.6, the official 3.x images); HAProxyError when the binary cannot be asked."""
    output = build_info(binary, timeout=timeout)
    services = [line.partition(":")[2].split() for line in output.splitlines()
                if line.strip().startswith("Available services")]
    return any("prometheus-exporter" in names for names in services) or "+PROMEX" in output.split()
