"""Loopback HTTP backends that say who they are, and a client that bypasses proxies.

`Backend(name)` answers every GET/HEAD/POST with a JSON body naming itself and echoing
the request path (with query), Host and Cookie headers, so a test can tell which
server HAProxy picked and what it forwarded. HTTP/1.1 keep-alive; optional TLS.
"""
from __future__ import annotations

import http.client
import json
import random
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple, Union


_handed_out: set = set()
_pick = random.Random()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on every local address a moment ago, and is never one the
    kernel hands out as a connection's source port.

    Ports come from below the ephemeral range (net.ipv4.ip_local_port_range starts at
    32768): a port taken from that range (bind to port 0) can be claimed a moment later as
    the source port of some outgoing connection, e.g. an emulated node's forwarder, and a
    listener on that address then fails with EADDRINUSE. The check binds the wildcard address
    without SO_REUSEADDR, which fails when any socket on any address holds the port. A port is
    handed out once per test process.
    """
    family, wildcard = (socket.AF_INET6, "::") if ":" in host else (socket.AF_INET, "0.0.0.0")
    for _ in range(1000):
        port = _pick.randrange(15000, 32000)
        if port in _handed_out:
            continue
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((wildcard, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free TCP port below the ephemeral range")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def _answer(self) -> None:
        backend: "Backend" = self.server.backend  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(length) if length else b""
        record = {"backend": backend.name, "method": self.command, "path": self.path,
                  "host": self.headers.get("Host"), "cookie": self.headers.get("Cookie"),
                  "body": body_in.decode("utf-8", "replace"), "client": self.client_address[0]}
        backend.record(record)
        body = json.dumps(record).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", backend.name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Peers (HAProxy being killed, health checks) hang up all the time: stay quiet."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, ssl.SSLError)):
            super().handle_error(request, client_address)


class Backend:
    """A threaded HTTP(S) server on `host:port` (port 0 = pick one) answering with its name.

    `tls_cert` is a PEM file holding certificate and key, or a (cert, key) pair.
    Use as a context manager, or call start()/stop(). `requests` lists what it received.
    """

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0,
                 tls_cert: Union[None, str, Tuple[str, str]] = None) -> None:
        self.name, self.host, self._port, self.tls_cert = name, host, port, tls_cert
        self.requests: List[Dict[str, object]] = []
        self._lock = threading.Lock()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    def record(self, request: Dict[str, object]) -> None:
        with self._lock:
            self.requests.append(request)

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._port

    @property
    def address(self) -> str:
        """'host:port' as HAProxy's `server` line wants it ('[::1]:port' for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def start(self) -> "Backend":
        server_cls = type("_S", (_Server,), {"address_family": socket.AF_INET6}) \
            if ":" in self.host else _Server
        self._server = server_cls((self.host, self._port), _Handler)
        self._server.backend = self  # type: ignore[attr-defined]
        if self.tls_cert:
            cert, key = (self.tls_cert, None) if isinstance(self.tls_cert, str) else self.tls_cert
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"backend-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "Backend":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_get(port: int, path: str = "/", *, host: str = "127.0.0.1",
             headers: Optional[Dict[str, str]] = None, timeout: float = 3.0,
             tls: Optional[ssl.SSLContext] = None) -> Tuple[int, Dict[str, str], bytes]:
    """One GET on a fresh connection, no proxy env involved: (status, headers, body)."""
    conn_cls = http.client.HTTPSConnection if tls else http.client.HTTPConnection
    kwargs = {"context": tls} if tls else {}
    conn = conn_cls(host, port, timeout=timeout, **kwargs)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get_json(port: int, path: str = "/", **kwargs: object) -> Dict[str, object]:
    """GET through `port` and return the backend's JSON; AssertionError on a non-200."""
    status, _, body = http_get(port, path, **kwargs)  # type: ignore[arg-type]
    assert status == 200, f"HTTP {status}: {body[:200]!r}"
    return json.loads(body)


def hits(port: int, count: int, path: str = "/", **kwargs: object) -> Dict[str, int]:
    """Send `count` GETs; return {backend name: number of answers}."""
    seen: Dict[str, int] = {}
    for _ in range(count):
        name = str(get_json(port, path, **kwargs)["backend"])
        seen[name] = seen.get(name, 0) + 1
    return seen
