"""Make the running HAProxy load the new config, and prove that it did.

A reload is only done when a new worker has taken over: the master CLI's `show proc`
lists a current worker that was not there before. A rejected config leaves the old
worker serving, and HAProxy says so differently per version:

* 2.6: `reload` prints nothing and closes; afterwards `show proc` shows the master's
  reload counter up and its `[failed: N]` counter up, with the same worker(s) current.
  The master CLI has no `show startup-logs`, so the reason is recovered, when a config
  path is given, by running `haproxy -c` on it.
* 2.7+: `reload` answers `Success=1` or `Success=0`, then `--` and the startup log.

Three ways to trigger the reload: the master CLI (preferred), SIGUSR2 to the master
from its pid file, or an operator-supplied command such as `systemctl reload haproxy`
(lbsync.haproxy.reload_command).
"""
from __future__ import annotations

import errno
import os
import re
import signal
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Protocol, Tuple

from lbsync.exceptions import HAProxyCheckFailed, HAProxyError, ReloadFailed
from lbsync.haproxy.check import check_config
from lbsync.haproxy.runtime import unix_exchange

_RETRY_ERRNOS = (errno.ECONNREFUSED, errno.ENOENT, errno.EAGAIN, errno.ECONNRESET)
_MASTER = re.compile(r"^(\d+)\s+master\s+(\d+)(?:\s*\[failed:\s*(\d+)\])?", re.MULTILINE)
_PROC_LINE = re.compile(r"^(\d+)\s+(\S+)\s+(\d+)")
_SUCCESS = re.compile(r"^Success=([01])", re.MULTILINE)
OUTPUT_TAIL = 20


@dataclass(frozen=True)
class ReloadResult:
    """A reload that happened. PIDs are the current workers before/after (empty if unknown)."""
    ok: bool
    duration_s: float
    old_pids: Tuple[int, ...] = ()
    new_pids: Tuple[int, ...] = ()
    detail: str = ""


class Reloader(Protocol):
    """Anything that makes HAProxy load its config file; raises ReloadFailed when it did not."""

    def reload(self, reason: str) -> ReloadResult: ...


@dataclass(frozen=True)
class ProcState:
    """What `show proc` says: the master, its reload/failed counters, current and old workers."""
    master_pid: int
    reloads: int
    failed: Optional[int]
    workers: Tuple[int, ...]
    old_workers: Tuple[int, ...]


def parse_show_proc(text: str) -> ProcState:
    """Parse the master CLI's `show proc` (2.4 .. 3.x layout)."""
    master = _MASTER.search(text)
    if master is None:
        raise HAProxyError(f"unexpected `show proc` answer: {text.strip()[:200]!r}")
    sections: Dict[str, List[int]] = {"workers": [], "old workers": []}
    current: Optional[List[int]] = None
    for line in text.splitlines():
        if line.startswith("#"):
            current = sections.get(line.lstrip("#").strip())
            continue
        match = _PROC_LINE.match(line)
        if match and current is not None and match.group(2) == "worker":
            current.append(int(match.group(1)))
    failed = master.group(3)
    return ProcState(int(master.group(1)), int(master.group(2)),
                     int(failed) if failed is not None else None,
                     tuple(sections["workers"]), tuple(sections["old workers"]))


def master_command(socket_path: str, cmd: str, timeout: float = 5.0) -> str:
    """One command on the master CLI, retrying while a reload makes it refuse connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return unix_exchange(socket_path, cmd, max(0.05, deadline - time.monotonic()))
        except OSError as exc:
            name = os.strerror(exc.errno) if exc.errno else str(exc)
            retry = exc.errno in _RETRY_ERRNOS
            if not retry or time.monotonic() >= deadline:
                raise HAProxyError(f"master CLI {socket_path}: `{cmd}` failed: {name}") from exc
        time.sleep(0.01)


def show_proc(socket_path: str, timeout: float = 5.0) -> ProcState:
    return parse_show_proc(master_command(socket_path, "show proc", timeout))


def tail_lines(text: str, lines: int = OUTPUT_TAIL) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def startup_log(socket_path: str, timeout: float = 2.0) -> str:
    """The master's startup log on 2.7+; '' where the command does not exist (2.6)."""
    try:
        text = master_command(socket_path, "show startup-logs", timeout)
    except HAProxyError:
        return ""
    return "" if "Unknown command" in text else text.strip()


def _explain(socket_path: str, config_path: Optional[str], binary: str) -> str:
    """HAProxy's reason for a failed reload: its startup log, else `haproxy -c` on the config."""
    log = startup_log(socket_path)
    alerts = [line for line in log.splitlines() if line.startswith("[ALERT]")]
    if alerts:
        return "\n".join(alerts)
    if config_path:
        try:
            check_config(config_path, binary=binary)
        except HAProxyCheckFailed as exc:
            return "\n".join(exc.alerts) or str(exc)
        except HAProxyError as exc:
            return str(exc)
        return (f"`haproxy -c` accepts {config_path}: the failure happened at startup "
                "(e.g. a bind or a file); see HAProxy's own log")
    return tail_lines(log)


def await_takeover(socket_path: str, before: ProcState, deadline: float) -> ProcState:
    """Poll `show proc` until a new worker is current; ReloadFailed if HAProxy reports a failure."""
    last = before
    while time.monotonic() < deadline:
        try:
            last = show_proc(socket_path, max(0.05, deadline - time.monotonic()))
        except HAProxyError:
            time.sleep(0.02)
            continue
        if set(last.workers) - set(before.workers):
            return last
        failed_more = last.failed is not None and (before.failed is None or last.failed > before.failed)
        if last.reloads > before.reloads and failed_more:
            raise ReloadFailed(f"HAProxy rejected the reload (failed: {last.failed}); "
                               f"worker(s) {list(last.workers)} keep serving")
        time.sleep(0.02)
    raise ReloadFailed(f"no new HAProxy worker took over (still {list(last.workers)}, "
                       f"reloads {before.reloads}->{last.reloads})")


class _Confirming:
    """Shared by the master-socket and signal reloaders: snapshot, trigger, confirm."""

    def __init__(self, socket_path: str, timeout: float, config_path: Optional[str],
                 binary: str) -> None:
        self.socket_path, self.timeout = socket_path, timeout
        self.config_path, self.binary = config_path, binary

    def _before(self) -> ProcState:
        try:
            return show_proc(self.socket_path, self.timeout)
        except HAProxyError as exc:
            raise ReloadFailed(f"cannot read HAProxy's state before reloading: {exc}") from exc

    def _confirm(self, before: ProcState, started: float, reason: str) -> ReloadResult:
        try:
            after = await_takeover(self.socket_path, before, started + self.timeout)
        except ReloadFailed as exc:
            why = _explain(self.socket_path, self.config_path, self.binary)
            raise ReloadFailed(f"{exc}" + (f":\n{why}" if why else "")) from None
        new = tuple(pid for pid in after.workers if pid not in before.workers)
        return ReloadResult(True, time.monotonic() - started, before.workers, new,
                            f"reloaded ({reason}); new worker(s) {list(new)}")


class MasterSocketReloader(_Confirming):
    """`reload` on the master CLI (`haproxy -W -S PATH`), confirmed with `show proc`.

    `config_path`/`binary` are only used to explain a failed reload on HAProxy 2.6,
    whose master CLI cannot show the startup log.
    """

    def __init__(self, socket_path: str, *, timeout: float = 10.0,
                 config_path: Optional[str] = None, binary: str = "haproxy") -> None:
        super().__init__(socket_path, timeout, config_path, binary)

    def reload(self, reason: str) -> ReloadResult:
        started = time.monotonic()
        before = self._before()
        try:
            answer = master_command(self.socket_path, "reload", self.timeout)
        except HAProxyError as exc:
            raise ReloadFailed(f"reload ({reason}) not sent: {exc}") from exc
        if reload_status(answer) is False:
            raise ReloadFailed(f"HAProxy rejected the reload ({reason}); worker(s) "
                               f"{list(self._serving(before))} keep serving:\n{_reload_log(answer)}")
        return self._confirm(before, started, reason)

    def _serving(self, before: ProcState) -> Tuple[int, ...]:
        """The current workers after a rejected reload (those from before if unreadable)."""
        try:
            return show_proc(self.socket_path, self.timeout).workers
        except HAProxyError:
            return before.workers


def reload_status(answer: str) -> Optional[bool]:
    """The master CLI's answer to `reload`, as the management guide defines it per version.

    2.7+: a first line `Success=1` or `Success=0`, then `--` and the startup log.
    2.6: nothing at all (None): the caller must watch `show proc` instead.
    """
    success = _SUCCESS.search(answer)
    return None if success is None else success.group(1) == "1"


def _reload_log(answer: str) -> str:
    """HAProxy's reason from a 2.7+ reload answer: its [ALERT] lines, else the log's tail."""
    log = answer.split("--", 1)[-1]
    alerts = [line for line in log.splitlines() if line.startswith("[ALERT]")]
    return "\n".join(alerts) or tail_lines(log) or "(no startup log: HAProxy built without USE_SHM_OPEN?)"


def read_pidfile(pidfile: str) -> int:
    """The master PID from the first line of `pidfile`, checked to be a live haproxy."""
    try:
        with open(pidfile, encoding="utf-8") as fh:
            first = fh.readline().strip()
    except OSError as exc:
        raise ReloadFailed(f"cannot read HAProxy pid file {pidfile}: {exc.strerror}") from exc
    if not first.isdigit() or int(first) <= 0:
        raise ReloadFailed(f"HAProxy pid file {pidfile} holds no PID (first line {first!r})")
    pid = int(first)
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as fh:
            comm = fh.read().strip()
    except FileNotFoundError:
        raise ReloadFailed(f"stale HAProxy pid file {pidfile}: process {pid} is not running") from None
    except OSError:
        return pid  # no /proc: trust the file, os.kill will tell
    if "haproxy" not in comm:
        raise ReloadFailed(f"stale HAProxy pid file {pidfile}: process {pid} is {comm!r}, not haproxy")
    return pid


class SignalReloader(_Confirming):
    """SIGUSR2 to the master PID from the pid file; confirmed via `confirm_socket` if given."""

    def __init__(self, pidfile: str, *, confirm_socket: Optional[str] = None,
                 timeout: float = 10.0, config_path: Optional[str] = None,
                 binary: str = "haproxy") -> None:
        super().__init__(confirm_socket or "", timeout, config_path, binary)
        self.pidfile = pidfile

    def reload(self, reason: str) -> ReloadResult:
        started = time.monotonic()
        before = self._before() if self.socket_path else None
        pid = read_pidfile(self.pidfile)
        try:
            os.kill(pid, signal.SIGUSR2)
        except ProcessLookupError:
            raise ReloadFailed(f"stale HAProxy pid file {self.pidfile}: process {pid} is gone") from None
        except PermissionError as exc:
            raise ReloadFailed(f"cannot signal HAProxy master {pid}: {exc.strerror}") from exc
        if before is None:
            return ReloadResult(True, time.monotonic() - started, (), (),
                                f"SIGUSR2 sent to master {pid} ({reason}); not confirmed")
        return self._confirm(before, started, reason)
