"""The shapes of the model: what a Topology is made of, and how Problems are collected.

Pure data: frozen dataclasses and a small collector; no I/O, no HAProxy syntax.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from lbsync.endpoints import Server
from lbsync.settings import DEFAULT_DENY


@dataclass(frozen=True)
class Options:
    """The settings the model needs (a slice of lbsync.settings.Settings)."""

    publish: str = "all"
    exclude_namespaces: Tuple[str, ...] = ("kube-system",)
    exclude_services: Tuple[str, ...] = ("default/kubernetes",)
    path_prefixes: bool = True
    check_interval_ms: int = 2000
    tls: bool = False  # an HTTPS frontend exists (a certificate is configured)
    reserved_ports: Tuple[int, ...] = ()  # ports of our own binds: never given to lb.tcp
    deny_networks: Tuple[str, ...] = DEFAULT_DENY  # endpoint addresses never served
    backend_mode: str = "pod"  # or "nodeport": servers are nodes' nodePorts
    node_address_types: Tuple[str, ...] = ("InternalIP",)
    node_selector: str = ""
    node_health_port: int = 10256


_CODE = re.compile(r"^[A-Z][A-Za-z0-9]{2,63}$")
OWNER_INFO = ("NoReadyEndpoints", "NoEligibleNodes")  # info-level problems a Service's owner still wants to hear of


@dataclass(frozen=True)
class Problem:
    """Something left out, with enough evidence to fix it. level: warning or info.

    `code` is a stable CamelCase word for machines (a Kubernetes Event's reason, alerts);
    `reason` is for people and holds no untrusted text (values the cluster's users wrote),
    so it may be shown outside lbsync; `value` is the offending value, quoted and cut
    short, for lbsync's own log only.
    """

    namespace: str
    service: str
    annotation: str
    reason: str
    level: str = "warning"
    code: str = ""
    value: str = ""

    def __post_init__(self) -> None:
        if not _CODE.match(self.code):  # loud: a call site without a code is a bug
            raise ValueError(f"Problem code {self.code!r} is not a CamelCase word")

    @property
    def for_owner(self) -> bool:
        """Whether the Service's owner should hear of it (a Kubernetes Event on the Service):
        every warning, and a port that answers 503; not the operator's own choices (excluded,
        opt-in, lb.ignore, UDP), which would put an Event on every such Service."""
        return self.level == "warning" or self.code in OWNER_INFO


@dataclass(frozen=True)
class Backend:
    """One (Service, port) as HAProxy will serve it."""

    name: str
    namespace: str
    service: str
    port: int
    port_name: str
    mode: str  # "http" or "tcp"
    servers: Tuple[Server, ...]
    hosts: Tuple[str, ...] = ()
    path_prefix: Optional[str] = None
    ssl: bool = False
    sticky: bool = False
    algorithm: str = "roundrobin"
    check_interval_ms: int = 2000
    check_path: Optional[str] = None
    listen_port: Optional[int] = None  # tcp mode: the load balancer's own port
    check_port: Optional[int] = None  # health checks go to this port instead of the server's
    not_ready: int = field(default=0, compare=False)  # endpoints not ready (never served): for reports

    @property
    def frontend(self) -> str:
        return "tcp" if self.mode == "tcp" else ("https" if self.ssl else "http")


@dataclass(frozen=True)
class Topology:
    backends: Tuple[Backend, ...]
    problems: Tuple[Problem, ...] = field(default=(), compare=False)

    def on(self, frontend: str) -> Tuple[Backend, ...]:
        return tuple(b for b in self.backends if b.frontend == frontend)

    @property
    def server_count(self) -> int:
        return sum(len(b.servers) for b in self.backends)


@dataclass(frozen=True)
class Route:
    """A backend before conflicts are settled: what one Service port asks for."""

    backend: Backend
    created: str


class Reporter:
    """Collects Problems for one Service, so call sites stay one line."""

    def __init__(self, ns: str, name: str, problems: List[Problem]) -> None:
        self.ns, self.name, self.problems = ns, name, problems

    def __call__(self, annotation: str, reason: str, level: str = "warning", *, code: str,
                 value: str = "") -> None:
        self.problems.append(Problem(self.ns, self.name, annotation, reason, level, code, value))
