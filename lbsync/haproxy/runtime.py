"""Change server addresses and states in the running HAProxy without a reload.

Endpoint churn is applied through the Runtime API (the admin-level `stats socket`):
`set server be/srv addr ...` and `set server be/srv state ...`. HAProxy answers
these in free text whose wording changes between versions, so success is judged by
what the management guide defines: `set server ... state` answers nothing on success,
and after `set server ... addr` the server must hold the address in `show servers
state`. Anything else raises RuntimeApiError carrying the command and HAProxy's answer,
and the caller falls back to a full reload. One command per connection: HAProxy answers
and closes once the client half-closes, and no answer can be attributed to the
wrong command.
"""
from __future__ import annotations

import ipaddress
import socket
import time
from typing import Dict, Iterable, List, Optional, Tuple

from lbsync.exceptions import RuntimeApiError

STATES = ("ready", "drain", "maint")
OP_STATES = {0: "down", 1: "starting", 2: "up", 3: "stopping"}
# srv_admin_state bits (management.txt, "show servers state").
_MAINT_BITS = 0x01 | 0x02 | 0x20   # forced, inherited, DNS resolution failure
_DRAIN_BITS = 0x08 | 0x10          # forced, inherited
# Answers that mean "refused", whatever the command.
_ERRORS = ("Unknown command", "No such", "Can't find", "Permission denied", "Invalid",
           "expects", "Require", "not found", "Missing", "error", "failed", "Unexpected")
_FORBIDDEN = set(" \t\r\n;#\\")
SETTLE_S = 0.5  # how long an address change may take to show in `show servers state`


def read_all(sock: socket.socket, deadline: float) -> bytes:
    """Read until EOF or `deadline` (time.monotonic()); a timeout raises socket.timeout."""
    chunks = []
    while True:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def unix_exchange(path: str, line: str, timeout: float) -> str:
    """Send one line on a UNIX stream socket, half-close, return everything answered."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(line.encode("utf-8") + b"\n")
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock, deadline).decode("utf-8", "replace")


def _name(kind: str, value: str) -> str:
    if not value or _FORBIDDEN & set(value):
        raise ValueError(f"invalid {kind} name for the Runtime API: {value!r}")
    return value


def _looks_refused(answer: str) -> bool:
    first = answer.strip().splitlines()[0] if answer.strip() else ""
    return any(marker.lower() in first.lower() for marker in _ERRORS)


def _matches(held: Optional[Tuple[str, Optional[int]]], wanted: Tuple[str, Optional[int]]) -> bool:
    """`held` (address, port) is `wanted`; a wanted port of None means any port."""
    return held is not None and held[0] == wanted[0] and wanted[1] in (None, held[1])


def admin_state(flags: int) -> str:
    """'maint', 'drain' or 'ready' for a srv_admin_state bit mask."""
    if flags & _MAINT_BITS:
        return "maint"
    if flags & _DRAIN_BITS:
        return "drain"
    return "ready"


def parse_servers_state(text: str) -> List[Dict[str, object]]:
    """Rows of `show servers state` (format 1) as dicts keyed by the header's column names.

    Each dict also has: name, addr, port (int or None), admin_flags (int),
    admin_state ('ready'|'drain'|'maint'), op_state ('down'|'starting'|'up'|'stopping').
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != "1" or len(lines) < 2 or not lines[1].startswith("#"):
        raise ValueError("not a version 1 'show servers state' dump")
    columns = lines[1].lstrip("#").split()
    rows = []
    for line in lines[2:]:
        if line.startswith("#"):
            continue
        raw = dict(zip(columns, line.split()))
        flags, op = int(raw["srv_admin_state"]), int(raw["srv_op_state"])
        port = raw.get("srv_port", "0")
        rows.append({**raw, "name": raw["srv_name"], "addr": raw["srv_addr"],
                     "port": int(port) if port.isdigit() and port != "0" else None,
                     "admin_flags": flags, "admin_state": admin_state(flags),
                     "op_state": OP_STATES.get(op, str(op))})
    return rows


def parse_info(text: str) -> Dict[str, str]:
    """`show info` 'Key: value' lines as a dict."""
    info = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


class RuntimeApi:
    """Client for HAProxy's admin stats socket (`stats socket PATH level admin`)."""

    def __init__(self, socket_path: str, *, timeout: float = 2.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def raw(self, cmd: str) -> str:
        """Send one command, return the answer unchecked; socket problems -> RuntimeApiError."""
        if "\n" in cmd or "\r" in cmd:
            raise ValueError(f"one command per line: {cmd!r}")
        try:
            return unix_exchange(self.socket_path, cmd, self.timeout)
        except OSError as exc:
            raise RuntimeApiError(f"runtime API {self.socket_path}: `{cmd}` failed: "
                                  f"{exc.strerror or exc}") from exc

    def command(self, cmd: str) -> str:
        """Send one command; an answer that reads as a refusal raises RuntimeApiError."""
        answer = self.raw(cmd)
        if _looks_refused(answer):
            raise self._error(cmd, answer)
        return answer

    def _error(self, cmd: str, answer: str) -> RuntimeApiError:
        return RuntimeApiError(f"runtime API refused `{cmd}`: {answer.strip() or '(empty answer)'}")

    def set_server_addr(self, backend: str, server: str, ip: str, port: Optional[int] = None) -> str:
        """`set server be/srv addr IP [port P]` (IPv4 or IPv6); returns HAProxy's answer.

        The management guide defines no answer for this command, and the wording differs
        per version (an address already set: 2.6 "no need to change the addr", 3.x
        "nothing changed"). So success is what the server holds afterwards, read back from
        `show servers state` (a defined format): an unchanged address is a success.
        """
        addr = ipaddress.ip_address(ip)  # ValueError for a hostname or garbage
        cmd = f"set server {_name('backend', backend)}/{_name('server', server)} addr {addr.compressed}"
        if port is not None:
            if not 0 < int(port) < 65536:
                raise ValueError(f"invalid port: {port!r}")
            cmd += f" port {int(port)}"
        answer = self.raw(cmd)
        wanted = (addr.compressed, None if port is None else int(port))
        held = self._settled(backend, server, wanted)
        if not _matches(held, wanted):
            shown = f"it holds {held[0]} port {held[1]}" if held else "no such server shown"
            raise RuntimeApiError(f"runtime API refused `{cmd}`: {answer.strip() or '(empty answer)'}"
                                  f" ({shown} by `show servers state {backend}`)")
        return answer.strip()

    def _settled(self, backend: str, server: str,
                 wanted: Tuple[str, Optional[int]]) -> Optional[Tuple[str, Optional[int]]]:
        """What the server holds: once it is `wanted`, or when SETTLE_S is up (3.x applies an
        address change just after answering, within a millisecond here)."""
        deadline = time.monotonic() + min(self.timeout, SETTLE_S)
        while True:
            held = self._holds(backend, server)
            if held is None or _matches(held, wanted) or time.monotonic() >= deadline:
                return held
            time.sleep(0.002)

    def _holds(self, backend: str, server: str) -> Optional[Tuple[str, Optional[int]]]:
        """(address, port) the running server has, None if HAProxy shows no such server."""
        try:
            rows = [row for row in self.servers(backend) if row["name"] == server]
        except RuntimeApiError:
            return None
        if not rows:
            return None
        try:
            port = rows[0]["port"]
            return ipaddress.ip_address(str(rows[0]["addr"])).compressed, port if isinstance(port, int) else None
        except ValueError:
            return None

    def set_server_state(self, backend: str, server: str, state: str) -> None:
        """`set server be/srv state ready|drain|maint`; HAProxy answers nothing on success."""
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, not {state!r}")
        cmd = f"set server {_name('backend', backend)}/{_name('server', server)} state {state}"
        answer = self.raw(cmd)
        if answer.strip():
            raise self._error(cmd, answer)

    def set_server_weight(self, backend: str, server: str, weight: int) -> None:
        """`set server be/srv weight N` (0-256); HAProxy answers nothing on success, and refuses
        with a message for backends whose algorithm is static (e.g. `balance source`)."""
        if not 0 <= int(weight) <= 256:
            raise ValueError(f"weight must be 0-256, not {weight!r}")
        cmd = f"set server {_name('backend', backend)}/{_name('server', server)} weight {int(weight)}"
        answer = self.raw(cmd)
        if answer.strip():
            raise self._error(cmd, answer)

    def servers(self, backend: str) -> List[Dict[str, object]]:
        """The backend's servers, parsed from `show servers state <backend>`."""
        return self._servers_state(f"show servers state {_name('backend', backend)}")

    def all_servers(self) -> List[Dict[str, object]]:
        """Every backend's servers, from one `show servers state` (rows carry `be_name`)."""
        return self._servers_state("show servers state")

    def _servers_state(self, cmd: str) -> List[Dict[str, object]]:
        answer = self.command(cmd)
        try:
            return parse_servers_state(answer)
        except (ValueError, KeyError) as exc:
            raise self._error(cmd, answer) from exc

    def show_info(self) -> Dict[str, str]:
        """`show info` as a dict (Pid, Uptime_sec, Version, ...)."""
        answer = self.command("show info")
        info = parse_info(answer)
        if "Pid" not in info:
            raise self._error("show info", answer)
        return info

    def wait_for_worker(self, pids: Iterable[int], *, timeout: float = 5.0,
                        confirmations: int = 2) -> Dict[str, str]:
        """After a reload, wait until the worker answering here is one of `pids`.

        Right after a reload a connection may still reach the old worker, so the new
        PID must answer `confirmations` times in a row. Returns that `show info`.
        """
        wanted = {int(pid) for pid in pids}
        deadline, seen, last = time.monotonic() + timeout, 0, "nothing"
        while time.monotonic() < deadline:
            try:
                info = self.show_info()
                last = f"PID {info['Pid']}"
                seen = seen + 1 if int(info["Pid"]) in wanted else 0
                if seen >= confirmations:
                    return info
            except RuntimeApiError as exc:
                seen, last = 0, str(exc)
            time.sleep(0.02)
        raise RuntimeApiError(f"runtime API {self.socket_path}: no answer from worker "
                              f"{sorted(wanted)} within {timeout:g}s (last: {last})")


__all__: Tuple[str, ...] = ("RuntimeApi", "parse_servers_state", "parse_info", "admin_state",
                            "unix_exchange", "STATES")
