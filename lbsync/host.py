"""The daemon's dealings with its host: systemd's notify socket and glibc's heap.

Both are no-ops where they do not apply (not under systemd, not glibc), so the loop in
lbsync.daemon calls them unconditionally. Knows nothing of Kubernetes or HAProxy.
"""
from __future__ import annotations

import os
import socket

from lbsync import logs

log = logs.get("lbsync.host")


def _libc_trim():
    try:
        import ctypes
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


_TRIM = _libc_trim()


def release_memory() -> None:
    """Hand the free memory of a big pass back to the OS (glibc keeps it otherwise), so the
    next poll's decoding starts from a small footprint instead of stacking on top of it."""
    if _TRIM is not None:
        _TRIM(0)


def notify(message: str) -> bool:
    """sd_notify: tell systemd (Type=notify) we are ready; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(message.encode(), address)
        return True
    except OSError as e:
        log.warning("systemd.notify_failed", error=str(e))
        return False
