"""Reloading a real master-worker HAProxy three ways, and catching rejected reloads."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from lbsync.exceptions import ReloadFailed
from lbsync.haproxy.reload import (MasterSocketReloader, SignalReloader, master_command,
                                   parse_show_proc)
from lbsync.haproxy.reload_command import CommandReloader
from tests.helpers.backends import Backend, free_port, get_json, hits
from tests.helpers.haproxy_proc import HAProxyProcess, haproxy_available, haproxy_version, http_config

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not haproxy_available(), reason="haproxy binary not installed")]


class Lb:
    """A running HAProxy in front of backends b1 and b2; `point_to()` rewrites its config."""

    def __init__(self, tmp_path):
        self.b1, self.b2 = Backend("b1").start(), Backend("b2").start()
        self.port, self.cfg = free_port(), str(tmp_path / "haproxy.cfg")
        self.proc = HAProxyProcess(self.cfg, str(tmp_path))
        self.point_to(self.b1)
        self.proc.start()

    def point_to(self, backend, extra=()):
        text = http_config(self.port, [f"server s1 {backend.address}", *extra],
                           admin_socket=self.proc.admin_socket)
        with open(self.cfg, "w") as fh:
            fh.write(text)

    def served_by(self):
        return get_json(self.port)["backend"]

    def close(self):
        try:
            self.proc.stop()
        finally:
            self.b1.stop()
            self.b2.stop()


@pytest.fixture
def lb(tmp_path):
    lb = Lb(tmp_path)
    try:
        yield lb
    finally:
        lb.close()


def _assert_took_over(lb, result, old):
    assert result.ok and result.old_pids == tuple(old)
    assert result.new_pids and not set(result.new_pids) & set(old)
    assert lb.proc.worker_pids() == list(result.new_pids)
    assert 0 < result.duration_s < 10


def test_master_socket_reload(lb):
    assert lb.served_by() == "b1"
    old = lb.proc.worker_pids()
    lb.point_to(lb.b2)
    result = MasterSocketReloader(lb.proc.master_socket).reload("endpoints changed")
    _assert_took_over(lb, result, old)
    assert "endpoints changed" in result.detail
    assert hits(lb.port, 5) == {"b2": 5}


def test_back_to_back_reloads(lb):
    reloader = MasterSocketReloader(lb.proc.master_socket)
    seen = set(lb.proc.worker_pids())
    for backend in (lb.b2, lb.b1, lb.b2):
        lb.point_to(backend)
        result = reloader.reload("again")
        assert not set(result.new_pids) & seen
        seen.update(result.new_pids)
        assert lb.served_by() == backend.name


def test_signal_reload_confirmed(lb):
    old = lb.proc.worker_pids()
    lb.point_to(lb.b2)
    reloader = SignalReloader(lb.proc.pidfile, confirm_socket=lb.proc.master_socket)
    _assert_took_over(lb, reloader.reload("signal"), old)
    assert lb.served_by() == "b2"


def test_signal_reload_unconfirmed(lb):
    old = lb.proc.worker_pids()
    lb.point_to(lb.b2)
    result = SignalReloader(lb.proc.pidfile).reload("signal")
    assert result.ok and "not confirmed" in result.detail
    lb.proc.wait_for_new_worker(old)
    assert lb.served_by() == "b2"


def test_command_reload(lb):
    old = lb.proc.worker_pids()
    lb.point_to(lb.b2)
    result = CommandReloader(f"kill -USR2 $(head -n1 {lb.proc.pidfile}) && echo sent").reload("cmd")
    assert result.ok and "sent" in result.detail
    lb.proc.wait_for_new_worker(old)
    assert lb.served_by() == "b2"


@pytest.mark.parametrize("reloader", ["master", "signal"])
def test_rejected_config_keeps_old_worker(lb, reloader):
    old = lb.proc.worker_pids()
    lb.point_to(lb.b2, extra=["bogus_keyword on"])
    if reloader == "master":
        r = MasterSocketReloader(lb.proc.master_socket, timeout=5, config_path=lb.cfg)
    else:
        r = SignalReloader(lb.proc.pidfile, confirm_socket=lb.proc.master_socket, timeout=5,
                           config_path=lb.cfg)
    started = time.monotonic()
    with pytest.raises(ReloadFailed, match="rejected") as info:
        r.reload("broken")
    assert time.monotonic() - started < 3  # detected from `show proc`, not by timing out
    assert "unknown keyword 'bogus_keyword'" in str(info.value)
    assert lb.proc.worker_pids() == old
    assert hits(lb.port, 3) == {"b1": 3}
    with pytest.raises(ReloadFailed):  # a second failure in a row is still noticed
        r.reload("still broken")
    lb.point_to(lb.b2)
    _assert_took_over(lb, r.reload("fixed"), old)
    assert lb.served_by() == "b2"


def test_rejected_reload_without_config_path_still_fails(lb):
    """Rejected on every version; the reason is only known where HAProxy tells it (2.7+)."""
    old = lb.proc.worker_pids()
    lb.point_to(lb.b2, extra=["bogus_keyword on"])
    with pytest.raises(ReloadFailed, match=rf"rejected the reload.*\[{old[0]}\] keep serving") as info:
        MasterSocketReloader(lb.proc.master_socket, timeout=5).reload("broken")
    assert lb.proc.worker_pids() == old and lb.served_by() == "b1"
    if haproxy_version() >= (2, 7):  # `reload` answers Success=0 and the startup log
        assert "unknown keyword 'bogus_keyword'" in str(info.value)
    else:  # nothing answered: the master's failed-reload counter is all there is
        assert "failed: 1" in str(info.value)


def test_startup_failure_that_haproxy_c_accepts(lb):
    """A port taken by someone else passes `haproxy -c` but fails the reload itself."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        old = lb.proc.worker_pids()
        with open(lb.cfg, "a") as fh:
            fh.write(f"frontend extra\n    bind 127.0.0.1:{busy}\n    default_backend be\n")
        with pytest.raises(ReloadFailed, match=rf"rejected the reload.*\[{old[0]}\] keep serving") as info:
            MasterSocketReloader(lb.proc.master_socket, timeout=5, config_path=lb.cfg).reload("x")
    assert lb.proc.worker_pids() == old
    assert lb.served_by() == "b1"
    if haproxy_version() >= (2, 7):  # HAProxy's own startup log names the socket
        assert f"127.0.0.1:{busy}" in str(info.value) and "cannot bind" in str(info.value)
    else:  # no startup log on 2.6: lbsync says the config itself is fine
        assert re.search("accepts .* at startup", str(info.value))


def test_master_command_answers(lb):
    text = master_command(lb.proc.master_socket, "show proc", 2)
    state = parse_show_proc(text)
    assert state.master_pid == lb.proc.master_pid and state.workers == tuple(lb.proc.worker_pids())


def test_master_socket_missing(tmp_path):
    with pytest.raises(ReloadFailed, match="cannot read HAProxy's state"):
        MasterSocketReloader(str(tmp_path / "none.sock"), timeout=0.3).reload("x")


def test_pidfile_problems(tmp_path):
    with pytest.raises(ReloadFailed, match="cannot read HAProxy pid file"):
        SignalReloader(str(tmp_path / "missing.pid")).reload("x")
    garbage = tmp_path / "garbage.pid"
    garbage.write_text("hello\n")
    with pytest.raises(ReloadFailed, match="holds no PID"):
        SignalReloader(str(garbage)).reload("x")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "stale.pid"
    stale.write_text(f"{dead.pid}\n")
    with pytest.raises(ReloadFailed, match="stale"):
        SignalReloader(str(stale)).reload("x")
    reused = tmp_path / "reused.pid"
    reused.write_text(f"{os.getpid()}\n")  # alive, but not haproxy: must not be signalled
    with pytest.raises(ReloadFailed, match="not haproxy"):
        SignalReloader(str(reused)).reload("x")


def test_command_failure_shows_last_lines():
    script = "for i in $(seq 1 50); do echo line$i; done; echo oops >&2; exit 3"
    with pytest.raises(ReloadFailed, match="exited with 3") as info:
        CommandReloader(script).reload("x")
    message = str(info.value)
    assert "oops" in message and "line50" in message and "line31" not in message


def test_command_timeout_and_missing_binary(tmp_path):
    started = time.monotonic()
    with pytest.raises(ReloadFailed, match="timed out"):
        CommandReloader(["sh", "-c", "echo waiting; sleep 10"], timeout=0.3).reload("x")
    assert time.monotonic() - started < 5
    with pytest.raises(ReloadFailed, match="cannot run"):
        CommandReloader([str(tmp_path / "no-such-binary")]).reload("x")


# HAProxy 2.6.12's exact answers, measured.
SHOW_PROC_OLD_WORKER = """\
#<PID>          <type>          <reloads>       <uptime>        <version>      
3198            master          5 [failed: 0]   0d00h00m35s     2.6.12-1+deb12u4
# workers
3818            worker          0               0d00h00m00s     2.6.12-1+deb12u4
# old workers
3756            worker          1               0d00h00m05s     2.6.12-1+deb12u4
# programs

"""
SHOW_PROC_FAILED = """\
#<PID>          <type>          <reloads>       <uptime>        <version>      
3198            master          7 [failed: 2]   0d00h00m38s     2.6.12-1+deb12u4
# workers
3818            worker          2               0d00h00m03s     2.6.12-1+deb12u4
# programs

"""


def test_parse_show_proc():
    state = parse_show_proc(SHOW_PROC_OLD_WORKER)
    assert (state.master_pid, state.reloads, state.failed) == (3198, 5, 0)
    assert state.workers == (3818,) and state.old_workers == (3756,)
    failed = parse_show_proc(SHOW_PROC_FAILED)
    assert (failed.reloads, failed.failed, failed.workers) == (7, 2, (3818,))


class FakeMaster:
    """A UNIX socket that answers like a 2.7+ master CLI whose reload fails."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                cmd = conn.makefile().readline().strip()
                if cmd == "reload":
                    conn.sendall(b"Success=0\n--\n[NOTICE]   (1) : haproxy version is 2.8.3\n"
                                 b"[ALERT]    (1) : config : parsing [x.cfg:9] : nope\n")
                elif cmd == "show proc":
                    conn.sendall(SHOW_PROC_FAILED.encode())


def test_success_0_answer_is_a_failure(tmp_path):
    fake = FakeMaster(str(tmp_path / "m.sock"))
    try:
        with pytest.raises(ReloadFailed, match=r"(?s)rejected.*parsing \[x.cfg:9\] : nope"):
            MasterSocketReloader(fake.path, timeout=2).reload("x")
    finally:
        fake.sock.close()
