"""Nodes as servers (backend mode `nodeport`): which nodes, at which address, with what weight.

For a load balancer outside the cluster that cannot reach Pod IPs: each server is a node's
address and the Service's nodePort, and kube-proxy on the node carries the traffic on to a
Pod. Which nodes follows the Kubernetes service controller and cloud load balancers: never
nodes labelled to be excluded, being deleted, or tainted for deletion by the cluster
autoscaler; `node_selector` narrows the set. The node pool is its own pure step with a
stable `version`, so a cache of per-Service results can key on it. Pure: no I/O.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from lbsync import annotations as ann
from lbsync import endpoints, labels
from lbsync.endpoints import Server
from lbsync.snapshot import Snapshot
from lbsync.topology import Backend, Problem, Reporter

MODE_ANNOTATION = ann.PREFIX + "lb.backend-mode"
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
AUTOSCALER_TAINT = "ToBeDeletedByClusterAutoscaler"
HEALTH_PATH = "/healthz"  # kube-proxy's health server and healthCheckNodePort both answer it
MAX_WEIGHT = 256  # HAProxy's highest server weight

# (namespace, service) -> Service port name -> node name -> ready endpoints on that node
LocalIndex = Dict[Tuple[str, str], Dict[str, Dict[str, int]]]


@dataclass(frozen=True)
class Pool:
    """The eligible nodes, sorted by name, each with the one address servers use."""

    nodes: Tuple[Tuple[str, str], ...]  # (name, canonical address)
    problems: Tuple[Problem, ...] = field(default=(), compare=False)

    @property
    def version(self) -> str:
        """Changes exactly when the pool does: part of a cache key for nodeport Services."""
        return hashlib.sha1(repr(self.nodes).encode()).hexdigest()[:16]

    def address(self, name: str) -> Optional[str]:
        return dict(self.nodes).get(name)


def mode_of(service: dict, default: str) -> str:
    """The Service's backend mode: its annotation when valid, else `default` (lenient: the model
    reports a bad value; a source only needs to know whether to list Nodes)."""
    raw = ((service.get("metadata") or {}).get("annotations") or {}) if isinstance(service, dict) else {}
    value = raw.get(MODE_ANNOTATION) if isinstance(raw, dict) else None
    try:
        return ann.backend_mode(value) if value is not None else default
    except ann.Invalid:
        return default


def wants_nodes(services: Iterable[dict], default: str) -> bool:
    """True when some Service is served through nodePorts: only then are Nodes worth listing.
    (Runs twice a pass over every Service: one without the annotation is passed over at once.)"""
    if default == "nodeport":
        return True
    for s in services:
        meta = s.get("metadata") if isinstance(s, dict) else None
        found = meta.get("annotations") if isinstance(meta, dict) else None
        if isinstance(found, dict) and MODE_ANNOTATION in found and mode_of(s, default) == "nodeport":
            return True
    return False


def pool(nodes: Sequence[dict], *, address_types: Sequence[str], selector: str = "",
         deny: endpoints.Networks = ()) -> Pool:
    """The eligible nodes; a node with no usable address is left out with a Problem."""
    wanted = labels.parse(selector)
    parse = endpoints.Addresses(deny)
    found: List[Tuple[str, str]] = []
    problems: List[Problem] = []
    for node in sorted((n for n in nodes if isinstance(n, dict)), key=_name):
        if not _eligible(node, wanted):
            continue
        address = _address(node, address_types, parse)
        if address:
            found.append((_name(node), address))
        else:
            # the node's name is the cluster's text: in `value` (lbsync's log), not in the reason
            problems.append(Problem("", "", "", f"a node has no usable address of types {', '.join(address_types)} "
                                    "(or it is in deny_networks); left out", code="NodeWithoutAddress",
                                    value=ann.show(_name(node))))
    return Pool(tuple(found), tuple(problems))


def digest(nodes: Iterable[dict]) -> str:
    """A token of everything `pool` reads from these Nodes: equal tokens give equal pools
    (status heartbeats and image lists do not change it)."""
    seen = sorted(json.dumps([_name(n), (n.get("metadata") or {}).get("labels"),
                              bool((n.get("metadata") or {}).get("deletionTimestamp")),
                              (n.get("spec") or {}).get("taints"), (n.get("status") or {}).get("addresses")],
                             sort_keys=True, default=str) for n in nodes if isinstance(n, dict))
    return hashlib.sha1("\n".join(seen).encode()).hexdigest()[:16]


def _name(node: dict) -> str:
    return str((node.get("metadata") or {}).get("name") or "")


def _eligible(node: dict, selector: labels.Selector) -> bool:
    meta = node.get("metadata") or {}
    node_labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    taints = (node.get("spec") or {}).get("taints") or ()
    return (bool(_name(node)) and EXCLUDE_LABEL not in node_labels and not meta.get("deletionTimestamp")
            and not any(isinstance(t, dict) and t.get("key") == AUTOSCALER_TAINT for t in taints)
            and labels.matches(selector, node_labels))


def _address(node: dict, address_types: Sequence[str], parse: endpoints.Addresses) -> str:
    """The first valid address of the most preferred type the node has."""
    listed = [a for a in (node.get("status") or {}).get("addresses") or () if isinstance(a, dict)]
    for kind in address_types:
        for entry in listed:
            if entry.get("type") == kind:
                address = parse.canonical(entry.get("address"))
                if address:
                    return address
    return ""


def local_index(snapshot: Snapshot) -> LocalIndex:
    """Ready endpoints per node for every Service port (EndpointSlice or v1 Endpoints `nodeName`)."""
    found: Dict[Tuple[str, str], Dict[str, Dict[str, Set[str]]]] = {}
    for es in snapshot.endpoint_slices:
        key = endpoints.owner(es, label=True)
        if key:
            ready = [(e.get("nodeName"), (e.get("addresses") or [""])[0]) for e in es.get("endpoints") or ()
                     if isinstance(e, dict) and (e.get("conditions") or {}).get("ready") is not False]
            _add(found.setdefault(key, {}), es.get("ports") or (), ready)
    for ep in snapshot.endpoints:
        key = endpoints.owner(ep, label=False)
        if key and key not in found:
            for subset in ep.get("subsets") or ():
                ready = [(a.get("nodeName"), a.get("ip")) for a in (subset or {}).get("addresses") or ()
                         if isinstance(a, dict)]
                _add(found.setdefault(key, {}), (subset or {}).get("ports") or (), ready)
    return {key: {port: {node: len(pods) for node, pods in by_node.items()} for port, by_node in ports.items()}
            for key, ports in found.items()}


def _add(into: Dict[str, Dict[str, Set[str]]], ports: Iterable[object], ready: List[Tuple[object, object]]) -> None:
    for port in ports:
        if isinstance(port, dict) and (port.get("protocol") or "TCP") == "TCP":
            by_node = into.setdefault(str(port.get("name") or ""), {})
            for node, pod in ready:
                if isinstance(node, str) and node:
                    by_node.setdefault(node, set()).add(str(pod))


class NodeServers:
    """A nodeport Service's servers per port: the pool (Cluster policy) or the nodes holding
    its ready endpoints, weighted by how many (Local policy), and the health check to use."""

    def __init__(self, spec: dict, node_pool: Pool, local: Dict[str, Dict[str, int]], health_port: int) -> None:
        self.pool, self.local, self.health_port = node_pool, local, health_port
        self.policy = "Local" if spec.get("externalTrafficPolicy") == "Local" else "Cluster"
        hcnp = spec.get("healthCheckNodePort")
        self.hcnp = hcnp if isinstance(hcnp, int) and 1 <= hcnp <= 65535 else None

    @staticmethod
    def served(spec: dict, report: Reporter) -> bool:
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            return True
        report(MODE_ANNOTATION, "backend mode is nodeport but the Service is not of type NodePort or LoadBalancer "
               "(no nodePort to reach it from outside); left out", code="NotANodePortService",
               value=ann.show(spec.get("type") or "ClusterIP"))
        return False

    def for_port(self, port: dict, report: Reporter) -> Optional[Tuple[Server, ...]]:
        node_port = port.get("nodePort")
        if not isinstance(node_port, int) or not 1 <= node_port <= 65535:
            report("", f"port {port['port']} has no nodePort; left out", code="PortWithoutNodePort",
                   value=ann.show(node_port) if node_port is not None else "")
            return None
        if self.policy == "Cluster":
            servers = [Server(address, node_port) for _, address in self.pool.nodes]
        else:
            on = self.local.get(str(port.get("name") or ""), {})
            servers = [Server(address, node_port, min(on[name], MAX_WEIGHT))
                       for name, address in self.pool.nodes if on.get(name)]
            outside = sorted(set(on) - {name for name, _ in self.pool.nodes})
            if outside:
                report("", f"port {port['port']}: ready endpoints on {len(outside)} node(s) not in the node pool "
                       "get no traffic (externalTrafficPolicy Local)", "info", code="EndpointsOnExcludedNodes",
                       value=ann.show(", ".join(outside[:5])))
        if not servers:
            report("", f"port {port['port']}: no eligible node to serve it ({self.policy} policy); its "
                   "backend answers 503", "info", code="NoEligibleNodes")
        return tuple(sorted(servers, key=Server.sort_key))

    def checked(self, backend: Backend) -> Backend:
        """Cluster: kube-proxy's /healthz decides. Local: the healthCheckNodePort, else the
        backend's own check on the nodePort (kube-proxy answers there only with local Pods)."""
        if self.policy == "Cluster":
            return replace(backend, check_port=self.health_port, check_path=HEALTH_PATH)
        if self.hcnp is not None:
            return replace(backend, check_port=self.hcnp, check_path=HEALTH_PATH)
        return backend
