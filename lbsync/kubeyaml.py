"""The YAML kubectl prints, read line by line: a 5,000-Service dump in about JSON's time.

Why: even built from libyaml's events (yamlstream), a `kubectl get ... -o yaml` dump costs a
Python call per event, six times JSON. kubectl writes a small regular part of YAML: block
mappings and sequences, one key or `- ` entry a line, plain and quoted scalars, `|` and `|-`
block scalars, `{}` and `[]` for empties. Exactly that part is read here; scalars are resolved by
yamlstream's SafeLoader rules (so `port: 80` is 80, `yes` is True, timestamps are datetimes,
as yaml.safe_load gives). Anything else in a text (tabs, comments, anchors, tags, flow
collections, multi-line flow scalars, `---`, other line breaks, ...) raises Unsupported for the
whole text, before any result is returned: the caller reads that text the full way.
Keys in `drop` are left out of every mapping (never read by lbsync); the `key: word` lines of
a dropped mapping are only matched, not taken apart (each else costs a parse: a Pod reference's
name and uid are unique per endpoint). Pure: text in, objects out.
"""
from __future__ import annotations

import gc
import json
import re
from typing import Any, Dict, FrozenSet, Iterator, List, Optional, Tuple

import yaml

from lbsync.yamlstream import STR, Unsupported, _Scalars

# a plain key: what partitioning a line at its first ": " leaves before it
_KEY = re.compile(r"[^\s\-?:,\[\]{}#&*!|>'\"%@`](?:[^\s:]|:(?=\S)){0,1000}")
# what kubectl never writes and this reader does not judge: other breaks, tabs, BOM, non-printables
_ODD = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
_DOUBLE = re.compile(r'"((?:[^"\\]|\\.)*)"')
_SINGLE = re.compile(r"'((?:[^']|'')*)'")
_JSON_ESCAPE = re.compile(r"\\(?:[\\\"/bfnrt]|u(?![dD][89a-fA-F])[0-9a-fA-F]{4})")  # same in YAML
_STARTS = set("-?:,[]{}#&*!|>'\"%@` ")
# the first characters of texts SafeLoader's implicit resolvers may take for other than strings
_RESOLVED_FIRST = frozenset(k for k in yaml.SafeLoader.yaml_implicit_resolvers if k)
# a plain text that is a string for sure: a first letter no resolver is registered for, no indicator
# (or an address: digits with two dots or more are no number, date or time; or a uid)
_WORD = re.compile(r"[^\W\d_FNOTYfnoty][\w./-]*|[0-9]+(?:\.[0-9]+){2,}"
                   r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_QUOTED = re.compile(r'"[^"\\]*"')  # a double-quoted string without escapes
# a `key: value` line parse() takes as is, its value a string for sure: in a dropped mapping, a no-op
_IGNORED = re.compile(r"[A-Za-z][\w./-]*: (?:%s)" % _WORD.pattern)
_NONE = object()


def load(text: str, drop: FrozenSet[str] = frozenset()) -> List[Any]:
    """The document of `text` as yaml.safe_load_all gives it (none when empty), less `drop`.
    Raises Unsupported for text beyond the part of YAML described above."""
    if _odd(text) or (text and not text.endswith("\n")):
        raise Unsupported("not kubectl's YAML")
    collecting = gc.isenabled()
    gc.disable()  # a million new objects, no cycle among them: the collector's passes are waste
    try:
        root = _Reader(drop).read(text)
    finally:
        if collecting:
            gc.enable()
    return [] if root is None else [root]


def _odd(text: str) -> bool:
    if text.isascii():  # the usual case, 10 times faster than the regex
        return bool(text.encode("ascii").translate(None, _PRINTABLE_ASCII))
    return _ODD.search(text) is not None


_PRINTABLE_ASCII = bytes(range(0x20, 0x7f)) + b"\n"


class _Reader:
    """Open containers are a stack of (column, container), its top also in locals: a mapping's
    column is its keys' one, a sequence's its dashes' one plus 0.5, so that one comparison tells
    a `key: value` line that belongs to the open mapping (most lines). A `key:` line without a
    value leaves its key pending: a container the next line opens deeper is its value, else
    null. Each distinct line is taken apart once (`_Lines`)."""

    def __init__(self, drop: FrozenSet[str]) -> None:
        self.drop, self.lines = drop, _Lines(drop)

    def read(self, text: str) -> Any:  # noqa: C901 -- one loop, locals only: it runs per line
        drop, cache, parse = self.drop, self.lines.cache, self.lines.parse
        holder: Dict[Any, Any] = {}
        stack: List[Tuple[float, Any]] = [(-1, holder)]
        tcol, tobj = _PENDING_COL, holder  # while a key is pending, no line takes the short way
        pending, pend_map, pend_col = "root", holder, -1
        block: Optional[List[str]] = None
        dropped, dcol, pad = None, _PENDING_COL, ""  # the mapping of a key in `drop`: no one reads its lines
        for chunk in _chunks(text):
            for line in chunk.split("\n"):
                if block is not None:
                    if margin is None:
                        margin = _margin(line, block_col)
                    if line.startswith(margin) or not line.strip(" "):
                        block.append(line[len(margin):])
                        continue
                    _literal(block, block_map, block_key, header, drop)
                    block = None
                if tobj is dropped and tcol == dcol and line.startswith(pad) and _IGNORED.fullmatch(line, dcol):
                    continue  # `key: word` in it: parse() would only store the value, in a mapping dropped
                fast, col, dash, k, kind, v = cache.get(line) or parse(line)
                if fast == tcol and kind is _VALUE:
                    tobj[k] = v
                    continue
                if kind is _BLANK:
                    continue
                if pending is not _NONE:
                    if col > pend_col or (dash and col == pend_col):
                        value: Any = [] if dash else {}
                        stack.append((col + 0.5 if dash else col, value))
                    else:
                        value = None
                    if pending not in drop:
                        pend_map[pending] = value
                    elif value.__class__ is dict:
                        dropped, dcol, pad = value, col, " " * col
                    pending = _NONE
                    tcol, tobj = stack[-1]
                if dash:
                    while tcol > col + 0.5:
                        stack.pop()
                        tcol, tobj = stack[-1]
                    if tcol != col + 0.5:
                        raise Unsupported("an entry out of place: %r" % line)
                    if k is _NONE:
                        tobj.append(v if kind is _VALUE else {} if kind is _EMPTY_MAP else [])
                        continue
                    tobj.append({})
                    col += 2
                    tcol, tobj = col, tobj[-1]
                    stack.append((tcol, tobj))
                else:
                    while tcol > col:
                        stack.pop()
                        tcol, tobj = stack[-1]
                    if tcol != col:
                        raise Unsupported("a key out of place: %r" % line)
                if kind is _VALUE:
                    tobj[k] = v
                elif kind is _PENDING:
                    pending, pend_map, pend_col, tcol = k, tobj, col, _PENDING_COL
                elif kind is _EMPTY_MAP or kind is _EMPTY_SEQ:
                    if k not in drop:
                        tobj[k] = {} if kind is _EMPTY_MAP else []
                elif kind is _BLOCK:
                    block, margin, block_col, block_map, block_key, header = [], None, col, tobj, k, v
        if block is not None:
            _literal(block, block_map, block_key, header, drop)
        if pending is not _NONE and pending not in drop:
            pend_map[pending] = None
        return holder.get("root")


def _chunks(text: str, size: int = 1 << 18) -> Iterator[str]:
    """`text` (ending in a line break) in pieces of whole lines, each without its last break:
    its lines, never a list of all of them at once."""
    start, end = 0, len(text)
    while start < end:
        stop = text.find("\n", start + size)
        stop = end - 1 if stop < 0 else stop
        yield text[start:stop]
        start = stop + 1


def _margin(first: str, col: int) -> str:
    """A block scalar's indentation, from its first line: deeper than its key, not blank."""
    indent = len(first) - len(first.lstrip(" "))
    if indent <= col or not first.strip(" "):
        raise Unsupported("a block scalar's first line: %r" % first)
    return " " * indent


def _literal(lines: List[str], mapping: Dict[Any, Any], key: Any, header: str, drop: FrozenSet[str]) -> None:
    """A `|` (clip: one final break) or `|-` (strip) literal's value from its lines."""
    while not lines[-1]:
        lines.pop()
    if key not in drop:
        mapping[key] = "\n".join(lines) + ("\n" if header == "|" else "")


class _Lines:
    """Each distinct line taken apart once: (column, `- ` or not, key, kind, value); the cache
    is emptied when full, so unique lines (uids, addresses) do not pile up."""

    def __init__(self, drop: FrozenSet[str], most: int = 100000) -> None:
        self.drop, self.most, self.values = drop, most, _Values()
        self.cache: Dict[str, Any] = {}

    def parse(self, line: str) -> Any:
        """The common case inline (`key: value`, both texts seen before): it runs per new line."""
        cache, seen = self.cache, self.values.seen
        if len(cache) >= self.most:
            cache.clear()
            seen.clear()
        s = line.lstrip(" ")
        col, dash = len(line) - len(s), s[:2] == "- "
        if dash:
            s = s[2:]
        key, sep, text = s.partition(": ")
        k, v = seen.get(key, _NONE), seen.get(text, _NONE)
        if v is _NONE:  # a string for sure, and likely unique (a uid, a name): not kept in `seen`
            v = text if _WORD.fullmatch(text) else text[1:-1] if _QUOTED.fullmatch(text) else _NONE
        if sep and k is not _NONE and v is not _NONE:
            info = (-9 if dash else col, col, dash, k, _DROPPED if k in self.drop else _VALUE, v)
        elif dash and not sep and s[-1:] != ":" and (_WORD.fullmatch(s) or seen.get(s, _NONE) is not _NONE):
            info = (-9, col, dash, _NONE, _VALUE, seen.get(s, s))  # `- entry` (an address)
        else:
            info = self._parts(col, dash, s) if s else _BLANK_LINE
        cache[line] = info
        return info

    def _parts(self, col: int, dash: bool, s: str) -> Tuple[int, int, bool, Any, Any, Any]:
        key, sep, text = s.partition(": ")
        if sep:
            seen = self.values.seen
            k = seen.get(key, _NONE)
            if k is _NONE:
                k = self._key(key)
            v = seen.get(text, _NONE)
            kind, v = (_VALUE, v) if v is not _NONE else self._value(text)
            return -9 if dash else col, col, dash, k, _DROPPED if kind is _VALUE and k in self.drop else kind, v
        if s[-1] == ":":
            return -9, col, dash, self._key(s[:-1]), _PENDING, None
        kind, value = self._value(s) if dash else (None, None)
        if kind is None or kind is _BLOCK:
            raise Unsupported("not a key or an entry: %r" % s)
        return -9, col, dash, _NONE, kind, value

    def _key(self, text: str) -> Any:
        if not _KEY.fullmatch(text) and text[:1] not in ("'", '"'):  # quoted keys: `"80": x`
            raise Unsupported("a key: %r" % text)
        return self.values(text)

    def _value(self, text: str) -> Tuple[object, Any]:
        if text == "{}" or text == "[]":
            return (_EMPTY_MAP if text == "{}" else _EMPTY_SEQ), None
        if text == "|" or text == "|-":
            return _BLOCK, text
        return _VALUE, self.values(text)


_VALUE, _PENDING, _EMPTY_MAP, _EMPTY_SEQ, _BLOCK, _DROPPED, _BLANK = (object() for _ in range(7))
_BLANK_LINE = (-9, -9, False, _NONE, _BLANK, None)
_PENDING_COL = -3  # no line's column


class _Values(_Scalars):
    """A value's text as written (plain or quoted) to its object, each distinct short text once."""

    def __call__(self, text: str) -> Any:
        value = self.seen.get(text, _NONE)
        if value is _NONE:
            value = text if _WORD.fullmatch(text) else self._written(text)
            if len(text) <= 64:
                self.seen[text] = value
        return value

    def _written(self, text: str) -> Any:
        first = text[:1]
        if first == '"':
            return _double(text)
        if first == "'":
            m = _SINGLE.fullmatch(text)
            if m is None:
                raise Unsupported("a single-quoted scalar: %r" % text)
            return m.group(1).replace("''", "'")
        if not text or (first in _STARTS and not (first == "-" and text[1:2] not in ("", " "))) \
                or ": " in text or " #" in text or text[-1] in ": ":
            raise Unsupported("a plain scalar: %r" % text)
        return self._construct(text)

    def _tag(self, text: str) -> Optional[str]:
        """Most texts start with a letter no resolver is registered for: strings at once."""
        return super()._tag(text) if text[0] in _RESOLVED_FIRST else STR


def _double(text: str) -> str:
    m = _DOUBLE.fullmatch(text)
    if m is None:
        raise Unsupported("a double-quoted scalar: %r" % text)
    inner = m.group(1)
    if "\\" not in inner:
        return inner
    if "\\" in _JSON_ESCAPE.sub("", inner):
        raise Unsupported("an escape: %r" % text)
    return json.loads('"%s"' % inner)
