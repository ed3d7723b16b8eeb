"""A List's items signature, computed as its body streams in (no whole body in memory).

In a real cluster a List's resourceVersion is etcd's global revision and moves with every
write anywhere (node leases, Events), so a list whose items did not change still has a new
resourceVersion (kubernetes/kubernetes#118239); its items are the same bytes. The signature
is the length and a keyed SHA-256 of the bytes between `"items":[` and the body's last `]`:
'' when the body has more pages (a `continue` token) or another layout. The key is random
per process (the signatures live only in this process): a collision cannot be made to order.
"""
from __future__ import annotations

import hashlib
import os
import re
from typing import Optional

HEAD = 4096  # the List's own metadata is in its first bytes (Go encodes struct fields in order)
_KEY = os.urandom(16)
HEAD_ITEMS = re.compile(rb'\s*\{[^\[]*?"metadata"\s*:\s*\{([^{}]*)\}\s*,\s*"items"\s*:\s*\[')


class Signer:
    """Feed a body's chunks in order to `update`; `result()` is its signature, and `head`
    its first HEAD bytes (or all of it, if shorter)."""

    def __init__(self) -> None:
        self.head = b""
        self._hash: Optional["hashlib._Hash"] = None  # None: still reading the head
        self._failed = False
        self._length = 0
        self._pending = b""  # bytes from the last `]` seen on: maybe after the items' end

    @property
    def head_done(self) -> bool:
        """Whether `head` holds all it will (the rest of the body only goes to the hash)."""
        return self._hash is not None or self._failed

    def update(self, chunk: bytes) -> None:
        if self._failed:
            return
        if self._hash is None:
            self.head += chunk
            if len(self.head) >= HEAD:
                self._start()
            return
        self._feed(chunk, 0)

    def _feed(self, data: bytes, start: int) -> None:
        if self._pending:
            data, start = self._pending + data[start:], 0
        end = data.rfind(b"]", start)
        if end < 0:
            self._pending = data[start:]
            return
        assert self._hash is not None
        self._hash.update(memoryview(data)[start:end])  # before a `]`: inside the items for sure
        self._length += end - start
        self._pending = data[end:]

    def result(self) -> str:
        if self._hash is None and not self._failed:
            self._start()
        end = self._pending.rfind(b"]")
        if self._failed or self._hash is None or end < 0:
            return ""
        self._hash.update(memoryview(self._pending)[:end])
        return "%d.%s" % (self._length + end, self._hash.hexdigest())

    def _start(self) -> None:
        head, self.head = self.head, self.head[:HEAD]
        m = HEAD_ITEMS.match(head, 0, min(len(head), HEAD))
        if not m or b'"continue"' in m.group(1):
            self._failed = True
            return
        self._hash = hashlib.sha256(_KEY)  # keyed by a secret prefix; SHA-256 is the fastest here
        self._feed(head, m.end())  # a whole body in one chunk is not copied


def of(body: bytes) -> str:
    """The signature of a whole body."""
    signer = Signer()
    signer.update(body)
    return signer.result()
