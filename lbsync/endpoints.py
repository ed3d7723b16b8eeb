"""Ready endpoint addresses per Service port, from EndpointSlices or v1 Endpoints.

Only ready endpoints are served: EndpointSlice `conditions.ready: false` and Endpoints
`notReadyAddresses` never are. Endpoint ports are matched to Service ports by the
Service port's name, which is how the API resolves named `targetPort`s. Pure.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Set, Tuple

from lbsync.snapshot import Snapshot

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class Server:
    """One ready Pod address behind one Service port."""

    address: str
    port: int

    @property
    def ipv6(self) -> bool:
        return ":" in self.address

    def sort_key(self) -> Tuple[int, bytes, int]:
        ip = ipaddress.ip_address(self.address)
        return (ip.version, ip.packed, self.port)


# (namespace, service) -> Service port name ("" when unnamed) -> ready servers
Index = Dict[Tuple[str, str], Dict[str, Set[Server]]]


Networks = Tuple[ipaddress._BaseNetwork, ...]  # type: ignore[name-defined]


def index(snapshot: Snapshot, *, deny: Networks = (),
          denied: Optional[Dict[Tuple[str, str], Set[str]]] = None) -> Index:
    """EndpointSlices where a Service has any; v1 Endpoints only for the others.

    Addresses inside `deny` are dropped: anyone who can write an Endpoints object could
    otherwise point the load balancer at its own loopback or a cloud metadata address.
    """
    out: Index = {}
    for es in snapshot.endpoint_slices:
        key = _owner(es, label=True)
        if key:
            _merge(out.setdefault(key, {}), _slice_servers(es))
    sliced = set(out)
    for ep in snapshot.endpoints:
        key = _owner(ep, label=False)
        if key and key not in sliced:
            _merge(out.setdefault(key, {}), _endpoints_servers(ep))
    if deny:
        for key, ports in out.items():
            for name, servers in ports.items():
                dropped = {s for s in servers if _denied(s.address, deny)}
                if dropped:
                    ports[name] = servers - dropped
                    if denied is not None:
                        denied.setdefault(key, set()).update(s.address for s in dropped)
    return out


def _denied(address: str, deny: Networks) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in deny)


def _owner(obj: dict, *, label: bool) -> Tuple[str, str]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return ()  # type: ignore[return-value]
    ns = meta.get("namespace") or "default"
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL) if label else meta.get("name")
    return (str(ns), str(name)) if name else ()  # type: ignore[return-value]


def _merge(into: Dict[str, Set[Server]], more: Dict[str, Set[Server]]) -> None:
    for name, servers in more.items():
        into.setdefault(name, set()).update(servers)


def _slice_servers(es: dict) -> Dict[str, Set[Server]]:
    if es.get("addressType") not in ("IPv4", "IPv6"):
        return {}  # FQDN slices name hosts, not Pods
    addresses = []
    for ep in es.get("endpoints") or ():
        conditions = (ep or {}).get("conditions") or {}
        if conditions.get("ready") is False:  # absent means ready, per the API reference
            continue
        addrs = (ep or {}).get("addresses") or ()
        if addrs:
            addresses.append(addrs[0])  # all addresses of one endpoint are the same Pod
    return _cross(addresses, es.get("ports") or ())


def _endpoints_servers(ep: dict) -> Dict[str, Set[Server]]:
    out: Dict[str, Set[Server]] = {}
    for subset in ep.get("subsets") or ():
        addresses = [a.get("ip") for a in (subset or {}).get("addresses") or () if isinstance(a, dict)]
        _merge(out, _cross(addresses, (subset or {}).get("ports") or ()))
    return out


def _cross(addresses: Iterable[object], ports: Iterable[object]) -> Dict[str, Set[Server]]:
    ips = [a for a in (_ip(x) for x in addresses) if a]
    out: Dict[str, Set[Server]] = {}
    for port in ports:
        if not isinstance(port, dict) or (port.get("protocol") or "TCP") != "TCP":
            continue
        number = port.get("port")
        if isinstance(number, int) and 1 <= number <= 65535:
            out.setdefault(port.get("name") or "", set()).update(Server(ip, number) for ip in ips)
    return out


def _ip(value: object) -> str:
    """The canonical text of an IP address, or '' for anything else."""
    try:
        text = str(ipaddress.ip_address(str(value)))
    except ValueError:
        return ""
    return "" if "%" in text else text  # no IPv6 zone ids: they name an interface of ours
