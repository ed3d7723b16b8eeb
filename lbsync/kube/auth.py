"""How a request proves who it is: a bearer token (fixed or from a file) and/or a client cert.

Exists so rotation lives in one place: a token file (projected service-account tokens are
rewritten by the kubelet) is re-read when it changes, and `refresh()` after a 401 forces a
re-read. Secret material written to disk goes into a private 0700 directory, files 0600,
removed at exit. Nothing here ever puts a token into a message.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import time
from typing import Callable, Optional, Tuple

from lbsync.exceptions import CredentialsError

CertPair = Tuple[str, str]  # (certificate file, key file)
_private_dir: Optional[str] = None
_private_lock = threading.Lock()


def private_file(data: bytes, name: str) -> str:
    """Write `data` to a new mode-600 file in a per-process private directory; return its path."""
    global _private_dir
    with _private_lock:
        if _private_dir is None:
            _private_dir = tempfile.mkdtemp(prefix="lbsync-kube-")  # mode 0700
            atexit.register(shutil.rmtree, _private_dir, True)
        fd, path = tempfile.mkstemp(prefix=name + "-", dir=_private_dir)  # mode 0600
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


class Auth:
    """No credentials (anonymous). Subclasses supply a token and/or a client certificate."""

    kind = "none"

    def token(self) -> Optional[str]:
        return None

    def cert(self) -> Optional[CertPair]:
        return None

    def refresh(self) -> bool:
        """Drop cached material after a 401; True when a retry may now succeed."""
        return False


class StaticAuth(Auth):
    """A token and/or client certificate fixed in the kubeconfig."""

    def __init__(self, token: Optional[str] = None, cert: Optional[CertPair] = None) -> None:
        self._token = token
        self._cert = cert
        self.kind = "+".join(k for k, v in (("token", token), ("client-cert", cert)) if v) or "none"

    def token(self) -> Optional[str]:
        return self._token

    def cert(self) -> Optional[CertPair]:
        return self._cert


class TokenFileAuth(Auth):
    """A token read from a file, re-read when the file changes (checked every few seconds)."""

    kind = "token-file"

    def __init__(self, path: str, *, cert: Optional[CertPair] = None, check_every: float = 3.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._cert = cert
        self._check_every = check_every
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Optional[str] = None
        self._stamp: Optional[Tuple[int, int, int]] = None
        self._checked = float("-inf")

    def token(self) -> Optional[str]:
        with self._lock:
            now = self._clock()
            if self._token is None or now - self._checked >= self._check_every:
                self._checked = now
                self._reload(force=False)
            return self._token

    def cert(self) -> Optional[CertPair]:
        return self._cert

    def refresh(self) -> bool:
        with self._lock:
            self._checked = self._clock()
            self._reload(force=True)
        return True

    def _reload(self, force: bool) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if not force and stamp == self._stamp and self._token is not None:
                return
            with open(self.path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as e:
            if self._token is not None:
                return  # mid-rotation (symlink swap): keep the last good token
            raise CredentialsError("token file %s: cannot read: %s" % (self.path, e.strerror)) from None
        if not token:
            if self._token is not None:
                return
            raise CredentialsError("token file %s is empty" % self.path)
        self._token, self._stamp = token, stamp
