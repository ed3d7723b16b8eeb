"""Builders for realistic Service / EndpointSlice / Endpoints objects.

The fake API stores objects the way kube-apiserver prints them, so the builders here
follow the shapes the real controllers produce (including their quirks: an EndpointSlice
with no endpoints carries `"endpoints": null`, v1 Endpoints omit `subsets` when empty,
terminating pods never appear in v1 Endpoints).
"""
from __future__ import annotations

import hashlib
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SLICE_MANAGED_BY = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100

PortSpec = Union[int, Sequence[Any], Dict[str, Any]]
EndpointSpec = Union[str, Dict[str, Any]]


_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def timestamp(when: Optional[float] = None) -> str:
    """RFC 3339 in UTC with second precision, like metadata.creationTimestamp."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def short_hash(*parts: str, length: int = 5) -> str:
    """Deterministic lowercase suffix, like the random ones generateName produces."""
    digest = hashlib.sha1("/".join(parts).encode()).digest()
    return "".join([_ALPHABET[b % 27] for b in digest[:length]])


def service_ports(ports: Iterable[PortSpec]) -> List[Dict[str, Any]]:
    """Normalise ints, (name, port[, targetPort[, protocol]]) tuples or dicts to ServicePorts."""
    specs = list(ports)
    out = []
    for spec in specs:
        if isinstance(spec, dict):
            port = {"protocol": "TCP", **spec}
            port.setdefault("targetPort", port["port"])
        elif isinstance(spec, int):
            port = {"protocol": "TCP", "port": spec, "targetPort": spec}
            if len(specs) > 1:
                port["name"] = "p%d" % spec
        else:
            name, number = spec[0], spec[1]
            target = spec[2] if len(spec) > 2 else number
            protocol = spec[3] if len(spec) > 3 else "TCP"
            port = {"name": name, "protocol": protocol, "port": number, "targetPort": target}
        out.append(port)
    return out


def service(name: str, namespace: str = "default", ports: Iterable[PortSpec] = (80,), *,
            labels: Optional[Dict[str, str]] = None, annotations: Optional[Dict[str, str]] = None,
            selector: Optional[Dict[str, str]] = None, type: str = "ClusterIP",
            cluster_ip: Optional[str] = None, node_ports: Optional[Dict[int, int]] = None,
            external_traffic_policy: str = "Cluster", health_check_node_port: Optional[int] = None
            ) -> Dict[str, Any]:
    """A v1 Service (without server-set uid/resourceVersion; the store stamps those)."""
    spec: Dict[str, Any] = {
        "ports": service_ports(ports),
        "type": type,
        "sessionAffinity": "None",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "internalTrafficPolicy": "Cluster",
    }
    selector = {"app": name} if selector is None else dict(selector)
    if selector:  # the apiserver omits an empty selector (Services with manual endpoints)
        spec["selector"] = selector
    if cluster_ip:  # otherwise the store allocates one, like the apiserver's IP allocator
        spec["clusterIP"], spec["clusterIPs"] = cluster_ip, [cluster_ip]
    if type in ("NodePort", "LoadBalancer"):
        spec["externalTrafficPolicy"] = external_traffic_policy
        if type == "LoadBalancer" and external_traffic_policy == "Local":  # allocated like a nodePort
            spec["healthCheckNodePort"] = health_check_node_port or 32000 + int(short_hash(name, length=4), 36) % 767
        for i, port in enumerate(spec["ports"]):
            default = 30000 + int(short_hash(name, str(i), length=4), 36) % 2767
            port["nodePort"] = (node_ports or {}).get(port["port"], default)
    meta: Dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec,
            "status": {"loadBalancer": {}}}


def node(name: str, address: str, *, labels: Optional[Dict[str, str]] = None,
         taints: Sequence[Dict[str, Any]] = (), ready: bool = True, external: Optional[str] = None
         ) -> Dict[str, Any]:
    """A v1 Node as the kubelet registers it (without server-set uid/resourceVersion)."""
    meta = {"name": name, "labels": {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                                     "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name,
                                     "kubernetes.io/os": "linux", **(labels or {})},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true"}}
    addresses = [{"address": address, "type": "InternalIP"}]
    if external:
        addresses.append({"address": external, "type": "ExternalIP"})
    condition = {"type": "Ready", "status": "True" if ready else "Unknown",
                 "lastHeartbeatTime": timestamp(), "lastTransitionTime": timestamp(),
                 "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                 "message": "kubelet is posting ready status" if ready else "Kubelet stopped posting node status."}
    spec: Dict[str, Any] = {"podCIDR": "10.244.%d.0/24" % (int(short_hash(name, length=2), 36) % 250),
                            "podCIDRs": []}
    spec["podCIDRs"] = [spec["podCIDR"]]
    if taints:
        spec["taints"] = [dict(t) for t in taints]
    capacity = {"cpu": "2", "ephemeral-storage": "20134592Ki", "memory": "4015444Ki", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec, "status": {
        "addresses": addresses + [{"address": name, "type": "Hostname"}],
        "allocatable": capacity, "capacity": capacity, "conditions": [condition],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "images": [{"names": ["registry.k8s.io/kube-proxy:v1.32.0"], "sizeBytes": 30000000}],
        "nodeInfo": {"architecture": "amd64", "containerRuntimeVersion": "containerd://1.7.24",
                     "kernelVersion": "6.1.0-28-amd64", "kubeProxyVersion": "v1.32.0", "kubeletVersion": "v1.32.0",
                     "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12 (bookworm)",
                     "bootID": uid_for("boot", name), "machineID": short_hash(name, length=32),
                     "systemUUID": uid_for("system", name)}}}


def _endpoint(spec: EndpointSpec, namespace: str, service_name: str, index: int,
              default_state: str) -> Dict[str, Any]:
    """Normalise an IP string or a dict into {ip, ready, serving, terminating, pod, node}."""
    item: Dict[str, Any] = {"ip": spec} if isinstance(spec, str) else dict(spec)
    state = item.pop("state", default_state)
    item.setdefault("ready", state == "ready")
    item.setdefault("serving", state in ("ready", "terminating-serving"))
    item.setdefault("terminating", state.startswith("terminating"))
    item.setdefault("pod", "%s-%s-%s" % (service_name, short_hash(namespace, service_name, length=10),
                                         short_hash(item["ip"])))
    item.setdefault("node", "node-%d" % (index % 3 + 1))
    return item


def endpoint_list(namespace: str, service_name: str, ready: Iterable[EndpointSpec] = (),
                  not_ready: Iterable[EndpointSpec] = (), terminating: Iterable[EndpointSpec] = ()
                  ) -> List[Dict[str, Any]]:
    """All endpoints of a Service as normalised dicts, in the order given."""
    out: List[Dict[str, Any]] = []
    for state, specs in (("ready", ready), ("not-ready", not_ready), ("terminating", terminating)):
        for spec in specs:
            out.append(_endpoint(spec, namespace, service_name, len(out), state))
    return out


def _target_ref(namespace: str, item: Dict[str, Any]) -> Dict[str, Any]:
    return {"kind": "Pod", "namespace": namespace, "name": item["pod"],
            "uid": uid_for("pod", namespace, item["pod"])}


def uid_for(*parts: str) -> str:
    """A stable UUID-shaped uid derived from the object's identity."""
    h = hashlib.md5("/".join(parts).encode()).hexdigest()
    variant = "89ab"[int(h[16], 16) % 4]
    return "%s-%s-4%s-%s%s-%s" % (h[:8], h[8:12], h[13:16], variant, h[17:20], h[20:32])


def endpoint_ports(svc: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The ports the controllers copy from a Service: the numeric targetPort, name, protocol."""
    out = []
    for port in svc["spec"].get("ports") or []:
        target = port.get("targetPort", port["port"])
        entry = {"name": port.get("name", ""), "port": target if isinstance(target, int) else port["port"],
                 "protocol": port.get("protocol", "TCP")}
        if port.get("appProtocol"):
            entry["appProtocol"] = port["appProtocol"]
        out.append(entry)
    return out


def endpoint_slices(svc: Dict[str, Any], endpoints: Sequence[Dict[str, Any]],
                    when: Optional[str] = None) -> List[Dict[str, Any]]:
    """The EndpointSlices the endpointslice controller would write for `svc`."""
    meta = svc["metadata"]
    ns, name = meta["namespace"], meta["name"]
    ports = endpoint_ports(svc)
    chunks = [endpoints[i:i + MAX_ENDPOINTS_PER_SLICE]
              for i in range(0, len(endpoints), MAX_ENDPOINTS_PER_SLICE)] or [[]]
    slices = []
    for index, chunk in enumerate(chunks):
        labels = dict(meta.get("labels") or {})
        labels.update({"endpointslice.kubernetes.io/managed-by": SLICE_MANAGED_BY, SERVICE_NAME_LABEL: name})
        slice_name = "%s-%s" % (name, short_hash(ns, name, str(index)))
        slices.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {
                "name": slice_name, "generateName": name + "-", "namespace": ns, "labels": labels,
                "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": when or timestamp()},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                                     "uid": meta.get("uid", uid_for("service", ns, name)),
                                     "controller": True, "blockOwnerDeletion": True}],
            },
            "addressType": "IPv4",
            "endpoints": [_slice_endpoint(ns, e) for e in chunk] or None,
            "ports": ports if chunk else None,
        })
    return slices


def _slice_endpoint(namespace: str, item: Dict[str, Any]) -> Dict[str, Any]:
    return {"addresses": [item["ip"]],
            "conditions": {"ready": item["ready"], "serving": item["serving"],
                           "terminating": item["terminating"]},
            "nodeName": item["node"], "targetRef": _target_ref(namespace, item)}


def endpoints_object(svc: Dict[str, Any], endpoints: Sequence[Dict[str, Any]],
                     when: Optional[str] = None) -> Dict[str, Any]:
    """The v1 Endpoints the endpoints controller would write (terminating pods left out)."""
    meta = svc["metadata"]
    ns = meta["namespace"]
    ready = [e for e in endpoints if e["ready"] and not e["terminating"]]
    not_ready = [e for e in endpoints if not e["ready"] and not e["terminating"]]
    obj: Dict[str, Any] = {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": meta["name"], "namespace": ns,
                     "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": when or timestamp()}},
    }
    if meta.get("labels"):
        obj["metadata"]["labels"] = dict(meta["labels"])
    if ready or not_ready:
        subset: Dict[str, Any] = {}
        if ready:
            subset["addresses"] = [_v1_address(ns, e) for e in ready]
        if not_ready:
            subset["notReadyAddresses"] = [_v1_address(ns, e) for e in not_ready]
        ports = []
        for port in endpoint_ports(svc):
            port = dict(port)
            if not port["name"]:
                del port["name"]
            ports.append(port)
        subset["ports"] = ports
        obj["subsets"] = [subset]
    return obj


def _v1_address(namespace: str, item: Dict[str, Any]) -> Dict[str, Any]:
    return {"ip": item["ip"], "nodeName": item["node"], "targetRef": _target_ref(namespace, item)}
