"""Reload HAProxy with an operator-supplied command, such as `systemctl reload haproxy`.

The command's exit status is the only proof there is: lbsync cannot see which worker took
over, so a non-zero exit, a timeout (the whole process group is killed) or a command that
cannot start raises ReloadFailed with the tail of what the command printed.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from typing import Optional, Sequence, Union

from lbsync.exceptions import ReloadFailed
from lbsync.haproxy.reload import ReloadResult, tail_lines


class CommandReloader:
    """Runs an operator-supplied reload command; a string goes through /bin/sh."""

    def __init__(self, command: Union[str, Sequence[str]], *, timeout: float = 30.0) -> None:
        self.argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        self.display = command if isinstance(command, str) else shlex.join(self.argv)
        self.timeout = timeout

    def reload(self, reason: str) -> ReloadResult:
        started = time.monotonic()
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise ReloadFailed(f"cannot run reload command `{self.display}`: {exc.strerror}") from exc
        try:
            out, _ = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            out = self._kill(proc)
            raise ReloadFailed(f"reload command `{self.display}` timed out after {self.timeout:g}s"
                               + self._output(out)) from None
        if proc.returncode != 0:
            raise ReloadFailed(f"reload command `{self.display}` exited with {proc.returncode}"
                               + self._output(out))
        return ReloadResult(True, time.monotonic() - started, (), (),
                            f"`{self.display}` succeeded ({reason})" + self._output(out))

    @staticmethod
    def _kill(proc: subprocess.Popen) -> bytes:
        """Kill the command and everything it started; return what it printed."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            out, _ = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a grandchild escaped the group and holds the pipe
            return b""
        return out or b""

    @staticmethod
    def _output(out: Optional[bytes]) -> str:
        text = tail_lines((out or b"").decode("utf-8", "replace"))
        return f":\n{text}" if text else ""
