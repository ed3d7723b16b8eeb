"""HTTP side of the fake API: authentication, faults, routing, list/get answers.

One handler instance per connection (HTTP/1.1 keep-alive). All state lives in the
FakeKubeApi (`self.server.fake`), which is thread-safe.
"""
from __future__ import annotations

import gzip
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from tests.fakeapi import events, responses, selectors
from tests.fakeapi.store import CLUSTER_SCOPED, LIST_KINDS, BadToken, ExpiredToken
from tests.fakeapi.watchserve import Streamer, WatchRequest

if TYPE_CHECKING:
    from tests.fakeapi.server import Fault, FakeKubeApi

Answer = Tuple[int, bytes, str, Dict[str, str]]  # status, body, content type, extra headers
GROUP_RESOURCES = {"": ("services", "endpoints", "nodes"), "discovery.k8s.io": ("endpointslices",)}
EXPIRED_MESSAGE = ("The provided continue parameter is too old to display a consistent list result. "
                   "You can start a new list without the continue parameter, or use the continue "
                   "token in this response to retrieve the remainder of the results. Continuing "
                   "with the provided token results in an inconsistent list - objects that were "
                   "created, modified, or deleted between the time the first chunk was returned "
                   "and now may show up in the list.")


def _json(code: int, doc: object, headers: Optional[Dict[str, str]] = None) -> Answer:
    return code, responses.encode(doc), "application/json", headers or {}


def _status(code: int, message: Optional[str] = None, **kw: object) -> Answer:
    return _json(code, responses.status(code, message, **kw))  # type: ignore[arg-type]


def _event_answer(code: int, doc: Dict[str, object]) -> Answer:
    """An object, or a Status for the error events.py describes."""
    if code < 300:
        return _json(code, doc)
    return _status(code, str(doc["message"]), reason=str(doc["reason"]))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver"
    sys_version = ""
    timeout = 30

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        fake: FakeKubeApi = self.server.fake  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        user, auth_ok = self._authenticate(fake)
        fake._record(self.command, url.path, query, dict(self.headers.items()), user)
        fault = fake._take_fault(url.path)
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            return
        delay = fake._delay_for(url.path)
        if delay:
            time.sleep(delay)
        if not auth_ok:
            answer = _status(401)
        elif fault is not None and fault.kind == "status":
            answer = fault.answer()
        else:
            answer = self._route(fake, url.path, query, user)
        if isinstance(answer, WatchRequest):
            Streamer(self, fake, answer).serve()
            return
        self._send(fake, answer, fault)

    def do_POST(self) -> None:  # noqa: N802 - Events are the one kind the fake lets clients write
        fake: FakeKubeApi = self.server.fake  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        user, auth_ok = self._authenticate(fake)
        fake._record(self.command, url.path, {}, dict(self.headers.items()), user)
        fault = fake._take_fault(url.path)
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            return
        if not auth_ok:
            answer = _status(401)
        elif fault is not None and fault.kind == "status":
            answer = fault.answer()
        else:
            answer = self._event_write(fake, [p for p in url.path.split("/") if p], body, user)
        self._send(fake, answer, fault)

    do_PATCH = do_POST

    def do_PUT(self) -> None:  # noqa: N802
        self._send(self.server.fake, _status(405, "the fake API is read-only"), None)  # type: ignore[attr-defined]

    do_DELETE = do_PUT

    # -- authentication ---------------------------------------------------------------------
    def _authenticate(self, fake: FakeKubeApi) -> Tuple[str, bool]:
        header = self.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            user = fake._user_for_token(token.strip()) if scheme.lower() == "bearer" else None
            return (user or ""), user is not None
        user = self._cert_user()
        if user:
            return user, True
        return "system:anonymous", bool(fake.anonymous)

    def _cert_user(self) -> Optional[str]:
        getpeercert = getattr(self.connection, "getpeercert", None)
        cert = getpeercert() if getpeercert else None
        for rdn in (cert or {}).get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return value
        return None

    # -- routing ----------------------------------------------------------------------------
    def _route(self, fake: FakeKubeApi, path: str, query: Dict[str, str], user: str) -> Answer:
        parts = [p for p in path.split("/") if p]
        if path == "/version":
            return _json(200, responses.version())
        if parts == ["api"]:
            return _json(200, responses.core_versions("%s:%d" % (fake.host, fake.port)))
        if parts == ["api", "v1"]:
            return _json(200, responses.core_v1())
        if parts == ["apis"]:
            return _json(200, responses.groups(fake.serve_endpointslices, fake.serve_events_v1))
        if events.route(parts) is not None and (parts[0] == "api" or fake.serve_events_v1):
            return self._event_read(fake, parts, query, user)
        if parts[:2] == ["apis", "events.k8s.io"] and fake.serve_events_v1 and len(parts) <= 3:
            return _json(200, responses.events_group() if len(parts) == 2 else responses.events_v1())
        if parts[:2] == ["api", "v1"]:
            return self._resource(fake, "", parts[2:], query, user)
        if parts[:2] == ["apis", "discovery.k8s.io"] and fake.serve_endpointslices:
            if len(parts) == 2:
                return _json(200, responses.discovery_group())
            if parts[2] == "v1" and len(parts) == 3:
                return _json(200, responses.discovery_v1())
            if parts[2] == "v1":
                return self._resource(fake, "discovery.k8s.io", parts[3:], query, user)
        return _status(404, details={})

    def _resource(self, fake: FakeKubeApi, group: str, rest: List[str], query: Dict[str, str],
                  user: str) -> Answer:
        namespace = None
        if group == "" and rest[:1] == ["namespaces"] and len(rest) <= 2:
            return self._namespaces(fake, rest[1:])
        if rest[:1] == ["namespaces"] and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 2 or rest[0] not in GROUP_RESOURCES[group]:
            return _status(404, details={})
        if rest[0] in CLUSTER_SCOPED and namespace is not None:  # /namespaces/x/nodes does not exist
            return _status(404, details={})
        resource, name = rest[0], (rest[1] if len(rest) == 2 else None)
        verb = "get" if name else ("watch" if query.get("watch") in ("1", "true") else "list")
        if fake._denied(user, resource):
            return _json(403, responses.forbidden(user, verb, resource, group, namespace))
        if verb == "watch":
            return self._watch(resource, namespace, query)
        if name:
            return self._get(fake, resource, namespace, name)
        return self._list(fake, resource, namespace, query)

    def _watch(self, resource: str, namespace: Optional[str], query: Dict[str, str]) -> "Answer | WatchRequest":
        try:
            match = selectors.parse(query.get("labelSelector"))
        except ValueError as e:
            return _status(400, "unable to parse requirement: %s" % e)
        return WatchRequest(resource, namespace, query, match)

    def _namespaces(self, fake: FakeKubeApi, rest: List[str]) -> Answer:
        names = fake.store.namespaces()
        if rest:
            if rest[0] not in names:
                return _status(404, 'namespaces "%s" not found' % rest[0],
                               details={"name": rest[0], "kind": "namespaces"})
            return _json(200, {"kind": "Namespace", "apiVersion": "v1", **responses.namespace(rest[0])})
        return _json(200, {"kind": "NamespaceList", "apiVersion": "v1",
                           "metadata": {"resourceVersion": str(fake.store.rv)},
                           "items": [responses.namespace(n) for n in names]})

    def _get(self, fake: FakeKubeApi, resource: str, namespace: Optional[str], name: str) -> Answer:
        obj = fake.store.get(resource, namespace or "", name) if namespace or resource in CLUSTER_SCOPED else None
        if obj is None:
            details = {"name": name, "kind": resource}
            if resource == "endpointslices":
                details["group"] = "discovery.k8s.io"
            return _status(404, '%s "%s" not found' % (resource, name), details=details)
        return _json(200, obj)

    def _list(self, fake: FakeKubeApi, resource: str, namespace: Optional[str], query: Dict[str, str]) -> Answer:
        token, rv = query.get("continue", ""), query.get("resourceVersion", "")
        if token and rv:
            return _status(400, "specifying resource version is not allowed when using continue")
        try:
            limit = int(query.get("limit") or 0)
            match = selectors.parse(query.get("labelSelector"))
        except ValueError as e:
            return _status(400, "unable to parse requirement: %s" % e)
        if token and fake._take_continue_expiry():
            return _status(410, EXPIRED_MESSAGE, reason="Expired")
        if rv == "0" and not fake.honor_limit_with_rv0:
            limit = 0  # served from the watch cache, which ignores limit on most servers
        try:
            page = fake.store.list(resource, namespace, match, limit, token)
        except ExpiredToken:
            return _status(410, EXPIRED_MESSAGE, reason="Expired")
        except BadToken as e:
            return _status(400, "continue key is not valid: %s" % e)
        meta: Dict[str, object] = {"resourceVersion": str(page.resource_version)}
        if page.continue_token:
            meta["continue"] = page.continue_token
            if page.remaining is not None and not query.get("labelSelector"):
                meta["remainingItemCount"] = page.remaining
        kind, api_version, _ = LIST_KINDS[resource]
        head = '{"kind":"%s","apiVersion":"%s","metadata":' % (kind, api_version)
        body = b"".join([head.encode(), responses.encode(meta), b',"items":[',
                         b",".join(page.blobs), b"]}"])
        return 200, body, "application/json", {}

    # -- events (tests/fakeapi/events.py) -----------------------------------------------------
    def _event_read(self, fake: FakeKubeApi, parts: List[str], query: Dict[str, str], user: str) -> Answer:
        version, namespace, name = events.route(parts)  # type: ignore[misc]
        group = "events.k8s.io" if version == events.EVENTS_V1 else ""
        if fake._denied(user, "events"):
            return _json(403, responses.forbidden(user, "get" if name else "list", "events", group, namespace))
        if name:
            return _event_answer(*fake.events.get(version, namespace or "", name))
        return _event_answer(*fake.events.list(version, namespace, query.get("fieldSelector", "")))

    def _event_write(self, fake: FakeKubeApi, parts: List[str], body: bytes, user: str) -> Answer:
        found = events.route(parts)
        if found is None:
            return _status(405, "the fake API is read-only (but for Events)")
        if found[0] == events.EVENTS_V1 and not fake.serve_events_v1:
            return _status(404, details={})
        version, namespace, name = found
        verb = "create" if self.command == "POST" else "patch"
        if namespace is None or (verb == "create") == (name is not None):
            return _status(405, "%s is not allowed on this path" % self.command)
        if fake._denied(user, "events"):
            group = "events.k8s.io" if version == events.EVENTS_V1 else ""
            return _json(403, responses.forbidden(user, verb, "events", group, namespace))
        doc = events.decode(body)
        if verb == "create":
            return _event_answer(*fake.events.create(version, namespace, doc))
        return _event_answer(*fake.events.patch(version, namespace, name or "", doc,
                                                self.headers.get("Content-Type", "")))

    # -- sending ----------------------------------------------------------------------------
    def _send(self, fake: FakeKubeApi, answer: Answer, fault: Optional[Fault]) -> None:
        code, body, content_type, headers = answer
        length = len(body)
        if fault is not None and fault.kind == "html":
            code, content_type = fault.status or 200, "text/html"
            body = b"<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
            length = len(body)
        elif fault is not None and fault.kind == "truncate":
            body = body[:max(1, len(body) // 2)]
            length = len(body) if fault.honest_length else length
        over = fake.compress_over
        if fault is None and over is not None and length > over and code == 200 and \
                "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, 1)
            length, headers = len(body), dict(headers, **{"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        fake._count_bytes(len(body))  # before the write: a client that has read it sees it counted
        self.wfile.write(body)
        if len(body) != length:
            self.close_connection = True
