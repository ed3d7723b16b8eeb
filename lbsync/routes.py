"""What the load balancer serves, as `lbsync routes` prints it: a table or stable JSON.

Reads what a pass produced (a Topology: its backends and its Problems, each with its
code and a reason that holds no untrusted value) and, when asked,
the servers' states as HAProxy's `show servers state` reported them; writes text. Pure:
no I/O, and it never reaches back into the model. One row per route, in the order
HAProxy matches them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from lbsync import slots
from lbsync.topology import Backend, Problem, Topology

JSON_VERSION = 1  # bumped only when a field changes meaning or goes away; new fields may be added
ANY_HOST, ANY_PATH, NONE = "*", "/", "-"
LIVE_STATES = ("up", "down", "maint", "drain")


@dataclass(frozen=True)
class Live:
    """A backend's servers as the running HAProxy sees them (free slots not counted)."""

    up: int = 0
    down: int = 0
    maint: int = 0
    drain: int = 0

    def text(self) -> str:
        return " ".join(f"{getattr(self, s)} {s.upper()}" for s in LIVE_STATES if getattr(self, s)) or "no servers"


@dataclass(frozen=True)
class Row:
    frontend: str  # http, https or tcp:PORT
    host: Optional[str]  # None: any host (a path-prefix route) or a TCP frontend
    path: Optional[str]  # the path prefix; "/" for a host route; None for TCP
    backend: Backend

    def sort_key(self) -> Tuple[int, int, int, int, str, str]:
        """The order HAProxy matches routes in: exact hosts, wildcards (longest first), then
        path prefixes (longest first); http, https, then TCP ports."""
        kind, _, port = self.frontend.partition(":")
        host, path = self.host or "", self.path or ""
        group = 2 if self.host is None else (1 if host.startswith("*.") else 0)
        length = -len(path) if group == 2 else (-len(host) if group == 1 else 0)
        return (("http", "https", "tcp").index(kind), int(port or 0), group, length, host or path, self.backend.name)


def rows(topology: Topology) -> List[Row]:
    """One row per route: each host of a backend, its path prefix on any host, its TCP port."""
    out = []
    for b in topology.backends:
        if b.mode == "tcp":
            out.append(Row(f"tcp:{b.listen_port}", None, None, b))
            continue
        out += [Row(b.frontend, host, ANY_PATH, b) for host in b.hosts]
        if b.path_prefix:
            out.append(Row(b.frontend, None, b.path_prefix, b))
    return sorted(out, key=Row.sort_key)


def live_states(servers: Iterable[Mapping[str, object]]) -> Dict[str, Live]:
    """Backend name -> Live, from `show servers state` rows (lbsync.haproxy.runtime's parse)."""
    counts: Dict[str, Dict[str, int]] = {}
    free = (slots.PLACEHOLDER.address, slots.PLACEHOLDER.port)
    for s in servers:
        tally = counts.setdefault(str(s["be_name"]), dict.fromkeys(LIVE_STATES, 0))
        if (s["addr"], s["port"]) == free and s["admin_state"] == "maint":
            continue  # a free slot waiting for a Pod, not a server
        tally[_state(s)] += 1
    return {name: Live(**tally) for name, tally in counts.items()}


def _state(server: Mapping[str, object]) -> str:
    if server["admin_state"] in ("maint", "drain"):
        return str(server["admin_state"])
    return "down" if server["op_state"] == "down" else "up"


def _service(b: Backend) -> str:
    return f"{b.namespace}/{b.service}:{b.port}"


def _servers(b: Backend) -> str:
    return f"{len(b.servers)}/{len(b.servers) + b.not_ready}"


def _live_text(b: Backend, live: Mapping[str, Live]) -> str:
    state = live.get(b.name)
    return state.text() if state is not None else "not in HAProxy"


def table(topology: Topology, live: Optional[Mapping[str, Live]] = None) -> str:
    """The routes table (with a LIVE column when `live` is given), then what was left out and why."""
    head = ["FRONTEND", "HOST", "PATH", "SERVICE", "BACKEND", "SERVERS", "STICKY", "ALGORITHM"]
    body = [_cells(r, live) for r in rows(topology)]
    text = _columns([head + (["LIVE"] if live is not None else [])] + body) if body \
        else "No routes: nothing is served.\n"
    return text + "\n" + left_out_table(topology.problems)


def _cells(r: Row, live: Optional[Mapping[str, Live]]) -> List[str]:
    b = r.backend
    cells = [r.frontend, r.host or (NONE if r.path is None else ANY_HOST), r.path or NONE, _service(b),
             b.name, _servers(b), "yes" if b.sticky else "no", b.algorithm]
    return cells + ([_live_text(b, live)] if live is not None else [])


def left_out_table(problems: Sequence[Problem]) -> str:
    if not problems:
        return "Nothing left out.\n"
    head = ["SERVICE", "LEVEL", "CODE", "ANNOTATION", "REASON"]
    body = [[f"{p.namespace}/{p.service}", p.level, p.code, p.annotation or NONE, p.reason]
            for p in _sorted(problems)]
    return f"Left out or not as asked ({len(problems)}):\n" + _columns([head] + body)


def _sorted(problems: Sequence[Problem]) -> List[Problem]:
    return sorted(problems, key=lambda p: (p.level != "warning", p.namespace, p.service, p.code, p.annotation,
                                           p.reason))


def _columns(lines: List[List[str]]) -> str:
    """Left-aligned columns, two spaces apart, as kubectl prints them; cells made printable."""
    cells = [[_printable(c) for c in line] for line in lines]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() + "\n" for line in cells)


def _printable(text: str) -> str:
    """Values from the cluster reach a terminal: no control characters (escape sequences)."""
    return "".join(c if c.isprintable() else "?" for c in text)


def document(topology: Topology, live: Optional[Mapping[str, Live]] = None) -> dict:
    """The JSON form (docs/operations.md describes it): version, routes, left_out."""
    return {"version": JSON_VERSION,
            "routes": [_route_json(r, live) for r in rows(topology)],
            "left_out": [{"namespace": p.namespace, "service": p.service, "code": p.code,
                          "annotation": p.annotation or None, "level": p.level, "reason": p.reason}
                         for p in _sorted(topology.problems)]}


def _route_json(r: Row, live: Optional[Mapping[str, Live]]) -> dict:
    b = r.backend
    out = {"frontend": r.frontend, "host": r.host, "path": r.path,
           "service": {"namespace": b.namespace, "name": b.service, "port": b.port, "port_name": b.port_name},
           "backend": b.name, "servers": {"ready": len(b.servers), "total": len(b.servers) + b.not_ready},
           "sticky": b.sticky, "algorithm": b.algorithm}
    if live is not None:
        state = live.get(b.name)
        out["live"] = None if state is None else {s: getattr(state, s) for s in LIVE_STATES}
    return out


def to_json(topology: Topology, live: Optional[Mapping[str, Live]] = None) -> str:
    return json.dumps(document(topology, live), indent=2, sort_keys=True) + "\n"
