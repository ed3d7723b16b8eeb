"""Ready endpoint addresses per Service port, from EndpointSlices or v1 Endpoints.

Only ready endpoints are served: EndpointSlice `conditions.ready: false` and Endpoints
`notReadyAddresses` never are. Endpoint ports are matched to Service ports by the
Service port's name, which is how the API resolves named `targetPort`s. Pure.
"""
from __future__ import annotations

import functools
import ipaddress
import operator
import socket
from typing import Dict, Iterable, List, NamedTuple, Optional, Set, Tuple

from lbsync.snapshot import Snapshot

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class Server(NamedTuple):
    """One server of a backend: a ready Pod's address, or a node's address and nodePort (a
    tuple: cheap to make and hash by the 10,000). `weight`: its share of the traffic
    relative to the others (None: HAProxy's default, all equal)."""

    address: str
    port: int
    weight: Optional[int] = None

    @property
    def endpoint(self) -> Tuple[str, int]:
        """Where it is, without its weight: a server that only changes weight keeps its slot."""
        return (self.address, self.port)

    @property
    def ipv6(self) -> bool:
        return ":" in self.address

    def sort_key(self) -> Tuple[bytes, int]:
        """Numeric order (IPv4 before IPv6), then port; inet_pton is ~20x faster than ipaddress."""
        family = socket.AF_INET6 if self.ipv6 else socket.AF_INET
        packed = socket.inet_pton(family, self.address)
        return (packed if family == socket.AF_INET else b"\xff" * 4 + packed, self.port)


# (namespace, service) -> Service port name ("" when unnamed) -> ready servers
Index = Dict[Tuple[str, str], Dict[str, Set[Server]]]


Networks = Tuple[ipaddress._BaseNetwork, ...]  # type: ignore[name-defined]


# (namespace, service) -> Service port name -> addresses of endpoints that are not ready
Waiting = Dict[Tuple[str, str], Dict[str, Set[str]]]


def index(snapshot: Snapshot, *, deny: Networks = (),
          denied: Optional[Dict[Tuple[str, str], Set[str]]] = None, waiting: Optional[Waiting] = None) -> Index:
    """EndpointSlices where a Service has any; v1 Endpoints only for the others.

    Addresses inside `deny` are dropped (and listed in `denied`): anyone who can write an
    Endpoints object could otherwise point the load balancer at its own loopback or a
    cloud metadata address. Endpoints that are not ready are listed in `waiting` (never served).
    """
    addresses = Addresses(deny)
    out: Index = {}
    waiting = {} if waiting is None else waiting
    for es in snapshot.endpoint_slices:
        key = owner(es, label=True)
        if key:
            _add(out, waiting, key, *_slice_servers(es, addresses))
    sliced = set(out)
    for ep in snapshot.endpoints:
        key = owner(ep, label=False)
        if key and key not in sliced:
            _add(out, waiting, key, *_endpoints_servers(ep, addresses))
    if denied is not None:
        for key, dropped in addresses.denied_by_owner(snapshot).items():
            denied.setdefault(key, set()).update(dropped)
    return out


class Addresses:
    """Parses each distinct address text once: canonical form, or '' (invalid or denied)."""

    def __init__(self, deny: Networks) -> None:
        self.rules = _rules(tuple(deny))  # per family: (network, mask) as integers
        self.cache: Dict[object, str] = {}
        self.denied: Set[str] = set()

    def canonical(self, value: object) -> str:
        hit = self.cache.get(value)
        if hit is None:
            hit = self.cache[value] = self._parse(value) if isinstance(value, str) else ""
        return hit

    def _parse(self, text: str) -> str:
        try:
            packed, family = socket.inet_pton(socket.AF_INET, text), socket.AF_INET  # the usual case first
        except (OSError, ValueError):
            try:
                packed, family = socket.inet_pton(socket.AF_INET6, text), socket.AF_INET6
            except (OSError, ValueError):  # rejects zone ids, spaces, leading zeros
                return ""
            if packed[:12] == _V4_MAPPED:  # ::ffff:127.0.0.1 is 127.0.0.1
                packed, family = packed[12:], socket.AF_INET
        rules = self.rules[family]
        if rules:
            number = int.from_bytes(packed, "big")
            for net, mask in rules:
                if number & mask == net:
                    self.denied.add(text)
                    return ""
        return socket.inet_ntop(family, packed)

    def denied_by_owner(self, snapshot: Snapshot) -> Dict[Tuple[str, str], Set[str]]:
        if not self.denied:
            return {}
        out: Dict[Tuple[str, str], Set[str]] = {}
        for obj, label in [(es, True) for es in snapshot.endpoint_slices] + \
                [(ep, False) for ep in snapshot.endpoints]:
            found = self.denied & set(_all_addresses(obj))
            if found:
                out.setdefault(owner(obj, label=label), set()).update(found)
        return out


@functools.lru_cache(maxsize=8)
def _rules(deny: Networks) -> Dict[int, Tuple[Tuple[int, int], ...]]:
    """The networks as integers by address family (made once, not for each Service)."""
    return {family: tuple((int(n.network_address), int(n.netmask)) for n in deny if n.version == version)
            for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6))}


def in_order(servers: Iterable[Server]) -> Tuple[Server, ...]:
    """Servers sorted by Server.sort_key, without a Python call per server (10,000 a pass)."""
    pton, v4, v6 = socket.inet_pton, socket.AF_INET, socket.AF_INET6
    keyed = [(pton(v4, s[0]) if ":" not in s[0] else b"\xff" * 4 + pton(v6, s[0]), s[1], s) for s in servers]
    keyed.sort(key=_FIRST_TWO)
    return tuple([k[2] for k in keyed])


_FIRST_TWO = operator.itemgetter(0, 1)  # equal keys keep their order, as sorted(key=sort_key) does


_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


def _all_addresses(obj: dict) -> List[str]:
    found = [a for ep in obj.get("endpoints") or () for a in ((ep or {}).get("addresses") or ())]
    for subset in obj.get("subsets") or ():
        found += [a.get("ip") for a in (subset or {}).get("addresses") or () if isinstance(a, dict)]
    return [a for a in found if isinstance(a, str)]


def owner(obj: dict, *, label: bool) -> Tuple[str, str]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return ()  # type: ignore[return-value]
    ns = meta.get("namespace") or "default"
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL) if label else meta.get("name")
    return (str(ns), str(name)) if name else ()  # type: ignore[return-value]


def _merge(into: Dict[str, Set[Server]], more: Dict[str, Set[Server]]) -> None:
    for name, servers in more.items():
        into.setdefault(name, set()).update(servers)


def _add(out: Index, waiting: Waiting, key: Tuple[str, str], servers: Dict[str, Set[Server]],
         unready: Dict[str, Set[str]]) -> None:
    _merge(out.setdefault(key, {}), servers)
    if unready:
        _merge(waiting.setdefault(key, {}), unready)


Found = Tuple[Dict[str, Set[Server]], Dict[str, Set[str]]]  # ready servers, not-ready addresses


def _slice_servers(es: dict, parse: Addresses) -> Found:
    if es.get("addressType") not in ("IPv4", "IPv6"):
        return {}, {}  # FQDN slices name hosts, not Pods
    found, unready = [], []
    cache, canonical = parse.cache, parse.canonical
    for ep in es.get("endpoints") or ():
        if not ep:
            continue
        addrs = ep.get("addresses")
        if addrs:  # all addresses of one endpoint are the same Pod
            # absent `ready` means ready, per the API reference
            if (ep.get("conditions") or _NO_CONDITIONS).get("ready") is False:
                unready.append(addrs[0])
            else:
                found.append(cache.get(addrs[0]) or canonical(addrs[0]))  # dict hit: no call
    ports = es.get("ports") or ()
    return _cross(found, ports), _port_names(ports, unready)


_NO_CONDITIONS: Dict[str, object] = {}


def _endpoints_servers(ep: dict, parse: Addresses) -> Found:
    out: Dict[str, Set[Server]] = {}
    waiting: Dict[str, Set[str]] = {}
    for subset in ep.get("subsets") or ():
        ips = [parse.canonical(a.get("ip")) for a in (subset or {}).get("addresses") or () if isinstance(a, dict)]
        _merge(out, _cross(ips, (subset or {}).get("ports") or ()))
        unready = [a.get("ip") for a in (subset or {}).get("notReadyAddresses") or () if isinstance(a, dict)]
        _merge(waiting, _port_names((subset or {}).get("ports") or (), unready))
    return out, waiting


def _port_names(ports: Iterable[object], addresses: Iterable[object]) -> Dict[str, Set[str]]:
    """Not-ready addresses by port name (counted, never served: no parsing needed)."""
    texts = {a for a in addresses if isinstance(a, str)}
    return {str(p.get("name") or ""): set(texts) for p in ports if isinstance(p, dict) and texts}


def _cross(canonical: Iterable[str], ports: Iterable[object]) -> Dict[str, Set[Server]]:
    ips = [a for a in canonical if a]
    out: Dict[str, Set[Server]] = {}
    for port in ports:
        if not isinstance(port, dict) or (port.get("protocol") or "TCP") != "TCP":
            continue
        number = port.get("port")
        if isinstance(number, int) and 1 <= number <= 65535:
            out.setdefault(port.get("name") or "", set()).update(Server(ip, number) for ip in ips)
    return out
