"""A List read item by item: an item whose bytes did not change since the last poll is not
decoded again.

Why: when one endpoint moves in a 5,000-Service cluster, one EndpointSlice changes, yet a
poll downloads both lists whole (20 MB), and decoding all of it was most of the pass.

How:
- Items are cut from the body as it streams in (lbsync.kube.cutter): the API server writes
  each list item's `metadata` first, and no whitespace. Each piece is known by a keyed
  digest of its bytes.
- A piece seen at the last complete read becomes a stand-in (`lbsync.snapshot.Unread`): only
  the fields that say which Service it belongs to and its identity, which is all a pass
  reads of an object whose Service it does not build again (lbsync.incremental).
- A Service with any piece that changed, came or went is "dirty": all its pieces are
  decoded in full, because the model builds that Service again.
- Pieces are decoded ~1 MB at a time, each batch as one JSON array: a key is then one string
  per batch, not one per item (15 MB less at 5,000 Services), and a cold read never holds a
  second copy of the list.
- A cut in the wrong place cannot go unnoticed: a batch must decode to exactly one object
  per piece, each with `metadata` as its first key. An item boundary inside a piece would
  then be a `},{"metadata":` the cutter did not cut at, and a cut inside an item would leave
  fewer objects than pieces; so piece i is item i. Else the page is decoded whole. A digest
  match is always a whole item, as it matches a piece that once passed this check.
Kept between polls, per item: its digest, owner and stand-in (about 0.6 kB; the strings are
the decoded object's own). Stand-ins are never changed by those who read them.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from lbsync.kube.cutter import Cut
from lbsync.snapshot import Unread, identity

Owner = Tuple[str, str]
Known = Dict[bytes, Tuple[Owner, dict]]  # digest -> (owner, its stand-in)
_META = ("name", "namespace", "uid", "resourceVersion")
_TYPE = ("kind", "apiVersion")  # set as the object was decoded (lbsync.kube.lists.typed_decoder)
_KEY = os.urandom(16)  # the digests live only in this process: a collision cannot be made to order
_BATCH = 1 << 20  # bytes of items decoded per call: a key is one string per call, not per item


class Entry:
    """One item of this read: its digest, object, owner, and until it is decoded (`raw` not
    None: a stand-in, or new) its stand-in (`kept`) and bytes."""

    __slots__ = ("digest", "obj", "owner", "kept", "raw")

    def __init__(self, digest: Optional[bytes], obj: Optional[dict], owner: Owner, kept: Any = None,
                 raw: Optional[bytes] = None) -> None:
        self.digest, self.obj, self.owner, self.kept, self.raw = digest, obj, owner, kept, raw


class Reader:
    """The items of one list (a resource in one namespace, or cluster-wide) across polls.

    `owner_of(obj)`: the Service an object belongs to; `keep(obj)`: its stand-in, what a pass
    reads of it when it does not build its Service again (`stand_in`). Per poll: `begin`,
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

    def page(self, cut: Cut, decode: Callable[[str], Any]) -> Optional[Dict[str, Any]]:
        """Take one page's items; its List fields (metadata), or None when the page is not
        laid out as expected (the caller decodes it whole and hands its items to `whole`).
        `decode(text)`: json, dropping unused keys (lbsync.kube.errors.items_decoder)."""
        if cut.fields is None:
            return None
        known, entries, new, remember = self._known, [], [], self._keep is not None
        for raw in cut.items:
            digest = hashlib.blake2b(raw, digest_size=16, key=_KEY).digest() if remember else None
            seen = known.get(digest) if digest is not None else None
            if seen is None:
                new.append(Entry(digest, None, ("", ""), None, raw))
                entries.append(new[-1])
            else:
                entries.append(Entry(digest, seen[1], seen[0], seen[1], raw))
        if not _decode(new, decode, self._owner_of):
            return None  # cut.body() is still whole, for the caller
        cut.items.clear()  # the entries hold the bytes they still need
        self._entries += entries
        return cut.fields

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

    def owners(self) -> Set[Owner]:
        """The owners of this poll's objects as read so far."""
        return {e.owner for e in self._entries}

    def items(self, dirty: Optional[Set[Owner]], decode: Callable[[str], Any],
              wanted: Optional[Set[Owner]] = None) -> List[dict]:
        """This poll's objects in list order (only those whose owner is `wanted`, if given):
        in full when their owner is dirty (or `dirty` is None: all are), decoded from this
        poll's bytes; else their stand-ins."""
        todo = [e for e in self._entries if e.raw is not None and (dirty is None or e.owner in dirty)]
        if not _decode(todo, decode, self._owner_of):  # they passed at the last poll: the same bytes cannot fail
            raise ValueError("items that decoded before do not decode now")
        for e in self._entries:
            e.raw = None  # the bytes are done with
        return [e.obj for e in self._entries if wanted is None or e.owner in wanted]  # type: ignore[misc]

    def commit(self) -> None:
        """This poll's read is complete: it is what the next poll compares with."""
        known: Known = {}
        for e in self._entries if self._keep is not None else ():
            if e.digest is not None:
                known[e.digest] = (e.owner, self._keep(e.obj) if e.kept is None else e.kept)  # type: ignore[arg-type]
        self._known, self._entries = known, []


def _decode(entries: List[Entry], decode: Callable[[str], Any], owner_of: Callable[[dict], Owner]) -> bool:
    """Decode the entries' bytes as JSON arrays of about _BATCH bytes each, and make each
    entry whole (its bytes then freed); False when the pieces are not one object each with
    `metadata` first (see the module's docstring)."""
    at = 0
    while at < len(entries):
        size, stop = 0, at
        while stop < len(entries) and (size < _BATCH or stop == at):
            size += len(entries[stop].raw)  # type: ignore[arg-type]
            stop += 1
        batch = entries[at:stop]
        text = ("[" + b",".join([e.raw for e in batch]).decode("utf-8", "replace") + "]")  # type: ignore[misc]
        try:
            objs = decode(text)
        except ValueError:
            return False
        del text
        if not isinstance(objs, list) or len(objs) != len(batch) or \
                not all(o.__class__ is dict and next(iter(o), None) == "metadata" for o in objs):
            return False
        for e, obj in zip(batch, objs):
            e.obj, e.owner, e.kept, e.raw = obj, owner_of(obj), None, None
        at = stop
    return True


def stand_in(obj: dict, *, label: str = "", annotation: str = "") -> dict:
    """An Unread with the object's kind and apiVersion, its name, namespace, uid and
    resourceVersion, and the label and annotation named, when set (the strings are the
    object's own). The object itself when it
    has no identity (then it is never a stand-in: lbsync.incremental never reuses a Part
    built from it)."""
    if identity(obj) is None:
        return obj
    meta = obj["metadata"]
    out: Dict[str, Any] = {k: meta[k] for k in _META if k in meta}
    for key, name in (("labels", label), ("annotations", annotation)):
        found = meta.get(key) if name else None
        if isinstance(found, dict) and name in found:
            out[key] = {name: found[name]}
    return Unread({k: obj[k] for k in _TYPE if k in obj}, metadata=out)
