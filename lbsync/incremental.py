"""Work kept between passes, with one owner and one invalidation rule.

A pass where one Service or endpoint changed should cost that Service, not the cluster. This
module keeps each Service's model Part (annotations parsed, endpoints indexed, backends built)
and each backend's rendered section between passes; the cheap global steps (conflicts, order,
frontends, the file around the sections) run every pass, so the text is byte for byte what a
cold render of the same cluster gives.

The rule: a Part is reused while every object it was built from has the same uid and
resourceVersion and the model options are equal; a section while its backend and its server
slots are equal. Objects without uid or resourceVersion (hand-written manifests) are never
reused. The key covers every field of `model.Group` (the whole input of `model.part`: for a
Service served through nodePorts that includes the node pool's version); a field added there
fails `group_key` loudly until it is in the key.
Model and render stay pure: they know nothing of this module.
"""
from __future__ import annotations

from typing import Any, Dict, Hashable, Iterable, List, Mapping, Optional, Set, Tuple

from lbsync import model, nodes, reassemble, regroup, render, slots
from lbsync.snapshot import Snapshot, identity

Fingerprint = Tuple[int, int, Tuple[Hashable, ...], str]


def fingerprint(snapshot: Snapshot) -> Optional[Fingerprint]:
    """Every object's (uid, resourceVersion): equal fingerprints, equal clusters. None when an
    object has no identity (then no snapshot is known to equal another)."""
    objects = snapshot.services + snapshot.endpoint_slices + snapshot.endpoints
    try:  # the usual case, fast: 10,000 objects at 5,000 Services, on every poll of a churning cluster
        ids = tuple([(m["uid"], m["resourceVersion"]) for m in [o["metadata"] for o in objects]])
    except (KeyError, TypeError):
        ids = tuple(identity(o) or ("", "") for o in objects)
    if not all(uid and rv and isinstance(uid, str) and isinstance(rv, str) for uid, rv in ids):
        return None
    # a Node's resourceVersion moves with every status heartbeat: what the pool reads instead
    return len(snapshot.services), len(snapshot.endpoint_slices), ids, nodes.digest(snapshot.nodes)


def group_key(g: model.Group) -> Optional[Tuple[Hashable, ...]]:
    """What a Group's Part depends on: objects by identity, other fields by value; None when
    an object has no identity (its Part is then never reused)."""
    owner, service, slices, eps, pool = g  # a field added to Group must be added here: unpacking fails
    try:  # runs for every Group of every pass: 1,000s of objects, each with uid and resourceVersion
        return (owner, _ids(service["metadata"]) if service is not None else None,
                tuple([_ids(o["metadata"]) for o in slices]), tuple([_ids(o["metadata"]) for o in eps]), pool)
    except (KeyError, TypeError, ValueError):
        return None


def _ids(meta: dict) -> Tuple[str, str]:
    """snapshot.identity, raising instead of returning None (faster in this loop)."""
    uid, rv = meta["uid"], meta["resourceVersion"]
    if uid.__class__ is not str or rv.__class__ is not str or not uid or not rv:
        raise ValueError("no identity")
    return uid, rv


class Cache:
    """Parts by group key and rendered backend sections by backend name, from the last pass."""

    def __init__(self) -> None:
        self._options: Optional[model.Options] = None
        self._parts: Dict[Tuple[Hashable, ...], model.Part] = {}
        self._grouper = regroup.Grouper()
        # the last pass's Parts and keys, Group by Group (lbsync.regroup), and the Groups with no
        # key (objects without identity: their Parts are built every pass)
        self._by_group: Optional[Tuple[List[model.Part], List[Optional[Tuple[Hashable, ...]]]]] = None
        self._unkeyed: Set[int] = set()
        self._assembler = reassemble.Assembler()
        self._renderer: Optional[render.Renderer] = None
        self._sections: Dict[str, Tuple[model.Backend, slots.Slots, str]] = {}
        # the last render: its backends and its text as pieces, where piece 2i+1 is backend i's
        # section (the very string in _sections: the text costs no memory beyond the frontends)
        self._last: Optional[Tuple[Tuple[model.Backend, ...], List[str]]] = None
        self.parts_built = self.sections_rendered = 0  # by the last pass: what it cost
        self.regrouped = False  # whether the last pass looked only at the Groups of objects that changed
        self.spliced = False  # whether the last render spliced sections into the text before

    @property
    def patched(self) -> bool:
        """Whether the last pass's conflicts were kept rather than settled again (lbsync.reassemble)."""
        return self._assembler.patched

    def topology(self, snapshot: Snapshot, options: model.Options) -> model.Topology:
        """model.build(snapshot, options), re-building only the Parts whose objects changed;
        only the Groups of objects that came or went are even looked at, when the source hands
        unchanged objects on as the same objects (lbsync.regroup)."""
        if options != self._options:
            self._options, self._parts, self._by_group = options, {}, None
        pool = model.node_pool(snapshot, options)  # its version is in the groups that use it
        grouped = self._grouper.group(snapshot, options, pool)
        groups, last = grouped.groups, self._by_group
        if grouped.rebuilt is None or last is None:  # every Group looked at: Services gone are dropped
            parts: List[Any] = [None] * len(groups)
            keys: List[Any] = [None] * len(groups)
            todo: Iterable[int] = range(len(groups))
            kept: Dict[Tuple[Hashable, ...], model.Part] = {}
        else:  # the Groups made again, and those without a key (never reused)
            parts, keys, kept = list(last[0]), list(last[1]), dict(self._parts)
            todo = sorted(self._unkeyed.union(grouped.rebuilt))
        built, unkeyed = 0, set()
        for i in todo:
            kept.pop(keys[i], None)
            g = groups[i]
            key = keys[i] = group_key(g)
            part = self._parts.get(key) if key is not None else None
            if part is None:
                part, built = model.part(g, options, pool), built + 1
            if key is not None:
                kept[key] = part
            else:
                unkeyed.add(i)
            parts[i] = part
        # every Part is built: the next pass compares with these Groups, if the source holds
        # their objects anyway (else holding them would keep a full read alive through the render)
        self._grouper.commit(grouped if snapshot.held else None)
        self._parts, self._by_group, self._unkeyed, self.parts_built = kept, (parts, keys), unkeyed, built
        self.regrouped = grouped.rebuilt is not None
        return self._assembler.assemble(parts, options, pool)  # in proportion to the change, when it can

    def render(self, renderer: render.Renderer, topology: model.Topology,
               layout: Mapping[str, slots.Slots]) -> str:
        """renderer.render(topology, layout), rendering only the backends that changed. Only
        each backend's section text is kept (the template's view of it is made again)."""
        if renderer is not self._renderer:
            self._renderer, self._sections, self._last = renderer, {}, None
        sections, kept, rendered = [], {}, 0
        for b in topology.backends:
            slot_list = layout[b.name]
            seen = self._sections.get(b.name)
            if seen is not None and seen[1] == slot_list and (seen[0] is b or seen[0] == b):
                section = seen[2]
            else:
                section, rendered = renderer.section(b, slot_list), rendered + 1
            kept[b.name] = (b, slot_list, section)
            sections.append(section)
        self._sections, self.sections_rendered = kept, rendered
        pieces = self._spliced(renderer, topology.backends, sections)
        self.spliced = pieces is not None
        if pieces is None:
            text = renderer.render(topology, layout, sections=sections)
            pieces = _pieces(text, sections) if renderer.bundled else None
        else:
            text = "".join(pieces)
        self._last = (topology.backends, pieces) if pieces is not None else None
        return text

    def _spliced(self, renderer: render.Renderer, backends: Tuple[model.Backend, ...],
                 sections: List[str]) -> Optional[List[str]]:
        """The last text's pieces with this pass's sections, when only servers changed and the
        template is the bundled one: it writes nothing of a backend outside its section but its
        name, mode and TCP port, and frontends of hosts, prefixes and names, so the rest is the
        same bytes (the property test compares with a cold render). None: render in full."""
        last = self._last
        if last is None or not renderer.bundled or len(last[0]) != len(backends) or \
                not all(a is b or reassemble.same_but_servers(a, b) for a, b in zip(last[0], backends)):
            return None
        pieces = list(last[1])
        pieces[1::2] = sections
        return pieces


def _pieces(text: str, sections: List[str]) -> Optional[List[str]]:
    """`text` cut around its sections, in order (the template writes them in backend order);
    None when one is not found as it is (a template of one's own)."""
    out, at = [], 0
    for section in sections:
        found = text.find(section, at)
        if found < 0:
            return None
        out += [text[at:found], section]
        at = found + len(section)
    out.append(text[at:])
    return out
