"""Run a real HAProxy in master-worker mode for a test, and always clean it up.

`HAProxyProcess(cfg_path, workdir)` picks the socket, pid file and log paths first
(so the test can write them into the config), then `.start()` runs
`haproxy -W -f CFG -p PIDFILE -S MASTER_SOCK,mode,600` in the foreground, in its own
session, with stdout/stderr in `workdir/haproxy.log`. `.stop()` kills that whole
process group: the master and every worker it forked. It parses `show proc` itself, independently of
lbsync.haproxy, so the tests do not check lbsync with lbsync's own parser.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import List, Optional, Sequence, Tuple

from tests.helpers.loopback import outside

HAPROXY = os.environ.get("TEST_HAPROXY_BINARY") or shutil.which("haproxy") or "/usr/sbin/haproxy"
_SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes; stay clear of it


def haproxy_available() -> bool:
    return os.access(HAPROXY, os.X_OK)


def haproxy_version() -> Tuple[int, int]:
    """(major, minor) of the binary the tests run, from `haproxy -v`."""
    out = subprocess.run([HAPROXY, "-v"], capture_output=True, text=True, timeout=10).stdout
    match = re.search(r"version (\d+)\.(\d+)", out)
    if match is None:
        raise RuntimeError(f"cannot read the version from `{HAPROXY} -v`: {out[:200]!r}")
    return int(match.group(1)), int(match.group(2))


def unix_command(path: str, cmd: str, timeout: float = 5.0) -> str:
    """Send one line, half-close, read to EOF; retries while the socket refuses (reloads)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                sock.connect(path)
                sock.sendall(cmd.encode() + b"\n")
                sock.shutdown(socket.SHUT_WR)
                chunks = []
                while True:
                    data = sock.recv(65536)
                    if not data:
                        return b"".join(chunks).decode()
                    chunks.append(data)
        except (ConnectionRefusedError, ConnectionResetError, FileNotFoundError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def current_workers(show_proc: str) -> List[int]:
    """PIDs listed under '# workers' in a master CLI `show proc` answer."""
    pids, in_workers = [], False
    for line in show_proc.splitlines():
        if line.startswith("#"):
            in_workers = line.strip() == "# workers"
        elif in_workers and line.split()[1:2] == ["worker"]:
            pids.append(int(line.split()[0]))
    return pids


def http_config(bind_port: int, servers: Sequence[str], *, admin_socket: Optional[str] = None,
                backend: str = "be", backend_extra: str = "", global_extra: str = "") -> str:
    """A warning-free HTTP config: one frontend on 127.0.0.1:bind_port, one backend.

    `servers` are full `server ...` lines without indentation.
    """
    stats = f"    stats socket {admin_socket} mode 600 level admin\n" if admin_socket else ""
    lines = "".join(f"    {line}\n" for line in servers)
    return (f"global\n{stats}{global_extra}"
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n"
            "    timeout server 10s\n    timeout check 1s\n"
            f"frontend fe\n    bind 127.0.0.1:{bind_port}\n    default_backend {backend}\n"
            f"backend {backend}\n    balance roundrobin\n{backend_extra}{lines}")


class HAProxyProcess:
    """A foreground HAProxy master with its workers, owned by one test."""

    def __init__(self, cfg_path: str, workdir: str, *, binary: str = HAPROXY,
                 extra_args: Sequence[str] = ()) -> None:
        self.cfg_path, self.workdir = os.fspath(cfg_path), os.fspath(workdir)
        self.binary, self.extra_args = binary, list(extra_args)
        sock_dir = self.workdir
        self._short_dir: Optional[str] = None
        if len(os.path.join(sock_dir, "master.sock")) > _SUN_PATH_MAX:
            sock_dir = self._short_dir = tempfile.mkdtemp(prefix="hx-", dir="/tmp")
        self.master_socket = os.path.join(sock_dir, "master.sock")
        self.admin_socket = os.path.join(sock_dir, "admin.sock")
        self.pidfile = os.path.join(self.workdir, "haproxy.pid")
        self.log_path = os.path.join(self.workdir, "haproxy.log")
        self.proc: Optional[subprocess.Popen] = None

    @property
    def argv(self) -> List[str]:
        return [self.binary, "-W", "-f", self.cfg_path, "-p", self.pidfile,
                "-S", f"{self.master_socket},mode,600", *self.extra_args]

    @property
    def master_pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def _loopback_only(self, when: str) -> None:
        """The suite's network rule (tests/helpers/loopback.py): refuse to run, or fail the test."""
        try:
            with open(self.cfg_path) as f:
                bad = outside(f.read())
        except OSError:
            return  # no config yet: haproxy itself will say so
        if bad:
            raise AssertionError(f"a live HAProxy {when} a config with servers outside loopback "
                                 f"(health checks are traffic): {bad[:5]}")

    def start(self, timeout: float = 10.0) -> "HAProxyProcess":
        self._loopback_only("refuses to start with")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.worker_pids() and os.path.exists(self.pidfile):
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"haproxy did not come up within {timeout}s:\n{self.log()}")

    def master_command(self, cmd: str, timeout: float = 5.0) -> str:
        return unix_command(self.master_socket, cmd, timeout)

    def admin_command(self, cmd: str, timeout: float = 5.0) -> str:
        return unix_command(self.admin_socket, cmd, timeout)

    def worker_pids(self) -> List[int]:
        """Current (not old) worker PIDs, from the master CLI."""
        return current_workers(self.master_command("show proc"))

    def wait_for_new_worker(self, old: Sequence[int], timeout: float = 5.0) -> List[int]:
        """Poll until a current worker is not in `old`; return the current workers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.worker_pids()
            if set(pids) - set(old):
                return pids
            time.sleep(0.02)
        raise AssertionError(f"no new worker within {timeout}s (still {old}):\n{self.log()}")

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    def _kill_group(self, sig: int) -> None:
        try:
            os.killpg(self.master_pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the master and all workers; SIGKILL whatever lingers. Idempotent. Fails
        the test if the config it ran last has servers outside loopback."""
        ran = self.proc is not None
        if self.proc is not None:
            self._kill_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group(signal.SIGKILL)
                self.proc.wait(timeout)
            self._kill_group(signal.SIGKILL)  # workers (same process group) that outlived it
            self.proc = None
        if self._short_dir:
            shutil.rmtree(self._short_dir, ignore_errors=True)
            self._short_dir = None
        if ran:
            self._loopback_only("ran")

    def __enter__(self) -> "HAProxyProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
