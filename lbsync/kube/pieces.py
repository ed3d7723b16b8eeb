"""A List read item by item: an item whose bytes did not change since the last poll is not
decoded again.

Why: when one endpoint moves in a 5,000-Service cluster, one EndpointSlice changes, yet a
poll downloads both lists whole (20 MB), and decoding all of it was most of the pass.

How:
- Items are cut from the body at `},{"metadata":`. The API server writes each list item's
  `metadata` first, and no whitespace. Each piece is known by a keyed digest of its bytes.
- A piece seen at the last complete read becomes a stand-in (`lbsync.snapshot.Unread`): only
  the fields that say which Service it belongs to and its identity, which is all a pass
  reads of an object whose Service it does not build again (lbsync.incremental).
- A Service with any piece that changed, came or went is "dirty": all its pieces are
  decoded in full, because the model builds that Service again.
- The pieces to decode are decoded in one call, as one JSON array (keys are then one string
  each, not one per item: 15 MB less at 5,000 Services).
- A cut in the wrong place cannot go unnoticed: the array must hold exactly one object per
  piece, each with `metadata` as its first key. Then every boundary between items is one of
  the cuts and there is no other cut, so piece i is item i. Else the page is decoded whole.
  A digest match is always a whole item, as it matches a piece that passed this check.
Kept between polls, per item: its digest, owner, and a tuple of the stand-in's fields (the
strings are the decoded object's own); the stand-in dicts are made again by each poll.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from lbsync.kube import signature
from lbsync.snapshot import Unread, identity

Owner = Tuple[str, str]
Record = Tuple[Optional[str], ...]  # name, namespace, uid, resourceVersion, then (key, value) pairs
Known = Dict[bytes, Tuple[Owner, Any]]  # digest -> (owner, Record, or the object when it has no identity)
_META = ("name", "namespace", "uid", "resourceVersion")
_KEY = os.urandom(16)  # the digests live only in this process: a collision cannot be made to order
_CUT = '},{"metadata":'
_HEAD = re.compile(r'\s*\{[^\[]*?"metadata"\s*:\s*\{[^{}]*\}\s*,\s*"items"\s*:\s*\[')  # as lbsync.kube.signature
_TAIL = re.compile(r'\]\s*\}\s*\Z')


def cut(text: str) -> Optional[Tuple[Dict[str, Any], int, List[Tuple[int, int]]]]:
    """The List without its items (kind, metadata), where its items start, and each item's
    span in `text`; None for another layout (then the caller decodes the text whole)."""
    m = _HEAD.match(text, 0, min(len(text), signature.HEAD))
    end = text.rfind("]")
    if not m or end < m.end() or not _TAIL.match(text, end):
        return None
    try:
        head = json.loads(text[:m.end()] + "]}")
    except ValueError:
        return None
    spans: List[Tuple[int, int]] = []
    at = m.end()
    if text.find("{", at, end) < 0:
        return head, at, spans  # no items
    while True:
        found = text.find(_CUT, at, end)
        if found < 0:
            spans.append((at, end))
            return head, m.end(), spans
        spans.append((at, found + 1))
        at = found + 2


class Entry:
    """One item of this read: its digest, object, owner, and until it is decoded (`text` not
    None: a stand-in, or new) its record and where its text is."""

    __slots__ = ("digest", "obj", "owner", "kept", "text", "start", "end")

    def __init__(self, digest: Optional[bytes], obj: Optional[dict], owner: Owner, kept: Any = None,
                 text: Optional[str] = None, start: int = 0, end: int = 0) -> None:
        self.digest, self.obj, self.owner, self.kept = digest, obj, owner, kept
        self.text, self.start, self.end = text, start, end


class Reader:
    """The items of one list (a resource in one namespace, or cluster-wide) across polls.

    `owner_of(obj)`: the Service an object belongs to; `keep(obj)`: the Record of what a pass
    reads of it when it does not build its Service again (`record`). Per poll: `begin`,
    `page` for each page, then (once every list of the poll is read) `dirty`, `items` and
    `commit`. With `keep` None nothing is remembered (a one-shot run): no digests either."""

    def __init__(self, owner_of: Callable[[dict], Owner], keep: Optional[Callable[[dict], Any]]) -> None:
        self._owner_of, self._keep = owner_of, keep
        self._known: Known = {}
        self._unused: Tuple[str, ...] = ()
        self._entries: List[Entry] = []

    def forget(self) -> None:
        self._known = {}

    def begin(self, unused: Tuple[str, ...]) -> None:
        if unused != self._unused:  # the stand-ins were made from objects slimmed otherwise
            self._known, self._unused = {}, unused
        self._entries = []

    def page(self, text: str, decode: Callable[[str, int, int], Any]) -> Optional[Dict[str, Any]]:
        """Take one page's items; its List fields (metadata), or None when the page is not
        laid out as expected (the caller decodes it whole and hands its items to `whole`).
        `decode(text)`: json.loads, dropping unused keys (lbsync.kube.errors.items_decoder)."""
        found = cut(text)
        if found is None:
            return None
        head, start, spans = found
        known, entries, new = self._known, [], []
        for a, b in spans:
            digest = hashlib.blake2b(text[a:b].encode("utf-8", "surrogatepass"), digest_size=16,
                                     key=_KEY).digest() if self._keep is not None else None
            seen = known.get(digest) if digest is not None else None
            if seen is None:
                new.append(Entry(digest, None, ("", ""), None, text, a, b))
                entries.append(new[-1])
            else:
                kept = seen[1]
                entries.append(Entry(digest, unread(kept) if kept.__class__ is tuple else kept, seen[0], kept,
                                     text, a, b))
        whole = len(new) == len(spans) and spans  # all new: decoded where they are, no copy
        if not _decode(new, decode, self._owner_of, (text, start - 1, spans[-1][1] + 1) if whole else None):
            return None
        self._entries += entries
        return head

    def whole(self, items: List[dict]) -> None:
        """A page decoded whole: its items are always new (no digest)."""
        self._entries += [Entry(None, o, self._owner_of(o)) for o in items if isinstance(o, dict)]

    def dirty(self) -> Set[Owner]:
        """Owners with an item that is new or changed this poll, or gone since the last."""
        out = {e.owner for e in self._entries if e.kept is None}
        seen = {e.digest for e in self._entries if e.digest is not None}
        out.update(owner for digest, (owner, _) in self._known.items() if digest not in seen)
        return out

    def current(self) -> List[dict]:
        """This poll's objects as read so far: stand-ins where unchanged."""
        return [e.obj for e in self._entries]  # type: ignore[misc]

    def items(self, dirty: Optional[Set[Owner]], decode: Callable[[str, int, int], Any]) -> List[dict]:
        """This poll's objects in list order: in full when their owner is dirty (or `dirty` is
        None: all are), decoded again from this poll's text; else their stand-ins."""
        todo = [e for e in self._entries if e.text is not None and (dirty is None or e.owner in dirty)]
        if not _decode(todo, decode, self._owner_of):  # they passed at the last poll: the same text cannot fail
            raise ValueError("items that decoded before do not decode now")
        for e in self._entries:
            e.text = None  # the page's text is done with
        return [e.obj for e in self._entries]  # type: ignore[misc]

    def commit(self) -> None:
        """This poll's read is complete: it is what the next poll compares with."""
        known: Known = {}
        for e in self._entries if self._keep is not None else ():
            if e.digest is not None:
                known[e.digest] = (e.owner, self._keep(e.obj) if e.kept is None else e.kept)  # type: ignore[arg-type]
        self._known, self._entries = known, []


def _decode(entries: List[Entry], decode: Callable[[str, int, int], Any], owner_of: Callable[[dict], Owner],
            run: Optional[Tuple[str, int, int]] = None) -> bool:
    """Decode the entries' pieces in one call, as one array (`run`: the text, start and end
    of the array all of a page's items are in), and make each entry whole; False when the
    pieces are not one object each with `metadata` first (see the module's docstring)."""
    if not entries:
        return True
    if run is None:
        joined = "[" + ",".join([e.text[e.start:e.end] for e in entries]) + "]"  # type: ignore[index]
        run = (joined, 0, len(joined))
    try:
        objs = decode(*run)
    except ValueError:
        return False
    del run
    if not isinstance(objs, list) or len(objs) != len(entries) or \
            not all(o.__class__ is dict and next(iter(o), None) == "metadata" for o in objs):
        return False
    for e, obj in zip(entries, objs):
        e.obj, e.owner, e.kept, e.text = obj, owner_of(obj), None, None
    return True


def record(obj: dict, *, label: str = "", annotation: str = "") -> Any:
    """What a stand-in of `obj` holds: its name, namespace, uid and resourceVersion, and the
    label and annotation named, when set. The object itself when it has no identity (then it
    is never a stand-in: lbsync.incremental never reuses a Part built from it)."""
    if identity(obj) is None:
        return obj
    meta = obj["metadata"]
    out: Tuple[Any, ...] = tuple(meta.get(k) for k in _META)
    for key, name in (("labels", label), ("annotations", annotation)):
        found = meta.get(key) if name else None
        out += ((key, name, found[name]),) if isinstance(found, dict) and name in found else ()
    return out


def unread(kept: Tuple[Any, ...]) -> Unread:
    """The stand-in of a `record`."""
    meta: Dict[str, Any] = {k: v for k, v in zip(_META, kept) if v is not None}
    for key, name, value in kept[len(_META):]:
        meta[key] = {name: value}
    return Unread(metadata=meta)
