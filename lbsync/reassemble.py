"""model.assemble again, in proportion to the change, when only servers moved.

Settling conflicts covers every Service: at 1,000 Services it is most of a pass in which
one endpoint changed. But conflicts are decided by hosts, path prefixes, TCP ports and
names, never by servers. So when every Part of this pass is either the last pass's own
object or differs from it only in its backends' servers (the usual watch event: a Pod
came or went), the outcome is the last Topology with those backends' servers replaced.
Anything else (a Service added, removed or edited, a denied address, new options) is
assembled in full. Either way the Topology is equal to `model.assemble`'s, Problems and
their order included (a property test checks it). Pure: no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

from lbsync import model, nodes
from lbsync.topology import Backend, Problem, Topology

Owner = Tuple[str, str]


@dataclass(frozen=True)
class _Assembled:
    """What the last full (or patched) assemble decided."""

    options: model.Options
    parts: Tuple[model.Part, ...]  # in the order they came
    topology: Topology
    settled: Dict[Owner, Tuple[Optional[int], ...]]  # per route of each Part: its backend's index
    conflicts: Tuple[Problem, ...]  # the Problems claims.settle added


class Assembler:
    """`assemble(parts, options, pool)` = model.assemble(...), patched when it can be."""

    def __init__(self) -> None:
        self._last: Optional[_Assembled] = None
        self.patched = False  # whether the last call was a patch (for tests and profiles)

    def assemble(self, parts: Sequence[model.Part], options: model.Options,
                 pool: Optional[nodes.Pool] = None) -> Topology:
        topology = self._patch(parts, options, pool)
        self.patched = topology is not None
        return topology if topology is not None else self._full(parts, options, pool)

    def _full(self, parts: Sequence[model.Part], options: model.Options, pool: Optional[nodes.Pool]) -> Topology:
        outcome: List[Optional[Backend]] = []
        topology = model.assemble(parts, options, pool, outcome)
        index = {id(b): i for i, b in enumerate(topology.backends)}
        settled, routes = {}, iter(outcome)
        for p in model.by_age(parts):  # the order assemble settled the routes in
            settled[p.owner] = tuple(None if b is None else index[id(b)] for b in (next(routes) for _ in p.routes))
        head = len(model.part_problems(parts, pool))  # the Problems before settling: the rest are conflicts
        self._last = _Assembled(options, tuple(parts), topology, settled, topology.problems[head:])
        return topology

    def _patch(self, parts: Sequence[model.Part], options: model.Options,
               pool: Optional[nodes.Pool]) -> Optional[Topology]:
        last = self._last
        if last is None or options != last.options or len(parts) != len(last.parts):
            return None
        backends: Optional[List[Backend]] = None
        for new, old in zip(parts, last.parts):
            if new is old:
                continue
            if not servers_only(old, new):
                return None
            backends = list(last.topology.backends) if backends is None else backends
            for index, route in zip(last.settled[old.owner], new.routes):
                if index is not None:
                    backends[index] = replace(backends[index], servers=route.backend.servers,
                                              not_ready=route.backend.not_ready)
        problems = model.part_problems(model.by_age(parts), pool) + list(last.conflicts)
        topology = Topology(last.topology.backends if backends is None else tuple(backends), tuple(problems))
        self._last = replace(last, parts=tuple(parts), topology=topology)
        return topology


def servers_only(old: model.Part, new: model.Part) -> bool:
    """`new` is `old` but for its backends' servers (and counts of Pods not ready)."""
    if (new.owner, new.age, new.denied, len(new.routes)) != (old.owner, old.age, old.denied, len(old.routes)):
        return False
    return all(a.created == b.created and same_but_servers(a.backend, b.backend)
               for a, b in zip(old.routes, new.routes))


def same_but_servers(old: Backend, new: Backend) -> bool:
    return old is new or replace(new, servers=old.servers) == old
