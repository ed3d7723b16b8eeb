"""Replace the live HAProxy config atomically: it is always either the old file or the new one.

A new config is staged as a temp file next to the live one (same directory, so the
final rename never crosses a filesystem), fsynced, checked, and only then renamed
over the live file; the directory is fsynced so the rename survives a crash. One
`.bak` copy of the previous config is kept for operators. Any OSError (disk full,
read-only filesystem, permissions) becomes ApplyError naming the path and the OS
reason, and never leaves a half-written live file or a stray temp file behind.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
import threading
from typing import Callable, Optional, Set, Tuple

from lbsync.exceptions import ApplyError

DEFAULT_MODE = 0o644
_TAG = "lbsync"
_in_flight: Set[str] = set()  # staged files of this process, never "stale"
_lock = threading.RLock()


def _target(path: str) -> str:
    """The real file behind `path`, so a symlinked config stays a symlink."""
    return os.path.realpath(os.fspath(path))


def _error(action: str, path: str, exc: OSError) -> ApplyError:
    reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "") or str(exc)
    return ApplyError(f"cannot {action} {path}: {reason}")


def _stale_pattern(target: str) -> "re.Pattern[str]":
    base = re.escape(os.path.basename(target))
    return re.compile(rf"^(?:\.{base}\.{_TAG}-(?:(\d+)-)?.*|{base}\.bak\.{_TAG}-(\d+))\.tmp$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(full: str, match: "Optional[re.Match[str]]") -> bool:
    if match is None or full in _in_flight:
        return False
    digits = match.group(1) or match.group(2)
    pid = int(digits) if digits else None
    return pid is None or pid == os.getpid() or not _pid_alive(pid)


def clean_stale(path: str) -> int:
    """Remove temp files left by a killed lbsync next to `path`; return how many.

    A temp file is stale unless this process is still working on it, or its name
    carries the PID of another process that is still alive.
    """
    target = _target(path)
    directory, pattern = os.path.dirname(target), _stale_pattern(target)
    removed = 0
    with _lock:
        for name in os.listdir(directory):
            full = os.path.join(directory, name)
            if _is_stale(full, pattern.match(name)):
                try:
                    os.unlink(full)
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


def _copy_owner_and_mode(fd: int, target: str) -> None:
    try:
        st = os.stat(target)
    except FileNotFoundError:
        os.fchmod(fd, DEFAULT_MODE)
        return
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
    except PermissionError:
        pass  # not root: the file stays ours, which is what the next writer needs anyway


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _new_temp(target: str) -> Tuple[int, str]:
    """Clean up after killed runs, then open a fresh temp file beside `target`."""
    directory, base = os.path.dirname(target), os.path.basename(target)
    with _lock:
        clean_stale(target)
        fd, staged = tempfile.mkstemp(prefix=f".{base}.{_TAG}-{os.getpid()}-", suffix=".tmp",
                                      dir=directory)
        _in_flight.add(staged)
    return fd, staged


def stage(path: str, text: str) -> str:
    """Write `text` to a new temp file beside `path` (same mode/owner), fsynced; return its path."""
    target = _target(path)
    try:
        fd, staged = _new_temp(target)
    except OSError as exc:
        raise _error("stage a new config next to", target, exc) from exc
    try:
        try:
            _copy_owner_and_mode(fd, target)
            _write_all(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        discard(staged)
        raise _error("write the new config for", target, exc) from exc
    return staged


def discard(staged: str) -> None:
    """Remove a staged file; missing is fine."""
    with _lock:
        _in_flight.discard(staged)
    try:
        os.unlink(staged)
    except FileNotFoundError:
        pass


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _backup(target: str) -> None:
    """Make `target.bak` the current live file: a hard link, or a copy where links fail."""
    if not os.path.exists(target):
        return
    bak = target + ".bak"
    tmp = f"{bak}.{_TAG}-{os.getpid()}.tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    try:
        os.link(target, tmp)
    except OSError:
        shutil.copy2(target, tmp)
    os.replace(tmp, bak)


def commit(staged: str, path: str, *, backup: bool = True) -> None:
    """Rename `staged` over `path` (keeping one `path.bak`), then fsync the directory.

    On failure the staged file is removed and the live file is left as it was.
    """
    target = _target(path)
    try:
        if backup:
            _backup(target)
        os.replace(staged, target)
        with _lock:
            _in_flight.discard(staged)
        _fsync_dir(os.path.dirname(target))
    except OSError as exc:
        discard(staged)
        raise _error("replace", target, exc) from exc


def read(path: str) -> str:
    """The file's text, '' if it does not exist."""
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise _error("read", os.fspath(path), exc) from exc


def replace(path: str, text: str, *, check: Optional[Callable[[str], object]] = None,
            backup: bool = True, current: Optional[str] = None) -> bool:
    """Stage `text`, run `check(staged_path)`, then commit. False when nothing changed.

    `current`: the live file's text if the caller just read it (saves reading a big file
    twice). Whatever `check` raises propagates unchanged, after the staged file is removed.
    """
    if (read(path) if current is None else current) == text and os.path.exists(path):
        return False
    staged = stage(path, text)
    try:
        if check is not None:
            check(staged)
    except BaseException:
        discard(staged)
        raise
    commit(staged, path, backup=backup)
    return True
