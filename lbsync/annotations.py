"""Parsing and validating `serviceloadbalancer/` annotations: untrusted text in, safe values out.

Service annotations are written by cluster users, and what passes here is written into
haproxy.cfg. So every value is matched against a strict whitelist grammar; anything
else raises `Invalid` with a reason, and the caller leaves that annotation (or the
Service) out. Pure: no I/O, no logging, no HAProxy or Jinja knowledge.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

PREFIX = "serviceloadbalancer/"
ALGORITHMS = ("roundrobin", "leastconn", "first", "source", "random")
BACKEND_MODES = ("pod", "nodeport")
MAX_VALUE = 1024  # no legitimate annotation value of ours is longer

# Per-Service keys, and the ones that may also be given per port as "<key>.<port>".
SERVICE_KEYS = ("lb.enabled", "lb.ignore", "lb.host", "lb.sslTerm", "lb.cookie-sticky-session",
                "lb.algorithm", "lb.path-prefix", "lb.check-interval", "lb.check-path", "lb.tcp", "lb.backend-mode")
PORT_KEYS = ("lb.host", "lb.sslTerm", "lb.path-prefix", "lb.check-path")

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*$")
_PATH = re.compile(r"^(?:/[A-Za-z0-9._~-]+)+$")
_CHECK_PATH = re.compile(r"^/[A-Za-z0-9._~/%?=&+-]*$")
_DURATION = re.compile(r"^(\d{1,7})(ms|s|m)$")
_DNS_LABEL = re.compile(rf"^{_LABEL}$")
PORT_NAME = re.compile(rf"^{_LABEL}$")  # Service port names are DNS labels


class Invalid(ValueError):
    """An annotation value failed validation.

    `why` never contains the value, so it may be shown to anyone (a Kubernetes Event);
    `shown` is the value, quoted and cut short, for lbsync's own log; str() is both.
    """

    def __init__(self, why: str, value: object = None) -> None:
        self.why = why
        self.shown = show(value) if value is not None else ""
        super().__init__(f"{self.shown} {why}" if self.shown else why)


@dataclass(frozen=True)
class TcpExpose:
    """`lb.tcp` entry: service port reference exposed as plain TCP on `listen_port`."""

    port_ref: str
    listen_port: Optional[int]  # None: same number as the Service port


def _check_text(value: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be a string, not {type(value).__name__}", value)
    if len(value) > MAX_VALUE:
        raise Invalid(f"too long ({len(value)} characters, at most {MAX_VALUE})", value)
    value = value.strip()  # YAML block scalars add a trailing newline: harmless once trimmed
    if not value.isascii() or any(not ch.isprintable() for ch in value):
        raise Invalid("contains control or non-ASCII characters", value)
    return value


def boolean(value: str) -> bool:
    text = _check_text(value).lower()
    if text in ("true", "false"):
        return text == "true"
    raise Invalid('is not "true" or "false"', value)


def hosts(value: str) -> Tuple[str, ...]:
    """Comma-separated host names, lower-cased; RFC 1123, optional leading '*.' wildcard."""
    out: List[str] = []
    for raw in _check_text(value).split(","):
        host = raw.strip().lower().rstrip(".")
        if not host:
            continue
        if len(host) > 253 or not _HOST.match(host):
            raise Invalid("is not a valid host name (RFC 1123, optional leading *.)", raw.strip())
        if host not in out:
            out.append(host)
    if not out:
        raise Invalid("no host name given")
    return tuple(out)


def path_prefix(value: str) -> Optional[str]:
    """'/api/v1' -> '/api/v1'; 'none' or '' disables the prefix (returns None)."""
    text = _check_text(value)
    if text.lower() in ("", "none", "false"):
        return None
    text = text.rstrip("/") if text != "/" else text
    if len(text) > 200 or not _PATH.match(text) or any(set(seg) == {"."} for seg in text.split("/")):
        raise Invalid("is not a path prefix like /name (letters, digits, . _ ~ - and /; "
                      "no . or .. segments)", value)
    return text


def check_path(value: str) -> str:
    text = _check_text(value)
    if len(text) > 200 or not _CHECK_PATH.match(text):
        raise Invalid("is not an absolute URL path (e.g. /health)", value)
    return text


def algorithm(value: str) -> str:
    text = _check_text(value).lower()
    if text not in ALGORITHMS:
        raise Invalid(f"is not one of {', '.join(ALGORITHMS)}", value)
    return text


def backend_mode(value: str) -> str:
    text = _check_text(value).lower()
    if text not in BACKEND_MODES:
        raise Invalid(f"is not one of {', '.join(BACKEND_MODES)}", value)
    return text


def duration_ms(value: str, *, low: int = 100, high: int = 3600_000) -> int:
    """'5s' -> 5000. A unit is required: HAProxy reads 'inter 5' as 5 milliseconds."""
    text = _check_text(value)
    m = _DURATION.match(text)
    if not m:
        raise Invalid("is not a duration with a unit (e.g. 500ms, 5s, 1m)", value)
    ms = int(m.group(1)) * {"ms": 1, "s": 1000, "m": 60000}[m.group(2)]
    if not low <= ms <= high:
        raise Invalid(f"is outside {low}ms..{high // 60000}m", value)
    return ms


def tcp_ports(value: str) -> Tuple[TcpExpose, ...]:
    """'7611,7711' or 'thrift:17611' -> service port refs with optional listen ports."""
    out = []
    for raw in _check_text(value).split(","):
        item = raw.strip()
        if not item:
            continue
        ref, _, listen = item.partition(":")
        port_ref(ref)
        out.append(TcpExpose(ref, port_number(listen) if listen else None))
    if not out:
        raise Invalid("no port given")
    return tuple(out)


def port_ref(value: str) -> str:
    """A Service port given by number or by name."""
    if value.isdigit():
        port_number(value)
    elif not PORT_NAME.match(value):
        raise Invalid("is not a port number or port name", value)
    return value


def port_number(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise Invalid("is not a port number (1-65535)", value)
    return int(value)


def dns_label(value: object) -> bool:
    return isinstance(value, str) and bool(_DNS_LABEL.match(value))


def split(annotations: Mapping[str, object]) -> Tuple[Dict[str, str], Dict[str, Dict[str, str]], List[str]]:
    """Sort our annotations into (per-Service, {port_ref: per-port}, unknown keys)."""
    service: Dict[str, str] = {}
    per_port: Dict[str, Dict[str, str]] = {}
    unknown: List[str] = []
    for key, value in annotations.items():
        if not isinstance(key, str) or not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX):]
        if name in SERVICE_KEYS:
            service[name] = value  # type: ignore[assignment]
            continue
        base = next((k for k in PORT_KEYS if name.startswith(k + ".")), None)
        if base is None:
            unknown.append(key)
            continue
        per_port.setdefault(name[len(base) + 1:], {})[base] = value  # type: ignore[assignment]
    return service, per_port, unknown


def show(value: object) -> str:
    """A value quoted for a log line, cut short: never echo 100 kB of hostile text."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"
