"""Server slots: which backend line (s1, s2, ...) holds which Pod.

Each backend is rendered with more server lines than it has Pods; the spare ones are
`disabled` placeholders. A Pod keeps its slot for as long as it lives, and a new Pod
takes a free slot, so an endpoint change touches only the slots that changed — which
the Runtime API can apply without a reload. Pure: the previous layout is passed in
(the daemon keeps it; `parse` recovers it from the live file after a restart).
"""
from __future__ import annotations

import re
from typing import Dict, Mapping, Optional, Sequence, Tuple

from lbsync.endpoints import Server

Slots = Tuple[Optional[Server], ...]
Layout = Dict[str, Slots]  # backend name -> slots, index 0 is "s1"

STEP = 4  # slots grow in steps of 4, so a scale-up by one rarely needs a reload
PLACEHOLDER = Server("127.0.0.1", 1)  # address of a free slot; it is always `disabled`

_BACKEND = re.compile(r"^backend (\S+)\s*$")
_SERVER = re.compile(r"^\s+server s(\d+) (\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)( .*)?$")


def capacity(count: int) -> int:
    """Slots for `count` Pods: room for a quarter more (at least 2), rounded up to STEP."""
    wanted = count + max(2, -(-count // 4))
    return -(-wanted // STEP) * STEP


def assign(servers: Sequence[Server], previous: Optional[Slots] = None) -> Slots:
    """Keep surviving Pods where they were; put new ones into free slots, lowest first."""
    if not previous or len(previous) < len(servers):
        previous = (None,) * capacity(len(servers)) if not previous else \
            tuple(previous) + (None,) * (capacity(len(servers)) - len(previous))
    wanted = set(servers)
    slots = [s if s in wanted else None for s in previous]
    placed = set(s for s in slots if s is not None)
    free = iter(i for i, s in enumerate(slots) if s is None)
    for server in servers:
        if server not in placed:
            slots[next(free)] = server
    return tuple(slots)


def layout(backends: Mapping[str, Sequence[Server]], previous: Mapping[str, Slots]) -> Layout:
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
            disabled = " disabled" in (m.group(4) or "")
            current[index] = None if disabled else Server(m.group(2).strip("[]"), int(m.group(3)))
    return {name: tuple(slots) for name, slots in out.items() if slots}
