"""The cluster, frozen: API dicts in, a deterministic `Topology` of backends out.

Decides what is published and how (annotations, conflicts, endpoint readiness) and
reports every Service or annotation it leaves out as a `Problem`. Pure: no I/O, no
logging, no Jinja, no HAProxy syntax. Sorted, so one cluster always gives one Topology.
"""
from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, replace
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Sequence, Set, Tuple

from lbsync import annotations as ann
from lbsync import claims, endpoints, nodes
from lbsync.annotations import Invalid
from lbsync.endpoints import Server
from lbsync.serviceconf import ServiceConf
from lbsync.snapshot import NotRead, Snapshot, Unread
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
        key = service_key(svc)
        groups.append(service_group(svc, tuple(slices.get(key, ())), tuple(eps.get(key, ())), options, version))
    named = {g.owner for g in groups}
    for key in sorted((slices.keys() | eps.keys()) - named):
        groups.append(Group(key, None, tuple(slices.get(key, ())), tuple(eps.get(key, ())), ""))
    return groups


def part(g: Group, options: Options, pool: Optional[nodes.Pool] = None) -> Part:
    """The routes and Problems of one Service, from its own objects (and the node pool). Pure.
    Raises NotRead for a stand-in (lbsync.snapshot.Unread): it lacks what a Part is built from."""
    if g.service.__class__ is Unread or any(o.__class__ is Unread for o in g.slices + g.endpoints):
        raise NotRead("%s/%s" % g.owner)
    denied: Dict[Tuple[str, str], Set[str]] = {}
    waiting: endpoints.Waiting = {}
    own = Snapshot(endpoint_slices=g.slices, endpoints=g.endpoints)
    ready = endpoints.index(own, deny=_networks(options.deny_networks), denied=denied, waiting=waiting)
    servers = _Servers(ready, waiting, pool, nodes.local_index(own) if pool is not None else {}, options)
    problems: List[Problem] = []
    routes = _service_routes(g.service, servers, options, problems) if g.service is not None else []
    return Part(g.owner, _age_key(g.service) if g.service is not None else ("", "", ""), tuple(routes),
                tuple(problems), frozenset(a for found in denied.values() for a in found))


def assemble(parts: Sequence[Part], options: Options, pool: Optional[nodes.Pool] = None,
             outcome: Optional[List[Optional[Backend]]] = None) -> Topology:
    """Settle conflicts across all Services (oldest first) and sort: the cheap global step.
    `outcome`: see claims.settle (routes in `by_age(parts)` order)."""
    ordered = by_age(parts)
    problems = part_problems(ordered, pool)
    routes = [r for p in ordered for r in p.routes]
    backends = claims.settle(routes, options, problems, outcome)
    return Topology(tuple(sorted(backends, key=lambda b: b.name)), tuple(problems))


def by_age(parts: Sequence[Part]) -> List[Part]:
    """Oldest Service first: the order conflicts are settled in."""
    return sorted(parts, key=lambda p: p.age)


def part_problems(ordered: Sequence[Part], pool: Optional[nodes.Pool]) -> List[Problem]:
    """The Problems of a Topology before conflicts add theirs: denied endpoint addresses, the
    node pool's, then each Part's (oldest first)."""
    denied: Dict[Tuple[str, str], Set[str]] = {}
    for p in ordered:
        if p.denied:
            denied.setdefault(p.owner, set()).update(p.denied)
    problems = [Problem(ns, name, "", f"endpoint addresses {', '.join(sorted(addresses)[:5])} are in "
                        "deny_networks (loopback, link-local, multicast); not served",
                        code="EndpointsInDeniedNetwork")
                for (ns, name), addresses in sorted(denied.items())]
    if pool is not None:
        problems.extend(pool.problems)
    for p in ordered:
        problems.extend(p.problems)
    return problems


def service_group(svc: dict, slices: Tuple[dict, ...], eps: Tuple[dict, ...], options: Options,
                  version: str) -> Group:
    """A Service's Group, given its endpoint objects and the node pool's version ('' if none)."""
    on_nodes = version and nodes.mode_of(svc, options.backend_mode) == "nodeport"
    return Group(service_key(svc), svc, slices, eps, version if on_nodes else "")


def service_key(svc: dict) -> Tuple[str, str]:
    """(namespace, name); ('', '') when they are not strings."""
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
        servers = endpoints.in_order(self.ready.get(port.get("name") or "", ()))
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
    conf = ServiceConf.parse(raw, spec.get("ports") or [], options, report)
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
