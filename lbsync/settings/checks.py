"""Checking setting values: one clear SettingsError naming the setting and what was wrong.

Pure: knows the field names of Settings, not how they were given (file, env or flag).
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any

from lbsync import labels
from lbsync.exceptions import SettingsError

_BIND = re.compile(r"^(\*|[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*::[0-9A-Fa-f:]*)?:\d{1,5}$")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")


def duration_ms(text: str, *, what: str) -> int:
    """'2s' -> 2000. A unit is required: HAProxy reads a bare number as milliseconds."""
    m = _DURATION.match(str(text).strip())
    if not m:
        raise SettingsError(f"{what}: {text!r} is not a duration with a unit (e.g. 500ms, 2s, 1m)")
    return int(m.group(1)) * {"ms": 1, "s": 1000, "m": 60000, "h": 3600000}[m.group(2)]


def validate(s: Any) -> None:
    """Raise SettingsError for the first bad value of a Settings object."""
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


def _validate_nodes(s: Any) -> None:
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
