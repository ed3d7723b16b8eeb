"""FakeKubeApi: a loopback Kubernetes API server for tests, benchmarks and kubectl.

Serves Services, Endpoints, EndpointSlices and Nodes (list with paging/selectors, get), Events
(create, patch, get, list; events.k8s.io/v1 and v1, see events.py) plus the discovery documents, over HTTP or TLS (bearer tokens, client certs, anonymous), with knobs
to inject faults (error statuses, slow answers, truncated or HTML bodies, dropped
connections, a server that is down) and a thread-safe mutation API.
"""
from __future__ import annotations

import itertools
import socket
import socketserver
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from tests.fakeapi import responses
from tests.fakeapi.cluster import DEFAULT_TOKEN, DEFAULT_USER, ClusterMixin
from tests.fakeapi.handler import Answer, Handler
from tests.fakeapi.events import EventStore
from tests.fakeapi.store import Store
from tests.fakeapi.tls import TlsMaterial
from tests.fakeapi.watchserve import WatchControlMixin, WatchRegistry



@dataclass
class Fault:
    """One injected misbehaviour, applied to the next `remaining` matching requests."""

    kind: str  # "status" | "html" | "truncate" | "drop"
    remaining: int
    path: Optional[str] = None  # only requests whose path starts with this
    status: int = 0
    body: str = "status"  # for kind "status": "status" | "empty" | "html" | "text"
    message: Optional[str] = None
    retry_after: Optional[int] = None
    honest_length: bool = False

    def answer(self) -> Answer:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        if self.body == "status":
            return self.status, responses.encode(responses.status(self.status, self.message)), \
                "application/json", headers
        if self.body == "html":
            return self.status, b"<html><body><h1>%d</h1></body></html>" % self.status, "text/html", headers
        text = (self.message or "").encode()
        return self.status, text, "text/plain; charset=utf-8", headers


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]
    user: str
    time: float = field(default_factory=time.monotonic)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: Tuple[str, int], fake: "FakeKubeApi",
                 ssl_context: Optional[ssl.SSLContext]) -> None:
        self.fake = fake
        self.ssl_context = ssl_context
        self.connections: Set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, Handler)

    def server_bind(self) -> None:  # skip HTTPServer's reverse DNS lookup
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request: Any, client_address: Any) -> None:
        sock = request
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body are 2 writes
        if self.ssl_context is not None:
            request.settimeout(10)
            sock = self.ssl_context.wrap_socket(request, server_side=True)  # handshake in this thread
        with self.conn_lock:
            self.connections.add(sock)
        try:
            self.RequestHandlerClass(sock, client_address, self)
        finally:
            with self.conn_lock:
                self.connections.discard(sock)
            if sock is not request:
                sock.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # handshake failures and client disconnects are expected in tests

    def drop_connections(self) -> None:
        with self.conn_lock:
            for sock in list(self.connections):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class FakeKubeApi(ClusterMixin, WatchControlMixin):
    """The fake API server. Start with `start()` (or as a context manager); `url` is its base."""

    def __init__(self, *, tls: Optional[TlsMaterial] = None, tokens: Any = (),
                 anonymous: bool = False, host: str = "127.0.0.1", port: int = 0,
                 compaction_window: Optional[int] = None, serve_endpointslices: bool = True,
                 honor_limit_with_rv0: bool = False, serve_events_v1: bool = True,
                 bookmark_interval: float = 60.0, history_window: int = 10000,
                 compress_over: Optional[int] = None) -> None:
        self.tls = tls
        # kube-apiserver (APIResponseCompression, on since 1.16) gzips a get or list answer of
        # more than 128 KiB, at level 1, for a client that accepts gzip. Off unless asked:
        # the benchmarks' figures are for the bytes themselves.
        self.compress_over = compress_over
        self.host = host
        self.port = port
        self.anonymous = anonymous
        self.serve_endpointslices = serve_endpointslices
        self.honor_limit_with_rv0 = honor_limit_with_rv0
        self.store = Store(compaction_window, history_window)
        self.bookmark_interval = bookmark_interval  # seconds between BOOKMARK events of a watch
        self._watches = WatchRegistry()
        self.serve_events_v1 = serve_events_v1  # False: only core v1 Events (Kubernetes before 1.19)
        # Events have their own resourceVersion counter: writing one must not move the Service
        # lists' versions (a watch cache per resource does not either)
        rvs = itertools.count(10_000_000)
        self.events = EventStore(lambda: next(rvs), self.store.namespaces)
        self._lock = threading.Lock()
        self._tokens: Dict[str, str] = {}
        self.set_tokens(tokens)
        self._denials: Dict[Optional[str], Set[str]] = {}
        self._faults: List[Fault] = []
        self._delay: Tuple[float, Optional[str]] = (0.0, None)
        self._requests: List[RequestRecord] = []
        self._expire_continues = 0
        self.on_request: Optional[Callable[[RequestRecord], None]] = None  # test hook, runs first
        self._bytes_sent = 0
        self._stream_bytes = 0  # of _bytes_sent: what watch streams sent
        self._server: Optional[_HttpServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "FakeKubeApi":
        """Listen (on the same port as before after a stop()) and serve in a daemon thread."""
        ctx = self.tls.server_context() if self.tls else None
        self._server = _HttpServer((self.host, self.port), self, ctx)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-kube-api:%d" % self.port, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and every open connection: clients get refused/reset."""
        server, self._server = self._server, None
        if server is None:
            return
        self._watches.mark(end=True)
        self.store.history.poke()
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> "FakeKubeApi":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return "%s://%s:%d" % ("https" if self.tls else "http", self.host, self.port)

    # -- authentication and authorization knobs ---------------------------------------------
    def set_tokens(self, tokens: Any) -> None:
        """Replace the accepted bearer tokens: an iterable (all DEFAULT_USER) or {token: user}."""
        mapping = dict(tokens) if isinstance(tokens, dict) else {t: DEFAULT_USER for t in tokens}
        with self._lock:
            self._tokens = mapping

    def add_token(self, token: str, user: str = DEFAULT_USER) -> None:
        with self._lock:
            self._tokens[token] = user

    def revoke_token(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def _any_token(self) -> str:
        with self._lock:
            return next(iter(self._tokens), DEFAULT_TOKEN)

    def _user_for_token(self, token: str) -> Optional[str]:
        with self._lock:
            return self._tokens.get(token)

    def deny(self, resource: str, user: Optional[str] = None, token: Optional[str] = None) -> None:
        """Answer 403 to `user` (or the token's user; everyone when both None) for `resource`."""
        if token is not None:
            user = self._user_for_token(token) or DEFAULT_USER
        with self._lock:
            self._denials.setdefault(user, set()).add(resource)

    def allow(self, resource: str, user: Optional[str] = None) -> None:
        with self._lock:
            self._denials.get(user, set()).discard(resource)

    def _denied(self, user: str, resource: str) -> bool:
        with self._lock:
            return resource in self._denials.get(None, ()) or resource in self._denials.get(user, ())

    # -- faults -----------------------------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 503, *, body: str = "status",
                  message: Optional[str] = None, retry_after: Optional[int] = None,
                  path: Optional[str] = None) -> None:
        """Answer the next n requests with `status` (body: Status JSON, "empty", "html", "text")."""
        self._add_fault(Fault("status", n, path, status, body, message, retry_after))

    def html_next(self, n: int = 1, status: int = 200, path: Optional[str] = None) -> None:
        """Answer with an HTML page (a proxy's error page) instead of JSON."""
        self._add_fault(Fault("html", n, path, status))

    def truncate_next(self, n: int = 1, *, honest_length: bool = False, path: Optional[str] = None) -> None:
        """Send half the body; cut the connection (or, honest_length, a short but complete reply)."""
        self._add_fault(Fault("truncate", n, path, honest_length=honest_length))

    def drop_next(self, n: int = 1, path: Optional[str] = None) -> None:
        """Close the connection without answering."""
        self._add_fault(Fault("drop", n, path))

    def set_delay(self, seconds: float, path: Optional[str] = None) -> None:
        """Sleep before answering every request (whose path starts with `path`)."""
        with self._lock:
            self._delay = (seconds, path)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delay = (0.0, None)

    def expire_continue_tokens(self) -> None:
        """Every continue token issued so far answers 410 Gone from now on."""
        self.store.expire_continue_tokens()

    def expire_next_continue(self, n: int = 1) -> None:
        """The next n list requests that carry a continue token answer 410 Gone (Expired)."""
        with self._lock:
            self._expire_continues += n

    def _take_continue_expiry(self) -> bool:
        with self._lock:
            if self._expire_continues <= 0:
                return False
            self._expire_continues -= 1
            return True

    def _add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, path: str) -> Optional[Fault]:
        with self._lock:
            for fault in self._faults:
                if fault.path is None or path.startswith(fault.path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _delay_for(self, path: str) -> float:
        with self._lock:
            seconds, prefix = self._delay
        return seconds if prefix is None or path.startswith(prefix) else 0.0

    # -- observation ------------------------------------------------------------------------
    def _record(self, method: str, path: str, query: Dict[str, str], headers: Dict[str, str],
                user: str) -> None:
        record = RequestRecord(method, path, query, headers, user)
        with self._lock:
            self._requests.append(record)
        if self.on_request is not None:
            self.on_request(record)

    def _count_bytes(self, n: int, *, stream: bool = False) -> None:
        with self._lock:
            self._bytes_sent += n
            self._stream_bytes += n if stream else 0

    @property
    def requests(self) -> List[RequestRecord]:
        with self._lock:
            return list(self._requests)

    @property
    def bytes_sent(self) -> int:
        with self._lock:
            return self._bytes_sent

    @property
    def stream_bytes_sent(self) -> int:
        """The part of bytes_sent that watch streams sent."""
        with self._lock:
            return self._stream_bytes

    def request_count(self, path: Optional[str] = None, prefix: Optional[str] = None) -> int:
        return sum(1 for r in self.requests
                   if (path is None or r.path == path) and (prefix is None or r.path.startswith(prefix)))

    def counts_by_path(self) -> Counter:
        return Counter(r.path for r in self.requests)

    def reset_counters(self) -> None:
        with self._lock:
            self._requests.clear()
            self._bytes_sent = self._stream_bytes = 0
