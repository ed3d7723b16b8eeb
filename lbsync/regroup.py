"""model.group again, in proportion to the change, when only endpoint objects came or went.

Grouping reads every object of a snapshot: 10,000 at 5,000 Services, and with each Group's
cache key about a quarter of a pass in which one Pod moved. A source that hands an unchanged
object on as the very same object (a watch's store; a poll's stand-ins, lbsync.kube.pieces)
lets a pass tell what changed by identity, with set operations on ids instead of a loop
over the objects. When the Services are those of the last pass, in the same order (an
object read again is fine: the Service of a changed slice is, in a poll), and at most
MAX_CHANGED objects came or went, only the Groups of those objects' owners are made again;
every other Group is the last pass's own object. Anything else (a Service added, removed or
renamed, endpoints of no Service, other options or node pool) runs model.group. Either way
the Groups equal model.group's (a property test checks it).

A result is only diffed against once its pass is done (`commit`): the caller's Parts were
built from those Groups. The last pass's objects are held, so an id is never a new object's;
the caller commits only a snapshot whose source holds its objects anyway (`Snapshot.held`).
Pure: no I/O.
"""
from __future__ import annotations

import operator
from itertools import count
from typing import Dict, List, NamedTuple, Optional, Set, Tuple

from lbsync import endpoints, model, nodes
from lbsync.snapshot import Snapshot

MAX_CHANGED = 256  # endpoint objects that came or went: beyond, grouping it all is as cheap
Owner = Tuple[str, str]


class Grouped(NamedTuple):
    """One pass's Groups, and what the next pass compares with."""

    groups: List[model.Group]
    rebuilt: Optional[List[int]]  # the Groups made again; None: all of them (model.group)
    options: model.Options
    version: str  # the node pool's
    services: Tuple[dict, ...]
    objects: Tuple[Tuple[dict, ...], Tuple[dict, ...]]  # slices, v1 Endpoints: held for their ids
    ids: Tuple[Set[int], Set[int]]
    owner_of: Dict[int, Owner]  # an endpoint object's owner, by id
    index: Dict[Owner, int]  # a Service's Group, by owner


class Grouper:
    """`group(snapshot, options, pool)` = model.group(...), made again only where objects changed."""

    def __init__(self) -> None:
        self._last: Optional[Grouped] = None

    def commit(self, grouped: Optional[Grouped]) -> None:
        """The pass built from `grouped` is done: the next one compares with it (None: with
        nothing, it groups all)."""
        self._last = grouped

    def group(self, snapshot: Snapshot, options: model.Options, pool: Optional[nodes.Pool]) -> Grouped:
        version = pool.version if pool is not None else ""
        objects = (snapshot.endpoint_slices, snapshot.endpoints)
        last, services = self._last, snapshot.services
        if not snapshot.held:  # never compared with (it is not committed): nothing to index
            return Grouped(model.group(snapshot, options, pool), None, options, version, (), ((), ()),
                           (set(), set()), {}, {})
        ids = (set(map(id, objects[0])), set(map(id, objects[1])))
        if last is not None and last.options == options and last.version == version and \
                len(services) == len(last.services):
            edited = [i for i, same in enumerate(map(operator.is_, services, last.services)) if not same]
            patched = _patched(last, services, edited, objects, ids) if len(edited) <= MAX_CHANGED else None
            if patched is not None:
                groups, rebuilt, owner_of = patched
                return last._replace(groups=groups, rebuilt=rebuilt, services=services, objects=objects, ids=ids,
                                     owner_of=owner_of)
        groups = model.group(snapshot, options, pool)
        owner_of = {id(o): endpoints.owner(o, label=label) for objs, label in zip(objects, (True, False))
                    for o in objs}
        index = {g.owner: i for i, g in enumerate(groups) if g.service is not None}
        if len(index) != len(services):  # two Services of one name (a file): no patching
            index = {}
        return Grouped(groups, None, options, version, services, objects, ids, owner_of, index)


def _patched(last: Grouped, services: Tuple[dict, ...], edited: List[int], objects: Tuple[Tuple[dict, ...], ...],
             ids: Tuple[Set[int], Set[int]]) -> Optional[Tuple[List[model.Group], List[int], Dict[int, Owner]]]:
    came = [now - before for now, before in zip(ids, last.ids)]
    went = [before - now for now, before in zip(ids, last.ids)]
    if sum(map(len, came)) + sum(map(len, went)) > MAX_CHANGED or not last.index:
        return None
    dirty: Set[Owner] = set()
    for at in edited:  # a Service read again (a poll decodes the Service of a changed slice too)
        owner = last.groups[at].owner
        if model.service_key(services[at]) != owner:
            return None  # another Service in its place
        dirty.add(owner)
    owner_of = dict(last.owner_of)
    new: List[Dict[int, dict]] = []
    for objs, label, ids_came, ids_went in zip(objects, (True, False), came, went):
        by_id = {i: o for i, o in zip(map(id, objs), objs) if i in ids_came} if ids_came else {}
        for i, o in by_id.items():
            owner_of[i] = endpoints.owner(o, label=label)
        new.append(by_id)
        for i in ids_went:
            dirty.add(owner_of.pop(i))
        dirty.update(owner_of[i] for i in ids_came)
    dirty.discard(())  # an object that names no Service is in no Group
    if not all(owner in last.index for owner in dirty):
        return None  # endpoints of a Service not listed came or went: model.group sorts them in
    groups = list(last.groups)
    rebuilt = []
    kept = [_Kept(objs, kind_ids, came_by_id, owner_of) for objs, kind_ids, came_by_id in zip(objects, ids, new)]
    for owner in dirty:
        at = last.index[owner]
        g = groups[at]
        groups[at] = model.service_group(services[at], kept[0].of(owner, g.slices), kept[1].of(owner, g.endpoints),
                                         last.options, last.version)
        rebuilt.append(at)
    return groups, sorted(rebuilt), owner_of


class _Kept:
    """Endpoint objects of one kind in this snapshot, by owner, in the snapshot's order."""

    def __init__(self, objs: Tuple[dict, ...], ids: Set[int], came: Dict[int, dict], owner_of: Dict[int, Owner]):
        self.objs, self.ids, self.came, self.owner_of = objs, ids, came, owner_of
        self._at: Optional[Dict[int, int]] = None  # positions by id: made once, if ever needed

    def of(self, owner: Owner, before: Tuple[dict, ...]) -> Tuple[dict, ...]:
        """Those it had that are still there, and those that came naming it."""
        found = [o for o in before if id(o) in self.ids] + \
            [o for i, o in self.came.items() if self.owner_of[i] == owner]
        if len(found) < 2:
            return tuple(found)
        if self._at is None:
            self._at = dict(zip(map(id, self.objs), count()))
        at = self._at
        return tuple(sorted(found, key=lambda o: at[id(o)]))
