"""Endpoint changes applied to the running HAProxy over its Runtime API, without a reload.

Make before break: every new Pod is put into its (free) slot and made ready first;
only then are the Pods that went away drained and put into maintenance. A server that
only changed weight (a node with more or fewer local Pods) gets `set server ... weight`. Every answer
is checked by the Runtime API client; the first unexpected one raises RuntimeApiError
and the caller falls back to a reload, which converges on the file (already written).
"""
from __future__ import annotations

from typing import Sequence

from lbsync.haproxy.runtime import RuntimeApi
from lbsync.endpoints import Server
from lbsync.slots import PLACEHOLDER, Change


def apply(api: RuntimeApi, changes: Sequence[Change]) -> None:
    for c in changes:
        if c.new is not None:
            server = f"s{c.slot}"
            if c.old is not None and c.old.endpoint == c.new.endpoint:
                api.set_server_weight(c.backend, server, _weight(c.new))  # same server, new share
                continue
            api.set_server_addr(c.backend, server, c.new.address, c.new.port)
            if c.new.weight is not None or (c.old is not None and c.old.weight is not None):
                api.set_server_weight(c.backend, server, _weight(c.new))
            api.set_server_state(c.backend, server, "ready")
    for c in changes:
        if c.new is None and c.old is not None:
            server = f"s{c.slot}"
            api.set_server_state(c.backend, server, "drain")
            api.set_server_state(c.backend, server, "maint")
            # the file says the slot is the placeholder: make the running HAProxy say so too
            api.set_server_addr(c.backend, server, PLACEHOLDER.address, PLACEHOLDER.port)
            if c.old.weight is not None:
                api.set_server_weight(c.backend, server, _weight(PLACEHOLDER))


def _weight(server: Server) -> int:
    """The weight the config gives the server: its own, or HAProxy's default of 1."""
    return 1 if server.weight is None else server.weight
