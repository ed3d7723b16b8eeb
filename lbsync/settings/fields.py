"""The Settings dataclass: every setting lbsync has, declared once and documented where declared.

Each field carries its help text (unit, why the default) and its kind; the flags, the
`LBSYNC_*` environment names and the YAML keys are derived from these declarations
(lbsync.settings.loading), so they cannot drift apart. Checking values is
lbsync.settings.checks' job. Must not know about Kubernetes, templates or HAProxy processes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

from lbsync.settings.checks import validate

# Loopback, "this host", link-local (cloud metadata at 169.254.169.254) and multicast:
# a Pod is never there, so an endpoint there is a mistake or an attack on the LB host.
DEFAULT_DENY = ("127.0.0.0/8", "0.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4",
                "::1/128", "::/128", "fe80::/10", "ff00::/8")


def _opt(default: Any, help: str, *, flag: bool = True, kind: str = "") -> Any:
    return field(default=default, metadata={"help": help, "flag": flag, "kind": kind})


def _list_opt(default: Sequence[str], help: str) -> Any:
    return field(default=tuple(default), metadata={"help": help, "flag": True, "kind": "list"})


@dataclass(frozen=True)
class Settings:
    """All of lbsync's settings. YAML keys are these names; flags use dashes."""

    # --- where the cluster comes from
    source: Optional[str] = _opt(None, "Read Kubernetes objects from this YAML/JSON file or directory "
                                 "instead of the API (kubectl -o yaml/json output or manifests).")
    kubeconfig: Optional[str] = _opt(None, "kubeconfig file; default $KUBECONFIG, in-cluster, ~/.kube/config.")
    context: Optional[str] = _opt(None, "kubeconfig context to use; default its current-context.")
    namespaces: Tuple[str, ...] = _list_opt((), "Only these namespaces (repeatable / comma list); "
                                            "default all.")
    selector: str = _opt("", "Label selector for Services, e.g. 'tier=web,env!=dev'.")
    api_timeout: float = _opt(10.0, "Seconds to wait for one API request (connect and read).", kind="float")
    page_size: int = _opt(500, "Items per API list page (limit); keeps each answer small.", kind="int")
    api_compression: bool = _opt(True, "Accept answers gzipped (the API server gzips those over 128 KiB). "
                                 "false asks for them as they are: on a fast network a poll then costs a "
                                 "third of the CPU for 6.5x the bytes. A kubeconfig's "
                                 "disable-compression: true does the same.", kind="bool")
    watch: bool = _opt(False, "Watch the API (list once, then stream changes) instead of listing "
                       "everything every interval: changes reach HAProxy in milliseconds and an idle "
                       "cluster costs the API server almost nothing. See docs/watch.md.", kind="bool")
    resync: float = _opt(300.0, "With watch: seconds between full relists that repair anything a "
                         "watch missed (counted when they find a difference); 0 never relists "
                         "unless a watch breaks.", kind="float")
    watch_timeout: float = _opt(300.0, "With watch: shortest watch request in seconds; each asks "
                                "1x-2x this (randomised like client-go, so replicas do not reconnect "
                                "together). A stream silent for longer than its own is reopened.",
                                kind="float")
    # --- which Services are published
    publish: str = _opt("all", "'all': every Service not excluded; 'annotated': only Services "
                        "annotated serviceloadbalancer/lb.enabled: \"true\" (opt-in).")
    exclude_namespaces: Tuple[str, ...] = _list_opt(("kube-system",), "Namespaces never published.")
    exclude_services: Tuple[str, ...] = _list_opt(("default/kubernetes",), "namespace/name of Services never "
                                                  "published (the cluster's own API server by default).")
    deny_networks: Tuple[str, ...] = _list_opt(
        DEFAULT_DENY,
        "Endpoint addresses never served (CIDRs): loopback, link-local (cloud metadata), multicast. "
        "A Pod is never there; anyone who can write Endpoints could aim the LB at its own host. "
        "'none' allows all (tests with loopback backends).")
    # --- which servers: Pods, or nodes' nodePorts
    backend_mode: str = _opt("pod", "'pod': servers are the Pods' addresses (the LB reaches Pod IPs: in "
                             "the cluster, VPC-native or BGP-routed networks). 'nodeport': servers are "
                             "the nodes' nodePorts (a VM in front of an overlay cluster). Per Service: "
                             "annotation serviceloadbalancer/lb.backend-mode.")
    node_address_types: Tuple[str, ...] = _list_opt(
        ("InternalIP",), "nodeport mode: node address types to use, in order of preference "
        "(InternalIP, ExternalIP); a node with none of them is left out.")
    node_selector: str = _opt("", "nodeport mode: label selector restricting the nodes that are "
                              "servers, e.g. 'node-role.kubernetes.io/edge'. Default: every eligible node.")
    node_health_port: int = _opt(10256, "nodeport mode, externalTrafficPolicy Cluster: port of kube-proxy's "
                                 "/healthz on each node; it fails while the node is unhealthy or being "
                                 "deleted, so such a node leaves the pool by itself.", kind="int")
    # --- what is rendered
    haproxy_config: str = _opt("/etc/haproxy/haproxy.cfg", "The live HAProxy config file lbsync owns.")
    template: Optional[str] = _opt(None, "Jinja2 template to render instead of the bundled one.")
    errors_dir: Optional[str] = _opt(None, "Directory of <code>.http error pages instead of the bundled ones.")
    http_bind: str = _opt("*:80", "Address:port of the plain HTTP frontend.")
    https_bind: str = _opt("*:443", "Address:port of the HTTPS frontend (used when tls_cert is set).")
    stats_bind: str = _opt("127.0.0.1:1936", "Address:port of HAProxy's stats page; loopback by default "
                           "so it is not open to the world. Empty disables it.")
    haproxy_exporter: str = _opt("auto", "Serve HAProxy's own Prometheus exporter at /metrics on the stats "
                                 "frontend (stats_bind): 'true', 'false', or 'auto' (when `haproxy -vv` "
                                 "lists the prometheus-exporter service; off when it cannot be run).")
    tcp_bind_address: str = _opt("*", "Address the plain TCP frontends (lb.tcp) listen on.")
    tls_cert: Optional[str] = _opt(None, "PEM file (certificate + key) or directory of them for the "
                                   "HTTPS frontend; without it lb.sslTerm routes are left out.")
    check_interval: str = _opt("2s", "Default health-check interval (with a unit: 500ms, 2s, 1m). "
                               "2s finds a dead Pod in ~4 s without flooding Pods with checks.")
    path_prefixes: bool = _opt(True, "Give every HTTP route a /<service>-<port> path prefix.", kind="bool")
    https_redirect: bool = _opt(True, "Redirect plain-HTTP requests for lb.sslTerm hosts to https.",
                                kind="bool")
    hard_stop_after: str = _opt("15m", "How long an old HAProxy worker may finish long requests after "
                                "a reload before it is stopped.")
    haproxy_log: str = _opt("stdout", "Where HAProxy logs: 'stdout' (containers), '/dev/log' (VMs), "
                            "or host:port of a syslog server. Empty disables access logs.")
    maxconn: int = _opt(0, "HAProxy global maxconn; 0 lets HAProxy derive it from the file-descriptor "
                        "limit (a fixed value above what ulimit -n allows stops HAProxy from starting).",
                        kind="int")
    # --- HAProxy process
    haproxy_binary: str = _opt("haproxy", "haproxy binary used for `haproxy -c`.")
    haproxy_version: str = _opt("auto", "HAProxy version the config is written for ('2.4', '2.6', ...); "
                                "'auto' asks haproxy_binary (2.4 when it cannot be run). 2.6+ gets "
                                "`option idle-close-on-response`: keep-alive clients see no errors "
                                "during reloads.")
    master_socket: Optional[str] = _opt(None, "HAProxy master CLI socket (-S); reload through it.")
    pidfile: Optional[str] = _opt(None, "HAProxy master pid file; reload with SIGUSR2.")
    reload_cmd: Optional[str] = _opt(None, "Command that reloads HAProxy, e.g. 'systemctl reload haproxy'.")
    reload_timeout: float = _opt(30.0, "Seconds a reload may take before it counts as failed.", kind="float")
    runtime_socket: Optional[str] = _opt(None, "HAProxy admin stats socket; endpoint-only changes are "
                                         "applied through it without a reload. Only with it do backends get "
                                         "spare (disabled) server lines for Pods to come.")
    runtime_socket_group: Optional[str] = _opt(None, "Group given access to the admin socket (mode 660): "
                                               "lets an lbsync user talk to a root HAProxy. Default: "
                                               "owner only (mode 600).")
    haproxy_user: Optional[str] = _opt(None, "User HAProxy's workers drop to (global `user`), e.g. haproxy "
                                       "on a VM where the master runs as root.")
    haproxy_group: Optional[str] = _opt(None, "Group HAProxy's workers drop to (global `group`).")
    # --- the loop
    interval: float = _opt(10.0, "Seconds between polls of the API.", kind="float")
    batch_quiet: float = _opt(0.5, "Seconds of quiet before applying a burst of changes.", kind="float")
    batch_max_wait: float = _opt(5.0, "Longest a change waits for a burst to settle.", kind="float")
    min_reload_interval: float = _opt(5.0, "Minimum seconds between two full reloads.", kind="float")
    shrink_guard: float = _opt(0.5, "Refuse a poll that would drop more than this fraction of live "
                               "backends at once (a guard against a bad API answer); 1 disables it.",
                               kind="float")
    events: bool = _opt(True, "Write Kubernetes Events on the Services lbsync leaves out or cannot fully "
                        "serve (kubectl describe service shows them), rate-limited. Needs create/patch "
                        "on events; false writes none. Never for a source file or a dry run.", kind="bool")
    metrics_bind: Optional[str] = _opt(None, "Address:port for /metrics, /healthz and /readyz.")
    log_format: str = _opt("auto", "'json', 'console', or 'auto' (console on a terminal, else JSON).")
    log_level: str = _opt("info", "debug, info, warning or error.")

    def __post_init__(self) -> None:
        validate(self)


FIELDS: Dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Settings)}
