"""The cluster, frozen: API dicts in, a deterministic `Topology` of backends out.

Decides what is published and how (annotations, conflicts, endpoint readiness) and
reports every Service or annotation it leaves out as a `Problem`. Pure: no I/O, no
logging, no Jinja, no HAProxy syntax. Sorted, so one cluster always gives one Topology.
"""
from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, replace
from typing import Dict, FrozenSet, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

from lbsync import annotations as ann
from lbsync import claims, endpoints, nodes
from lbsync.annotations import Invalid
from lbsync.endpoints import Server
from lbsync.snapshot import Snapshot
from lbsync.topology import Backend, Options, Problem, Reporter, Route, Topology

__all__ = ["Backend", "Group", "Options", "Part", "Problem", "Server", "Topology", "assemble", "build",
           "group", "node_pool", "part"]


def build(snapshot: Snapshot, options: Options = Options()) -> Topology:
    """The Topology for one snapshot; Problems say what was left out and why."""
    pool = node_pool(snapshot, options)
    return assemble([part(g, options, pool) for g in group(snapshot, options, pool)], options, pool)


class Group(NamedTuple):
    """One Service object with all its Part depends on: the endpoint objects that name it and,
    for a Service served through nodePorts, the node pool's version ('' otherwise). `service`
    is None for endpoint objects whose Service is not in the snapshot."""

    owner: Tuple[str, str]
    service: Optional[dict]
    slices: Tuple[dict, ...]
    endpoints: Tuple[dict, ...]
    pool: str


@dataclass(frozen=True)
class Part:
    """What one Group contributes before conflicts are settled (kept between passes by
    lbsync.incremental, so it holds no reference to the raw objects)."""

    owner: Tuple[str, str]
    age: Tuple[str, str, str]  # oldest Service first: it wins conflicts
    routes: Tuple[Route, ...]
    problems: Tuple[Problem, ...]
    denied: FrozenSet[str]  # endpoint addresses refused by deny_networks


def group(snapshot: Snapshot, options: Options, pool: Optional[nodes.Pool] = None) -> List[Group]:
    """Groups in snapshot order: each Service, then endpoint objects of absent Services."""
    slices: Dict[Tuple[str, str], List[dict]] = {}
    eps: Dict[Tuple[str, str], List[dict]] = {}
    for objs, out, label in ((snapshot.endpoint_slices, slices, True), (snapshot.endpoints, eps, False)):
        for obj in objs:
            key = endpoints.owner(obj, label=label)
            if key:
                out.setdefault(key, []).append(obj)
    version = pool.version if pool is not None else ""
    groups = []
    for svc in snapshot.services:
        key = _service_key(svc)
        on_nodes = version and nodes.mode_of(svc, options.backend_mode) == "nodeport"
        groups.append(Group(key, svc, tuple(slices.get(key, ())), tuple(eps.get(key, ())),
                            version if on_nodes else ""))
    named = {g.owner for g in groups}
    for key in sorted((slices.keys() | eps.keys()) - named):
        groups.append(Group(key, None, tuple(slices.get(key, ())), tuple(eps.get(key, ())), ""))
    return groups


def part(g: Group, options: Options, pool: Optional[nodes.Pool] = None) -> Part:
    """The routes and Problems of one Service, from its own objects (and the node pool). Pure."""
    denied: Dict[Tuple[str, str], Set[str]] = {}
    waiting: endpoints.Waiting = {}
    own = Snapshot(endpoint_slices=g.slices, endpoints=g.endpoints)
    ready = endpoints.index(own, deny=_networks(options.deny_networks), denied=denied, waiting=waiting)
    servers = _Servers(ready, waiting, pool, nodes.local_index(own) if pool is not None else {}, options)
    problems: List[Problem] = []
    routes = _service_routes(g.service, servers, options, problems) if g.service is not None else []
    return Part(g.owner, _age_key(g.service) if g.service is not None else ("", "", ""), tuple(routes),
                tuple(problems), frozenset(a for found in denied.values() for a in found))


def assemble(parts: Sequence[Part], options: Options, pool: Optional[nodes.Pool] = None) -> Topology:
    """Settle conflicts across all Services (oldest first) and sort: the cheap global step."""
    denied: Dict[Tuple[str, str], Set[str]] = {}
    for p in parts:
        if p.denied:
            denied.setdefault(p.owner, set()).update(p.denied)
    problems = [Problem(ns, name, "", f"endpoint addresses {', '.join(sorted(addresses)[:5])} are in "
                        "deny_networks (loopback, link-local, multicast); not served",
                        code="EndpointsInDeniedNetwork")
                for (ns, name), addresses in sorted(denied.items())]
    if pool is not None:
        problems.extend(pool.problems)
    routes: List[Route] = []
    for p in sorted(parts, key=lambda p: p.age):
        problems.extend(p.problems)
        routes.extend(p.routes)
    backends = claims.settle(routes, options, problems)
    return Topology(tuple(sorted(backends, key=lambda b: b.name)), tuple(problems))


def _service_key(svc: dict) -> Tuple[str, str]:
    meta = svc.get("metadata") or {}
    ns, name = meta.get("namespace") or "default", meta.get("name")
    return (ns, name) if isinstance(ns, str) and isinstance(name, str) else ("", "")


def node_pool(snapshot: Snapshot, options: Options) -> Optional[nodes.Pool]:
    """The nodes that can be servers; None when no Service is served through nodePorts."""
    if not nodes.wants_nodes(snapshot.services, options.backend_mode):
        return None
    return nodes.pool(snapshot.nodes, address_types=options.node_address_types,
                      selector=options.node_selector, deny=_networks(options.deny_networks))


class _PodServers:
    """A pod-mode Service's servers per port: its ready endpoints."""

    def __init__(self, ready: Dict[str, Set[Server]], waiting: Dict[str, Set[str]]) -> None:
        self.ready, self.waiting = ready, waiting

    def for_port(self, port: dict, report: Reporter) -> Optional[Tuple[Server, ...]]:
        servers = tuple(sorted(self.ready.get(port.get("name") or "", ()), key=Server.sort_key))
        if not servers:
            report("", f"port {port['port']} has no ready endpoints; its backend answers 503", "info",
                   code="NoReadyEndpoints")
        return servers

    def checked(self, backend: Backend) -> Backend:
        """With the count of the port's endpoints that are not ready (reports: ready/total)."""
        unready = self.waiting.get(backend.port_name)
        if not unready:
            return backend
        return replace(backend, not_ready=len(unready - {s.address for s in backend.servers}))


@dataclass(frozen=True)
class _Servers:
    """Where each Service's servers come from: its Pods, or the nodes (backend mode nodeport)."""

    ready: endpoints.Index
    waiting: endpoints.Waiting
    pool: Optional[nodes.Pool]
    local: nodes.LocalIndex
    options: Options

    def of(self, svc: dict, mode: str, report: Reporter):
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        key = (meta.get("namespace") or "default", meta.get("name"))
        if mode != "nodeport":
            return _PodServers(self.ready.get(key, {}), self.waiting.get(key, {}))
        if self.pool is None or not nodes.NodeServers.served(spec, report):
            return None
        return nodes.NodeServers(spec, self.pool, self.local.get(key, {}), self.options.node_health_port)


@functools.lru_cache(maxsize=8)
def _networks(cidrs: Tuple[str, ...]) -> endpoints.Networks:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _age_key(svc: dict) -> Tuple[str, str, str]:
    """Older Services first: they win conflicts. Missing timestamps count as newest."""
    meta = svc.get("metadata") or {}
    created = meta.get("creationTimestamp") or "9999"
    return (str(created), str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _service_routes(svc: dict, servers: _Servers, options: Options,
                    problems: List[Problem]) -> List[Route]:
    meta = svc.get("metadata") or {}
    ns, name = meta.get("namespace") or "default", meta.get("name")
    if not (ann.dns_label(ns) and ann.dns_label(name) and name[0].isalpha()):
        problems.append(Problem(str(ns)[:63], str(name)[:63], "", "namespace or name is not a valid "
                                "Kubernetes name; Service left out", code="InvalidServiceName"))
        return []
    raw = meta.get("annotations") or {}
    if not isinstance(raw, dict):
        raw = {}
    report = Reporter(ns, name, problems)
    if not _published(ns, name, raw, options, report):
        return []
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        report("", "ExternalName Service has no endpoints to balance; left out", "info",
               code="ExternalNameNotBalanced")
        return []
    conf = _ServiceConf.parse(raw, spec.get("ports") or [], options, report)
    source = servers.of(svc, str(conf.service.get("lb.backend-mode") or options.backend_mode), report)
    if source is None:
        return []
    created = str(meta.get("creationTimestamp") or "9999")
    routes = []
    for port in spec.get("ports") or []:
        backend = conf.backend_for(ns, name, port, source, report)
        if backend is not None:
            routes.append(Route(backend, created))
    return routes


def _published(ns: str, name: str, raw: dict, options: Options, report: Reporter) -> bool:
    if ns in options.exclude_namespaces or f"{ns}/{name}" in options.exclude_services:
        report("", "excluded by settings (exclude_namespaces / exclude_services)", "info",
               code="ExcludedBySettings")
        return False
    for key, when, skip, code in (("lb.ignore", True, "lb.ignore is true", "IgnoredByAnnotation"),
                                  ("lb.enabled", False, "lb.enabled is false", "DisabledByAnnotation")):
        value = raw.get(ann.PREFIX + key)
        if value is None:
            continue
        try:
            if ann.boolean(value) == when:
                report(ann.PREFIX + key, f"{skip}; Service left out", "info", code=code)
                return False
        except Invalid as e:
            # fail closed: an unreadable opt-out must not publish the Service
            report(ann.PREFIX + key, f"{e.why}; Service left out to be safe", code="InvalidAnnotation",
                   value=e.shown)
            return False
    if options.publish == "annotated" and raw.get(ann.PREFIX + "lb.enabled") is None:
        report("", 'publish is "annotated" and lb.enabled is not "true"; left out', "info",
               code="NotOptedIn")
        return False
    return True


@dataclass
class _ServiceConf:
    """A Service's validated annotations: Service-wide values and per-port overrides."""

    service: Dict[str, object]
    ports: Dict[str, Dict[str, object]]  # port name or number -> per-port values
    options: Options

    _PARSERS = {"lb.host": ann.hosts, "lb.sslTerm": ann.boolean, "lb.cookie-sticky-session": ann.boolean,
                "lb.algorithm": ann.algorithm, "lb.path-prefix": ann.path_prefix,
                "lb.check-interval": ann.duration_ms, "lb.check-path": ann.check_path,
                "lb.tcp": ann.tcp_ports, "lb.backend-mode": ann.backend_mode}

    @classmethod
    def parse(cls, raw: dict, spec_ports: list, options: Options, report: Reporter) -> "_ServiceConf":
        service_raw, port_raw, unknown = ann.split(raw)
        for key in unknown:
            report(_cut(key), "unknown annotation (typo?); ignored", code="UnknownAnnotation")
        service = cls._parse_all(service_raw, "", report)
        if "lb.backend-mode" in service_raw and "lb.backend-mode" not in service:
            report(ann.PREFIX + "lb.backend-mode", f"using the setting backend_mode ({options.backend_mode})", "info",
                   code="DefaultBackendMode")
        refs = _port_refs(spec_ports)
        ports = {}
        for ref, values in port_raw.items():
            if ref not in refs:
                report(f"{ann.PREFIX}{next(iter(values))}.{_cut(ref)}", "names no port of this Service; ignored",
                       code="AnnotationNamesNoPort")
                continue
            ports[ref] = cls._parse_all(values, "." + ref, report)
        return cls(service, ports, options)

    @classmethod
    def _parse_all(cls, values: Dict[str, str], suffix: str, report: Reporter) -> Dict[str, object]:
        out = {}
        for key, value in values.items():
            if key in ("lb.enabled", "lb.ignore"):
                continue
            try:
                out[key] = cls._PARSERS[key](value)
            except Invalid as e:
                report(ann.PREFIX + key + suffix, f"{e.why}; annotation ignored", code="InvalidAnnotation",
                       value=e.shown)
        if out.get("lb.algorithm") is None and "lb.algorithm" in values:
            report(ann.PREFIX + "lb.algorithm", "using the default, roundrobin", "info", code="DefaultAlgorithm")
        return out

    def get(self, key: str, port: dict, default: object = None) -> object:
        for ref in (str(port.get("port")), port.get("name") or ""):
            if ref and key in self.ports.get(ref, {}):
                return self.ports[ref][key]
        return self.service.get(key, default)

    def tcp_listen(self, port: dict) -> Optional[int]:
        for expose in self.service.get("lb.tcp") or ():
            if expose.port_ref in (str(port.get("port")), port.get("name")):
                return expose.listen_port or int(port["port"])
        return None

    def backend_for(self, ns: str, name: str, port: dict, source: "_PodServers | nodes.NodeServers",
                    report: Reporter) -> Optional[Backend]:
        if not _valid_port(port):
            shown = ann.show(port.get("port") if isinstance(port, dict) else port)
            report("", "a port is not a valid Service port (number 1-65535, name a DNS label); left out",
                   code="InvalidServicePort", value=shown)
            return None
        number, pname = int(port["port"]), port.get("name") or ""
        protocol = port.get("protocol") or "TCP"
        if protocol != "TCP":
            known = protocol if protocol in ("UDP", "SCTP") else "other"  # no untrusted text in a reason
            report("", f"port {number}/{known}: only TCP is load-balanced; left out", "info",
                   code="ProtocolNotSupported", value=ann.show(protocol))
            return None
        servers = source.for_port(port, report)
        if servers is None:
            return None
        base = Backend(name=f"{ns}_{name}_{number}", namespace=ns, service=name, port=number,
                       port_name=pname, mode="http", servers=servers,
                       sticky=bool(self.get("lb.cookie-sticky-session", port, False)),
                       algorithm=str(self.get("lb.algorithm", port) or "roundrobin"),
                       check_interval_ms=int(self.get("lb.check-interval", port) or
                                             self.options.check_interval_ms),
                       check_path=self.get("lb.check-path", port))  # type: ignore[arg-type]
        listen = self.tcp_listen(port)
        if listen is not None:
            return source.checked(replace(base, mode="tcp", listen_port=listen, sticky=False, check_path=None))
        backend = self._http(base, port, report)
        return source.checked(backend) if backend is not None else None

    def _http(self, base: Backend, port: dict, report: Reporter) -> Optional[Backend]:
        ssl = bool(self.get("lb.sslTerm", port, False))
        if ssl and not self.options.tls:
            report(ann.PREFIX + "lb.sslTerm", f"port {base.port}: no TLS certificate is configured "
                   "(tls_cert); route left out", code="TLSWithoutCertificate")
            return None
        default_prefix = f"/{base.service}-{base.port}" if self.options.path_prefixes else None
        prefix = self.get("lb.path-prefix", port, default_prefix)  # None: disabled by annotation
        return replace(base, ssl=ssl, hosts=tuple(self.get("lb.host", port) or ()),  # type: ignore[arg-type]
                       path_prefix=prefix)  # type: ignore[arg-type]


def _port_refs(spec_ports: Iterable[object]) -> Set[str]:
    refs = set()
    for port in spec_ports:
        if isinstance(port, dict):
            refs.add(str(port.get("port")))
            if port.get("name"):
                refs.add(str(port["name"]))
    return refs


def _valid_port(port: object) -> bool:
    if not isinstance(port, dict) or not isinstance(port.get("port"), int):
        return False
    pname = port.get("name") or ""
    return 1 <= port["port"] <= 65535 and (pname == "" or bool(ann.PORT_NAME.match(str(pname))))


def _cut(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."
