"""Every setting lbsync has, declared once, and the one place they are merged.

Precedence, highest first: command-line flag > `LBSYNC_<NAME>` environment variable >
YAML settings file (`--config`) > the default declared here. Each field documents
itself (help text, unit, why the default); the CLI's flags, the env names and the
YAML keys are all derived from these declarations, so they cannot drift apart.
Must not know about Kubernetes, templates or HAProxy processes.
"""
from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from lbsync import labels
from lbsync.exceptions import SettingsError

ENV_PREFIX = "LBSYNC_"
_BIND = re.compile(r"^(\*|[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*::[0-9A-Fa-f:]*)?:\d{1,5}$")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
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
        _validate(self)


FIELDS: Dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Settings)}


def duration_ms(text: str, *, what: str) -> int:
    """'2s' -> 2000. A unit is required: HAProxy reads a bare number as milliseconds."""
    m = _DURATION.match(str(text).strip())
    if not m:
        raise SettingsError(f"{what}: {text!r} is not a duration with a unit (e.g. 500ms, 2s, 1m)")
    return int(m.group(1)) * {"ms": 1, "s": 1000, "m": 60000, "h": 3600000}[m.group(2)]


def _validate(s: Settings) -> None:
    if s.publish not in ("all", "annotated"):
        raise SettingsError(f"publish: {s.publish!r} must be 'all' or 'annotated'")
    for name in ("http_bind", "https_bind", "stats_bind", "metrics_bind"):
        value = getattr(s, name)
        if value and not _BIND.match(value):
            raise SettingsError(f"{name}: {value!r} is not ADDRESS:PORT (e.g. 127.0.0.1:8080, *:80)")
    if not re.match(r"^(\*|[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*::[0-9A-Fa-f:]*)$", s.tcp_bind_address):
        raise SettingsError(f"tcp_bind_address: {s.tcp_bind_address!r} is not an address (e.g. *, 0.0.0.0, "
                            "127.0.0.1, [::])")
    duration_ms(s.check_interval, what="check_interval")
    duration_ms(s.hard_stop_after, what="hard_stop_after")
    if s.log_format not in ("auto", "json", "console"):
        raise SettingsError(f"log_format: {s.log_format!r} must be auto, json or console")
    if s.log_level not in ("debug", "info", "warning", "error"):
        raise SettingsError(f"log_level: {s.log_level!r} must be debug, info, warning or error")
    for name in ("runtime_socket_group", "haproxy_user", "haproxy_group"):
        value = getattr(s, name)
        if value and not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", value):
            raise SettingsError(f"{name}: {value!r} is not a user or group name")
    for name in ("haproxy_config", "template", "errors_dir", "tls_cert", "runtime_socket", "haproxy_log"):
        value = getattr(s, name)
        if value and any(c.isspace() or c in "#'\"\\" for c in value):
            raise SettingsError(f"{name}: {value!r} must not contain spaces, quotes or '#'")
    if s.haproxy_exporter not in ("auto", "true", "false"):
        raise SettingsError(f"haproxy_exporter: {s.haproxy_exporter!r} must be auto, true or false")
    if s.haproxy_version != "auto" and not re.match(r"^\d+\.\d+$", s.haproxy_version):
        raise SettingsError(f"haproxy_version: {s.haproxy_version!r} must be 'auto' or MAJOR.MINOR (e.g. 2.6)")
    if s.interval <= 0:
        raise SettingsError(f"interval: {s.interval} must be a positive number of seconds")
    for cidr in s.deny_networks:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as e:
            raise SettingsError(f"deny_networks: {cidr!r} is not a CIDR network (e.g. 127.0.0.0/8)") from e
    _validate_nodes(s)
    if s.resync < 0:
        raise SettingsError(f"resync: {s.resync} must be 0 (never) or a positive number of seconds")
    if s.watch_timeout < 1:
        raise SettingsError(f"watch_timeout: {s.watch_timeout} must be at least 1 second")
    if not 0 < s.shrink_guard <= 1:
        raise SettingsError(f"shrink_guard: {s.shrink_guard} must be in (0, 1]")


NODE_ADDRESS_TYPES = ("InternalIP", "ExternalIP")


def _validate_nodes(s: Settings) -> None:
    if s.backend_mode not in ("pod", "nodeport"):
        raise SettingsError(f"backend_mode: {s.backend_mode!r} must be 'pod' or 'nodeport'")
    if not s.node_address_types:
        raise SettingsError("node_address_types: give at least one of " + ", ".join(NODE_ADDRESS_TYPES))
    for kind in s.node_address_types:
        if kind not in NODE_ADDRESS_TYPES:
            # Hostname/DNS types would need DNS at every reload and cannot go through the Runtime API
            raise SettingsError(f"node_address_types: {kind!r} is not one of {', '.join(NODE_ADDRESS_TYPES)}")
    try:
        labels.parse(s.node_selector)
    except ValueError as e:
        raise SettingsError(f"node_selector: {e}") from e
    if not 1 <= s.node_health_port <= 65535:
        raise SettingsError(f"node_health_port: {s.node_health_port} is not a port number (1-65535)")


def _coerce(name: str, value: Any, origin: str) -> Any:
    kind = FIELDS[name].metadata["kind"]
    try:
        if kind == "list":
            items = value.split(",") if isinstance(value, str) else list(value or ())
            items = [str(i).strip() for i in items if str(i).strip()]
            return () if items == ["none"] else tuple(items)
        if kind == "bool":
            return _to_bool(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        return None if value is None else str(value)
    except (TypeError, ValueError) as e:
        raise SettingsError(f"{origin}: {name} = {value!r} is not a valid {kind or 'string'}") from e


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ValueError(value)


def from_file(path: str) -> Dict[str, Any]:
    """Read a YAML settings file: a mapping of field names (dashes or underscores)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise SettingsError(f"settings file {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise SettingsError(f"settings file {path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {path}: must be a mapping of setting names to values")
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in FIELDS:
            raise SettingsError(f"settings file {path}: unknown setting {key!r}")
        out[name] = _coerce(name, value, f"settings file {path}")
    return out


def from_env(env: Mapping[str, str]) -> Dict[str, Any]:
    """LBSYNC_HTTP_BIND=... -> {'http_bind': ...}; unknown LBSYNC_ names are errors (typos)."""
    out = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key in ("LBSYNC_CONFIG",):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name not in FIELDS:
            raise SettingsError(f"environment: unknown setting {key}")
        out[name] = _coerce(name, value, f"environment {key}")
    return out


class _BoolFlag(argparse.Action):
    """`--events`, `--events false` (as the environment and YAML spell it) and `--no-events`."""

    def __init__(self, option_strings: List[str], dest: str, **kw: Any) -> None:
        negated = ["--no-" + o[2:] for o in option_strings]
        super().__init__(option_strings + negated, dest, nargs="?", metavar="true|false", **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any,
                 option_string: Optional[str] = None) -> None:
        if option_string and option_string.startswith("--no-"):
            if value is not None:
                parser.error(f"{option_string} takes no value")
            value = False
        setattr(namespace, self.dest, True if value is None else value)  # words checked by _coerce


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field; defaults are None so unset flags do not override env or file."""
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        kind = f.metadata["kind"]
        help_text = f"{f.metadata['help']} (default: {_show(f.default)})"
        if kind == "bool":
            parser.add_argument(flag, dest=f.name, default=None, action=_BoolFlag, help=help_text)
        elif kind == "list":
            parser.add_argument(flag, dest=f.name, default=None, action="append", help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=None, help=help_text)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    return "none" if value is None else str(value)


def from_args(ns: argparse.Namespace) -> Dict[str, Any]:
    out = {}
    for name in FIELDS:
        value = getattr(ns, name, None)
        if value is None:
            continue
        if FIELDS[name].metadata["kind"] == "list":
            value = [part for item in value for part in item.split(",")]
        out[name] = _coerce(name, value, "flag --" + name.replace("_", "-"))
    return out


def load(*, args: Optional[argparse.Namespace] = None, config_file: Optional[str] = None,
         env: Optional[Mapping[str, str]] = None) -> Settings:
    """Merge defaults < file < env < flags into one frozen Settings."""
    env = os.environ if env is None else env
    config_file = config_file or env.get("LBSYNC_CONFIG")
    merged: Dict[str, Any] = {}
    if config_file:
        merged.update(from_file(config_file))
    merged.update(from_env(env))
    if args is not None:
        merged.update(from_args(args))
    return Settings(**merged)


def reference() -> List[Tuple[str, str, str, str]]:
    """(flag, env var, default, help) for every setting: feeds docs/settings.md."""
    return [("--" + f.name.replace("_", "-"), ENV_PREFIX + f.name.upper(), _show(f.default),
             f.metadata["help"]) for f in dataclasses.fields(Settings)]
