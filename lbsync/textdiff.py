"""`diff -u` of two configs, fast on big files where little changed (for --dry-run).

Pure text: knows nothing of HAProxy or the cluster.
"""
from __future__ import annotations

import difflib
import re
from typing import Optional, Tuple


def unified_diff(old: str, new: str, path: str, context: int = 3) -> str:
    """`diff -u` of two configs. The text both share at the start and the end is found by
    comparing the strings block by block (in C) and cut at line ends before any line is
    split: a one-endpoint change at 5,000 Services no longer splits 2 x 150,000 lines."""
    cut = _cut(old, new, context)
    if cut is None:
        return _line_diff(old, new, path, context, 0)
    h, ta, tb = cut
    return _line_diff(old[h:ta], new[h:tb], path, context, old.count("\n", 0, h))


def _line_diff(old: str, new: str, path: str, context: int, offset: int) -> str:
    """Lines both share at the start and the end are cut before difflib sees them (its cost
    grows faster than linearly), and hunk headers are shifted back (by `offset` more lines)."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    if not a or not b:  # a first config (or an emptied one): one hunk, no matching to do
        return _whole(a, b, path) if a != b else ""
    head = _common(a, b)
    tail = _common(a[:head - 1:-1] if head else a[::-1], b[:head - 1:-1] if head else b[::-1])
    start = max(0, head - context)
    a_mid, b_mid = a[start:len(a) - max(0, tail - context)], b[start:len(b) - max(0, tail - context)]
    lines = difflib.unified_diff(a_mid, b_mid, fromfile=path, tofile=path + " (new)", n=context)
    return "".join(_HUNK.sub(lambda m: _shift(m, start + offset), line) if line.startswith("@@") else line
                   for line in lines)


def _other_breaks(text: str) -> bool:
    """Line ends other than \\n (splitlines splits there too): such texts are diffed line by line."""
    return any(c in text for c in "\r\x0b\x0c\x1c\x1d\x1e") or (
        not text.isascii() and any(c in text for c in "\x85\u2028\u2029"))


def _cut(a: str, b: str, context: int) -> Optional[Tuple[int, int, int]]:
    """(h, ta, tb): a[:h] == b[:h] and a[ta:] == b[tb:], each whole lines, with `context`
    shared lines left on either side of what differs; None when nothing can be cut."""
    if a == b or _other_breaks(a) or _other_breaks(b):
        return None
    h = a.rfind("\n", 0, _shared(a, b, 1)) + 1  # the start of the line where they differ
    for _ in range(context):
        h = a.rfind("\n", 0, max(0, h - 1)) + 1 if h else 0
    shortest = min(len(a), len(b)) - h
    ta = len(a) - min(_shared(a, b, -1), shortest)  # a[ta:] == b[-(len(a) - ta):]
    for _ in range(context + 1):  # past the first line end inside the shared end, then context lines
        end = a.find("\n", ta)
        ta = len(a) if end < 0 else end + 1
    tb = ta + len(b) - len(a)
    return (h, ta, tb) if (h or ta < len(a)) and h < ta and h < tb else None


def _shared(a: str, b: str, direction: int, block: int = 1 << 16) -> int:
    """How many characters a and b share at the start (direction 1) or the end (-1)."""
    n, i = min(len(a), len(b)), 0
    while block:
        while i < n and _part(a, i, block, direction) == _part(b, i, block, direction):
            i = min(n, i + block)
        block //= 16
    return i


def _part(s: str, i: int, size: int, direction: int) -> str:
    return s[i:i + size] if direction > 0 else s[max(0, len(s) - i - size):len(s) - i]


def _whole(a: list, b: list, path: str) -> str:
    """What difflib prints when one side is empty, without its cost (0.4 s for 200,000 lines)."""
    def span(lines: list) -> str:
        return "0,0" if not lines else "1" if len(lines) == 1 else f"1,{len(lines)}"
    body = "".join("-" + line for line in a) + "".join("+" + line for line in b)
    return f"--- {path}\n+++ {path} (new)\n@@ -{span(a)} +{span(b)} @@\n{body}"


def _common(a: list, b: list) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


_HUNK = re.compile(r"^@@ -(\d+)((?:,\d+)?) \+(\d+)((?:,\d+)?) @@")


def _shift(m: "re.Match[str]", by: int) -> str:
    return f"@@ -{int(m.group(1)) + by}{m.group(2)} +{int(m.group(3)) + by}{m.group(4)} @@"

