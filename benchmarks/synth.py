"""Synthetic clusters for the benchmark: N Services, 10 ready endpoints each, realistic annotations.

Deterministic (seeded), so two runs serve byte-identical lists. Proportions, per Service:
  ~40% lb.host (a few with two hosts, a few wildcards), ~10% sticky cookie, ~5% sslTerm,
  ~15% lb.check-path, ~5% lb.algorithm, ~1% lb.tcp (unique listen ports >= 20000),
  ~3% lb.ignore; ~50% carry kubectl's last-applied-configuration (a copy of the Service,
  the largest annotation real clusters have) and ~30% prometheus scrape annotations.
1-3 ports per Service (http, grpc, metrics). Pod IPs are unique loopback addresses
(127.1.0.1 upwards; the latency probe's real Pods are 127.0.0.x): a live HAProxy in front
of this cluster health-checks only this machine. lbsync must run with `--deny-networks none`
(loopback is denied by default).
"""
from __future__ import annotations

import json
import random
import socket
from typing import Any, Dict, Iterable, List, Optional, Tuple

P = "serviceloadbalancer/"
PORTS = [("http", 80, 8080), ("grpc", 9090, 9090), ("metrics", 9100, 9100)]
PROBE_NS, PROBE_NAME, PROBE_HOST = "bench-probe", "probe", "probe.example.com"


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pod_ips(index: int, count: int) -> List[str]:
    first = index * count
    return ["127.%d.%d.%d" % (1 + n // 65024, n // 254 % 256, n % 254 + 1) for n in range(first, first + count)]


def service_specs(n: int, endpoints: int = 10, seed: int = 7) -> Iterable[Tuple[str, str, list, Dict[str, str], List[str]]]:
    """(namespace, name, ports, annotations, pod IPs) for each of n Services."""
    rnd = random.Random(seed * 1_000_003 + n)
    namespaces = ["team-%03d" % i for i in range(max(1, n // 50))]
    tcp_port = 20000
    for i in range(n):
        ns, name = namespaces[i % len(namespaces)], "svc-%05d" % i
        ports = PORTS[:rnd.choice((1, 1, 1, 2, 2, 3))]
        ann: Dict[str, str] = {}
        r = rnd.random
        if r() < 0.40:
            host = "%s.%s.example.com" % (name, ns)
            if r() < 0.10:
                host += ",www.%s.%s.example.com" % (name, ns)
            elif r() < 0.05:
                host = "*.%s.%s.example.com" % (name, ns)
            ann[P + "lb.host"] = host
        if r() < 0.10:
            ann[P + "lb.cookie-sticky-session"] = "true"
        if r() < 0.05:
            ann[P + "lb.sslTerm"] = "true"
        if r() < 0.15:
            ann[P + "lb.check-path"] = rnd.choice(("/healthz", "/ready", "/status"))
        if r() < 0.05:
            ann[P + "lb.algorithm"] = rnd.choice(("leastconn", "source"))
        if r() < 0.01:
            while not _port_free(tcp_port):
                tcp_port += 1
            ann[P + "lb.tcp"] = "%d:%d" % (ports[-1][1], tcp_port)
            tcp_port += 1
        if r() < 0.03:
            ann[P + "lb.ignore"] = "true"
        if r() < 0.30:
            ann.update({"prometheus.io/scrape": "true", "prometheus.io/port": "9100"})
        if r() < 0.50:
            applied = {"apiVersion": "v1", "kind": "Service",
                       "metadata": {"annotations": {k: v for k, v in ann.items()}, "labels": {"app": name},
                                    "name": name, "namespace": ns},
                       "spec": {"ports": [{"name": pn, "port": p, "targetPort": t} for pn, p, t in ports],
                                "selector": {"app": name}}}
            ann["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(applied, separators=(",", ":")) + "\n"
        yield ns, name, ports, ann, pod_ips(i, endpoints)


def populate(api: Any, n: int, endpoints: int = 10, seed: int = 7) -> Dict[str, int]:
    """Fill a FakeKubeApi; returns counts of each annotation kind."""
    counts: Dict[str, int] = {"services": 0, "ports": 0}
    for ns, name, ports, ann, ips in service_specs(n, endpoints, seed):
        api.add_service(name, ns, ports, labels={"app": name, "tier": "bench"}, annotations=ann or None)
        api.set_endpoints(ns, name, ready=ips)
        counts["services"] += 1
        counts["ports"] += len(ports)
        for key in ann:
            if key.startswith(P):
                counts[key[len(P):]] = counts.get(key[len(P):], 0) + 1
    return counts


def add_probe(api: Any, pod_port: int, ips: List[str]) -> None:
    """The one Service whose Pods are real loopback backends (the latency probe)."""
    api.add_service(PROBE_NAME, PROBE_NS, [("http", 80, pod_port)], annotations={P + "lb.host": PROBE_HOST})
    api.set_endpoints(PROBE_NS, PROBE_NAME, ready=ips)


def change_one_endpoint(api: Any, n: int, endpoints: int = 10, step: int = 1,
                        target: Optional[int] = None) -> Tuple[str, str]:
    """Replace the last Pod of one Service with a new IP (a Pod restarted elsewhere)."""
    i = (n // 2) if target is None else target
    ns = "team-%03d" % (i % max(1, n // 50))
    name = "svc-%05d" % i
    ips = pod_ips(i, endpoints)
    ips[-1] = "127.250.%d.%d" % (step // 250, step % 250 + 1)
    api.set_endpoints(ns, name, ready=ips)
    return ns, name
