"""Conflicts: each host, path prefix, TCP port and backend name goes to its oldest claimant.

Routes arrive oldest Service first; the first to claim a key keeps it, and every later
claimant loses it with a Problem naming both. Pure.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Optional, Tuple

from lbsync import annotations as ann
from lbsync.topology import Backend, Options, Problem, Reporter, Route


def settle(routes: List[Route], options: Options, problems: List[Problem],
           outcome: Optional[List[Optional[Backend]]] = None) -> List[Backend]:
    """Give each host, path prefix, TCP port and backend name to its oldest claimant.
    `outcome`, if given, gets each route's backend as settled (None: it lost everything)."""
    claims = _Claims(options)
    out = []
    for route in routes:  # already oldest first
        backend = claims.take(route.backend, problems)
        if backend is not None:
            out.append(backend)
        if outcome is not None:
            outcome.append(backend)
    return out


class _Claims:
    """Who owns what: (frontend, host), (frontend, prefix), TCP ports, backend names."""

    def __init__(self, options: Options) -> None:
        self.owner: Dict[Tuple[str, str], str] = {}
        for port in options.reserved_ports:
            self.owner[("port", str(port))] = "lbsync's own frontends"

    def _claim(self, key: Tuple[str, str], who: str) -> Optional[str]:
        holder = self.owner.setdefault(key, who)
        return None if holder == who else holder

    def take(self, b: Backend, problems: List[Problem]) -> Optional[Backend]:
        who = f"{b.namespace}/{b.service}:{b.port}"
        report = Reporter(b.namespace, b.service, problems)
        if b.mode == "tcp":
            holder = self._claim(("port", str(b.listen_port)), who)
            if holder:
                report(ann.PREFIX + "lb.tcp", f"port {b.listen_port} is already taken by {holder}; "
                       "left out", code="TCPPortConflictLost")
                return None
            return b
        hosts = tuple(h for h in b.hosts if not self._lost(("host:" + b.frontend, h), who, report, "host"))
        prefix = b.path_prefix
        if prefix and self._lost(("prefix:" + b.frontend, prefix), who, report, "path prefix"):
            prefix = None
        if not hosts and not prefix:
            report("", f"port {b.port} has no host and no path prefix left to route by; left out",
                   code="NoRouteLeft")
            return None
        name = self._name(b, hosts, who)
        if (hosts, prefix, name) == (b.hosts, b.path_prefix, b.name):
            return b  # the usual case, kept as it is: the same object pass after pass
        return replace(b, hosts=hosts, path_prefix=prefix, name=name)

    def _lost(self, key: Tuple[str, str], who: str, report: Reporter, what: str) -> bool:
        holder = self._claim(key, who)
        if holder:
            report(ann.PREFIX + ("lb.host" if what == "host" else "lb.path-prefix"),
                   f"{what} {key[1]} on {key[0].split(':')[1]} is already claimed by {holder} "
                   f"(older); {who} does not get it",
                   code="HostConflictLost" if what == "host" else "PathPrefixConflictLost")
        return holder is not None

    def _name(self, b: Backend, hosts: Tuple[str, ...], who: str) -> str:
        default = f"{b.namespace}_{b.service}_{b.port}"
        candidates = [default]
        if hosts:
            named = hosts[0].replace("*.", "wildcard.")
            candidates = [named, f"{named}:{b.port}", default]
        for name in candidates:
            if not self._claim(("name", name), who):
                return name
        raise AssertionError(f"backend name {default} claimed twice")  # names are unique by construction
