"""The test suite's network rule, enforced: a live HAProxy has servers on loopback only.

Health checks are traffic. A config that a test or benchmark runs (not one only checked with
`haproxy -c`) may name servers on 127.0.0.0/8 or ::1 and nowhere else: `outside()` lists the
server addresses (and check addresses) of a config that break the rule. HAProxyProcess calls
it on the config it starts with and on the one it stops with (lbsync rewrites the file between).
"""
from __future__ import annotations

import ipaddress
import re
from typing import List

_SERVER = re.compile(r"^\s*server\s+\S+\s+(\S+)(.*)$", re.MULTILINE)
_CHECK_ADDR = re.compile(r"\saddr\s+(\S+)")


def _host(address: str) -> str:
    """The host of `ip:port`, `[v6]:port`, `ipv4@ip:port` or a bare address."""
    address = address.split("@", 1)[1] if "@" in address else address
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    if address.count(":") == 1:
        return address.rsplit(":", 1)[0]
    return address


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def outside(config_text: str) -> List[str]:
    """Server and check addresses of the config that are not loopback, sorted."""
    found = set()
    for m in _SERVER.finditer(config_text):
        if m.group(1).startswith(("unix@", "abns@", "/")):
            continue
        hosts = [_host(m.group(1))] + [_host(a) for a in _CHECK_ADDR.findall(m.group(2))]
        found.update(h for h in hosts if not _loopback(h))
    return sorted(found)
