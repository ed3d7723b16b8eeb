"""Emulated Kubernetes nodes on loopback, for nodeport-mode tests: what HAProxy sees of a node.

Each node is an address 127.x.y.z with
- a TCP forwarder on the Service's nodePort to the Pods, like kube-proxy: with the Cluster
  policy to any Pod of the Service, from the node's own address (kube-proxy SNATs, so a
  Pod sees which node the request came through); with the Local policy only to the node's
  own Pods, and a connection to a node without any is closed at once;
- kube-proxy's health server: GET /healthz answers 200, or 503 once `healthy` is False;
- the Service's healthCheckNodePort: 200 while the node has local Pods, else 503.
"""
from __future__ import annotations

import itertools
import socket
import threading
from http.server import BaseHTTPRequestHandler
from typing import Callable, List, Optional, Tuple

from tests.helpers.backends import _Server

Target = Tuple[str, int]


class _Forwarder:
    def __init__(self, address: str, port: int, targets: Callable[[], List[Target]]) -> None:
        self.address, self.targets = address, targets
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(256)
        self.connections = 0
        self._turn = itertools.count()
        threading.Thread(target=self._accept, daemon=True, name=f"fwd-{address}").start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        targets = self.targets()
        if not targets:
            conn.close()
            return
        try:
            upstream = socket.create_connection(targets[next(self._turn) % len(targets)], timeout=5,
                                                source_address=(self.address, 0))
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        threading.Thread(target=_pipe, args=(upstream, conn), daemon=True).start()
        _pipe(conn, upstream)

    def close(self) -> None:
        self.sock.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


class _HealthHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        ok = self.server.ok()  # type: ignore[attr-defined]
        self.server.checks += 1  # type: ignore[attr-defined]
        body = b'{"healthy": %s}' % (b"true" if ok else b"false")
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass


def _responder(address: str, port: int, ok: Callable[[], bool]) -> _Server:
    server = _Server((address, port), _HealthHandler)
    server.ok, server.checks = ok, 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


class EmulatedNode:
    """One node: forwarder on `node_port`, /healthz on `health_port`, `hcnp` responder if given."""

    def __init__(self, name: str, address: str, *, node_port: int, health_port: int,
                 cluster_pods: Callable[[], List[Target]], local: bool = False, hcnp: Optional[int] = None) -> None:
        self.name, self.address = name, address
        self.healthy = True
        self.local_pods: List[Target] = []
        self.forwarder = _Forwarder(address, node_port, lambda: self.local_pods if local else cluster_pods())
        self.servers = [_responder(address, health_port, lambda: self.healthy)]
        if hcnp:
            self.servers.append(_responder(address, hcnp, lambda: bool(self.local_pods)))

    @property
    def health_checks(self) -> int:
        return self.servers[0].checks  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.forwarder.close()
        for server in self.servers:
            server.shutdown()
            server.server_close()
