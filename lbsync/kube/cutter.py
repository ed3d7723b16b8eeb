"""A List body cut into its items' bytes as it streams in: never whole in memory.

Why: a poll needs each item's bytes apart (lbsync.kube.pieces knows them by digest), and
building the 16 MB text of a 5,000-Service EndpointSliceList from its chunks costs twice
that at once (the growing buffer and the text; measured: +31 MB of RSS for one poll).

The API server writes a List as `{"kind":..,"apiVersion":..,"metadata":{..},"items":[` then
its items, each beginning with `{"metadata":` and separated by `,` with no whitespace, then
`]}`. Items are cut at `},{"metadata":`. Whether a cut is right is checked where the items
are decoded (pieces); a body laid out otherwise comes back whole (`Cut.fields` None).
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, List, NamedTuple, Optional

from lbsync.kube import signature

_CUT = b'},{"metadata":'
_TAIL = re.compile(rb'\]\s*\}\s*\Z')


class Cut(NamedTuple):
    """fields: the List without its items (None: another layout); items: each item's bytes;
    head and tail: the bytes around them. `body()` gives back the very bytes received."""

    fields: Optional[Dict[str, Any]]
    items: List[Any]  # bytes-like (memoryviews into the chunks received)
    head: bytes
    tail: bytes

    def body(self) -> bytes:
        return self.head + b",".join(self.items) + self.tail


class Cutter:
    """Feed a body's chunks in order to `feed`; `finish()` is its Cut."""

    def __init__(self) -> None:
        self._head: Optional[bytes] = None  # None: still reading it
        self._carry = b""  # bytes from the last cut on (or the whole body, once not cut)
        self._items: List[bytes] = []
        self._failed = False

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk (bytes or a bytearray: a whole body held is never copied)."""
        data = self._carry + chunk if self._carry else chunk
        if self._failed:
            self._carry = bytes(data)  # a held body's buffer is written again by a later poll
            return
        at = 0
        if self._head is None:
            m = signature.HEAD_ITEMS.match(data, 0, min(len(data), signature.HEAD))
            if m is None:
                self._carry, self._failed = bytes(data), len(data) >= signature.HEAD
                return
            self._head, at = bytes(data[:m.end()]), m.end()
        items, view = self._items, memoryview(data)
        while True:
            found = data.find(_CUT, at)
            if found < 0:
                break
            items.append(view[at:found + 1])  # no copy: the chunk is freed with its last item
            at = found + 2
        self._carry = bytes(data[at:])

    def finish(self) -> Cut:
        carry, head, items = self._carry, self._head, self._items
        if head is None or self._failed:
            return Cut(None, [], b"", carry)
        end = carry.rfind(b"]")
        fields: Optional[Dict[str, Any]] = None
        if end >= 0 and _TAIL.match(carry, end):
            try:
                fields = json.loads(head + b"]}")
            except ValueError:
                fields = None
        last = carry[:end]
        if fields is not None and last.strip():
            return Cut(fields, items + [last], head, carry[end:])
        if fields is not None and not items:
            return Cut(fields, [], head, carry)  # no items
        # another layout (or a cut with nothing after it): the body again, whole
        return Cut(None, [], b"", head + b"".join(bytes(i) + b"," for i in items) + carry)
