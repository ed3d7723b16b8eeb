"""Tiny builders for Kubernetes objects in unit and golden tests (shapes as the API prints them)."""
from __future__ import annotations

from typing import Dict, Iterable, Optional, Sequence, Tuple

from lbsync.snapshot import Snapshot

P = "serviceloadbalancer/"


def svc(name: str, ns: str = "default", ports: Sequence[Tuple] = (("http", 80, "http"),), *,
        annotations: Optional[Dict[str, str]] = None, created: str = "2026-01-01T00:00:00Z",
        type: str = "ClusterIP") -> dict:
    """ports: (name, port[, targetPort[, protocol]])."""
    spec_ports = []
    for p in ports:
        port = {"name": p[0], "port": p[1], "targetPort": p[2] if len(p) > 2 else p[1],
                "protocol": p[3] if len(p) > 3 else "TCP"}
        if not port["name"]:
            del port["name"]
        spec_ports.append(port)
    meta = {"name": name, "namespace": ns, "creationTimestamp": created, "resourceVersion": "1"}
    if annotations:
        meta["annotations"] = {(k if "/" in k else P + k): v for k, v in annotations.items()}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"type": type, "ports": spec_ports}}


def slice_(name: str, ns: str = "default", ready: Iterable[str] = (), not_ready: Iterable[str] = (),
           ports: Sequence[Tuple] = (("http", 8080),), *, suffix: str = "abcde",
           address_type: str = "IPv4") -> dict:
    """An EndpointSlice; ports: (name, port[, protocol])."""
    eps = [{"addresses": [ip], "conditions": {"ready": True}} for ip in ready]
    eps += [{"addresses": [ip], "conditions": {"ready": False}} for ip in not_ready]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": address_type,
            "metadata": {"name": f"{name}-{suffix}", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": name}},
            "endpoints": eps,
            "ports": [{"name": p[0], "port": p[1], "protocol": p[2] if len(p) > 2 else "TCP"} for p in ports]}


def endpoints_v1(name: str, ns: str = "default", ready: Iterable[str] = (), not_ready: Iterable[str] = (),
                 ports: Sequence[Tuple] = (("http", 8080),)) -> dict:
    subset = {"ports": [{"name": p[0], "port": p[1], "protocol": "TCP"} for p in ports]}
    if ready:
        subset["addresses"] = [{"ip": ip} for ip in ready]
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns},
            "subsets": [subset]}


def node(name: str, internal: Optional[str] = None, *, external: Optional[str] = None,
         labels: Optional[Dict[str, str]] = None, taints: Sequence[dict] = (), deleting: bool = False) -> dict:
    """A v1 Node as the kubelet writes it (addresses InternalIP/ExternalIP, then Hostname)."""
    addresses = [{"type": t, "address": a} for t, a in (("InternalIP", internal), ("ExternalIP", external)) if a]
    meta = {"name": name, "resourceVersion": "1",
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **(labels or {})}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": {"taints": list(taints)} if taints else {},
            "status": {"addresses": addresses + [{"type": "Hostname", "address": name}]}}


def nodeport_svc(name: str, ns: str = "default", node_port: int = 30080, *, type: str = "NodePort",
                 policy: str = "Cluster", hcnp: Optional[int] = None, **kw) -> dict:
    """A NodePort/LoadBalancer Service with one port `http` 80 -> http, on `node_port`."""
    s = svc(name, ns, type=type, **kw)
    s["spec"]["ports"][0]["nodePort"] = node_port
    s["spec"]["externalTrafficPolicy"] = policy
    if hcnp:
        s["spec"]["healthCheckNodePort"] = hcnp
    return s


def snapshot(*objects: dict) -> Snapshot:
    kinds = {"Service": [], "EndpointSlice": [], "Endpoints": [], "Node": []}
    for obj in objects:
        kinds[obj["kind"]].append(obj)
    return Snapshot(services=tuple(kinds["Service"]), endpoint_slices=tuple(kinds["EndpointSlice"]),
                    endpoints=tuple(kinds["Endpoints"]), nodes=tuple(kinds["Node"]))
