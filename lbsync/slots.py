"""Server slots: which backend line (s1, s2, ...) holds which Pod.

With a Runtime API socket, each backend is rendered with more server lines than it has
Pods; the spare ones are `disabled` placeholders. A Pod keeps its slot for as long as it lives, and a new Pod
takes a free slot, so an endpoint change touches only the slots that changed — which
the Runtime API can apply without a reload. Pure: the previous layout is passed in
(the daemon keeps it; `parse` recovers it from the live file after a restart). Without
a Runtime API socket every endpoint change is a reload anyway: spare lines would only cost
HAProxy memory and `haproxy -c` time, so a backend's slots are its servers, in order.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

from lbsync.endpoints import Server

Slots = Tuple[Optional[Server], ...]
Layout = Dict[str, Slots]  # backend name -> slots, index 0 is "s1"

STEP = 4  # slots grow in steps of 4, so a scale-up by one rarely needs a reload
PLACEHOLDER = Server("127.0.0.1", 1)  # address of a free slot; it is always `disabled`

_BACKEND = re.compile(r"^backend (\S+)\s*$")
_WEIGHT = re.compile(r" weight (\d+)")
_SERVER = re.compile(r"^\s+server s(\d+) (\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)( .*)?$")


def capacity(count: int) -> int:
    """Slots for `count` Pods: room for a quarter more (at least 2), rounded up to STEP."""
    wanted = count + max(2, -(-count // 4))
    return -(-wanted // STEP) * STEP


def assign(servers: Sequence[Server], previous: Optional[Slots] = None) -> Slots:
    """Keep surviving Pods where they were; put new ones into free slots, lowest first."""
    if previous and len(previous) >= len(servers) and set(previous) - {None} == set(servers):
        return tuple(previous)  # nobody came or went (most backends, in most passes)
    if not previous or len(previous) < len(servers):
        previous = (None,) * capacity(len(servers)) if not previous else \
            tuple(previous) + (None,) * (capacity(len(servers)) - len(previous))
    wanted = set(servers)
    slots = [s if s in wanted else None for s in previous]
    placed = set(s for s in slots if s is not None)
    # vacated slots by (address, port): a server whose weight alone changed keeps its slot
    vacated = {_endpoint(s): i for i, s in enumerate(previous) if s is not None and s not in wanted}
    for server in servers:
        if server not in placed and _endpoint(server) in vacated:
            slots[vacated.pop(_endpoint(server))] = server
            placed.add(server)
    # slots that were already free first: a slot just vacated may still hold keep-alive
    # connections to the departed Pod, so a new Pod there would inherit its traffic
    free = iter([i for i, s in enumerate(previous) if s is None] + sorted(vacated.values()))
    for server in servers:
        if server not in placed:
            slots[next(free)] = server
    return tuple(slots)


_endpoint = operator.itemgetter(0, 1)  # Server.endpoint, at C speed


def layout(backends: Mapping[str, Sequence[Server]], previous: Mapping[str, Slots], *,
           spares: bool = True) -> Layout:
    """Slots per backend; `spares` False (no Runtime API to fill them): the servers, in order."""
    if not spares:
        return {name: tuple(servers) for name, servers in backends.items()}
    return {name: assign(servers, previous.get(name)) for name, servers in backends.items()}


def parse(config_text: str) -> Layout:
    """Recover the layout from a config lbsync rendered (free slots carry `disabled`)."""
    out: Dict[str, list] = {}
    current = None
    for line in config_text.splitlines():
        m = _BACKEND.match(line)
        if m:
            current = out.setdefault(m.group(1), [])
            continue
        m = _SERVER.match(line)
        if m and current is not None:
            index = int(m.group(1)) - 1
            current.extend([None] * (index + 1 - len(current)))
            rest = m.group(4) or ""
            weight = _WEIGHT.search(rest)
            current[index] = None if " disabled" in rest else Server(
                m.group(2).strip("[]"), int(m.group(3)), int(weight.group(1)) if weight else None)
    return {name: tuple(slots) for name, slots in out.items() if slots}


def shape(config_text: str) -> Dict[str, int]:
    """Each backend's slot count, as `parse` would find it, without building its Servers
    or splitting the text into lines (80,000 server lines at 5,000 Services)."""
    out: Dict[str, int] = {}
    current = None
    for m in _SHAPE.finditer(config_text):
        if m.group(1) is not None:
            current = m.group(1)
        elif current is not None:
            out[current] = max(out.get(current, 0), int(m.group(2)))
    return out


_SHAPE = re.compile(r"^backend (\S+)[ \t\r]*$|^[ \t]+server s(\d+) (?:\[[0-9a-fA-F:.]+\]|[0-9.]+):\d+(?: .*)?$",
                    re.MULTILINE)


def count_backends(config_text: str) -> int:
    """The Service backends of a config (its own, `_no_route`..., start with `_`), unparsed."""
    return sum(1 for name in _BACKEND_NAME.findall(config_text) if not name.startswith("_"))


_BACKEND_NAME = re.compile(r"^backend (\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Change:
    """One slot whose server changed (place or weight): `old`/`new` are None for a free slot."""

    backend: str
    slot: int  # 1-based, as in the server name s<slot>
    old: Optional[Server]
    new: Optional[Server]


def changes(before: Mapping[str, Slots], after: Mapping[str, Slots]) -> Tuple[Change, ...]:
    """Slot-by-slot differences of two layouts with the same backends and slot counts."""
    out = []
    for name in sorted(after):
        if before.get(name) is after[name]:
            continue  # the same slots, kept from one pass to the next (most backends)
        for i, (old, new) in enumerate(zip(before.get(name, ()), after[name]), start=1):
            if old != new:
                out.append(Change(name, i, old, new))
    return tuple(out)


def same_shape(before: Mapping[str, Slots], after: Mapping[str, Slots]) -> bool:
    return before.keys() == after.keys() and all(len(before[k]) == len(after[k]) for k in after)


def mask_servers(config_text: str) -> str:
    """The config with server addresses and states blanked: equal masks mean only Pods moved."""
    return _SERVER_LINE.sub(r"\1", config_text)


_SERVER_LINE = re.compile(r"^(\s+server s\d+) .*$", re.MULTILINE)


def only_servers_differ(a: str, b: str) -> bool:
    """`mask_servers(a) == mask_servers(b)`, comparing only the lines that differ: masking two
    whole configs costs ~0.1 s at 1,000 Services, where one endpoint moved one line."""
    la, lb = a.split("\n"), b.split("\n")
    if len(la) != len(lb):
        return False
    return all(_mask_line(x) == _mask_line(y) for x, y in zip(la, lb) if x != y)


def _mask_line(line: str) -> str:
    m = _ONE_SERVER.match(line)
    return m.group(1) if m else line


_ONE_SERVER = re.compile(r"(\s+server s\d+) .*$")
