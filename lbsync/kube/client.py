"""ApiSource: one consistent-enough read of Services and their endpoints from the API server.

Exists to keep a poll cheap and predictable: paged lists (`limit`/`continue`) served from the
apiserver's cache (`resourceVersion=0` on the first page), a fixed number of requests per
poll whatever the number of Services (given the page size), a restart when a continue token
expires (410), and a remembered fall back to v1 Endpoints on clusters that do not serve or
do not permit EndpointSlices. Nodes are listed only when some Service is served through
nodePorts (backend mode `nodeport`): one more list per poll, whatever the cluster's size.
With `stand_ins`, a list that changed is read item by item (lbsync.kube.pieces): only the
objects of Services with a changed item are decoded, the rest are handed on as stand-ins.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from lbsync import nodes
from lbsync.exceptions import ApiForbidden, ApiNotFound
from lbsync.kube import errors, lists, pieces
from lbsync.kube.lists import Resource, path as _path
from lbsync.kube.credentials import Credentials
from lbsync.kube.transport import Transport
from lbsync.logs import get as get_logger
from lbsync.snapshot import Snapshot

log = get_logger("lbsync.kube")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
FALLBACK_TTL = 600.0  # seconds to keep using v1 Endpoints before trying EndpointSlices again

# resource -> (path prefix, kind, apiVersion)
SERVICES = ("/api/v1", "services", "Service", "v1")
ENDPOINTS = ("/api/v1", "endpoints", "Endpoints", "v1")
SLICES = ("/apis/discovery.k8s.io/v1", "endpointslices", "EndpointSlice", "discovery.k8s.io/v1")
NODES = ("/api/v1", "nodes", "Node", "v1")  # cluster-scoped
NODES_TAG = ";nodes="  # in a Snapshot version: what the node pool was built from
NODE_UNUSED = errors.keeping(("status",))  # a Node keeps its addresses (nodes.py reads them)


class ApiSource:
    """Reads a Snapshot from the API server on each fetch()."""

    def __init__(self, credentials: Credentials, *, namespaces: Sequence[str] = (), selector: str = "",
                 timeout: float = 10.0, page_size: int = 500, fallback_ttl: float = FALLBACK_TTL,
                 clock: Callable[[], float] = time.monotonic, backend_mode: str = "pod",
                 stand_ins: bool = False) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.credentials = credentials
        self.namespaces = tuple(namespaces)
        self.selector = selector
        self.page_size = page_size
        self._transport = Transport(credentials, timeout=timeout)
        self._lists = lists.Lists(self._transport, page_size)
        self._fallback_ttl = fallback_ttl
        self._clock = clock
        self._fallback_until: Optional[float] = None
        self.backend_mode = backend_mode  # the setting; Services may override it by annotation
        self._nodes_listed: Optional[List[Dict[str, Any]]] = None  # by _unchanged, for _fetch
        self._readers: Dict[Tuple[str, Optional[str]], pieces.Reader] = {}  # by (resource, namespace)
        self._pool_digest: Optional[str] = None  # the node pool the readers' stand-ins were read with
        # hand on unchanged items as stand-ins (lbsync.snapshot.Unread), for a caller that keeps
        # the Parts it built from them (lbsync.incremental); else every fetch is decoded in full
        self.stand_ins = stand_ins

    def __repr__(self) -> str:
        return "ApiSource(%r, namespaces=%r, selector=%r)" % (self.credentials, self.namespaces, self.selector)

    def __enter__(self) -> "ApiSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    @property
    def transport(self) -> Transport:
        """The session this source talks through (a watch opens its streams on it too)."""
        return self._transport

    def list_objects(self, resource: Resource, namespace: Optional[str], selector: str = "",
                     unused: Tuple[str, ...] = errors.UNUSED_KEYS) -> Tuple[List[Dict[str, Any]], str]:
        """Every page of one list (in `namespace`, or cluster-wide), and its resourceVersion."""
        items, token = self._lists.read(resource, namespace, selector, unused)
        return items, token.split("/", 1)[0]  # the token is "resourceVersion/signature"

    @property
    def endpoints_mode(self) -> str:
        """"endpointslices", or "endpoints" while the fall back is remembered."""
        if self._fallback_until is not None and self._clock() < self._fallback_until:
            return "endpoints"
        return "endpointslices"

    def fetch(self, *, unchanged_since: str = "") -> Snapshot:
        """List Services, then their EndpointSlices (or v1 Endpoints); raises ApiError/CredentialsError.

        `unchanged_since`: the version of an earlier Snapshot. When every list still has the
        resourceVersion it had then, nothing is decoded and the Snapshot has no objects, only
        that version (an unchanged 5,000-Service cluster: no 20 MB of JSON to parse).
        """
        self._nodes_listed = None  # only ever reused within one poll
        self._transport.held.drop()  # so is a body the probe holds
        requests0, bytes0 = self._transport.requests, self._transport.bytes
        if unchanged_since:
            same = self._unchanged(unchanged_since)
            if same is not None:
                return same
        return self._fetch(requests0, bytes0)

    def forget(self) -> None:
        """Read every item in full at the next fetch (the kept Parts its stand-ins stood for are gone)."""
        for reader in self._readers.values():
            reader.forget()

    def list_nodes(self) -> Tuple[List[Dict[str, Any]], str]:
        """Every v1 Node (paged; cluster-scoped, so one list whatever `namespaces` says) and the
        list's resourceVersion. Raises the same ApiErrors as the other lists."""
        return self._lists.read(NODES, None, "", unused=NODE_UNUSED)

    def _unchanged(self, version: str) -> Optional[Snapshot]:
        version, tagged, node_digest = version.partition(NODES_TAG)
        mode, _, joined = version.partition(":")
        previous = joined.split(",")
        if mode != self.endpoints_mode or not all(previous):
            return None
        requests0, bytes0 = self._transport.requests, self._transport.bytes
        resources = [SERVICES] + [SLICES if mode == "endpointslices" else ENDPOINTS]
        lists = [(r, ns) for r in resources for ns in (self.namespaces or (None,))]
        if len(lists) != len(previous):
            return None
        # endpoints change far more often than Services: ask about them first, so that the
        # common change costs one extra download, not two
        for (resource, namespace), rv in sorted(zip(lists, previous), key=lambda x: x[0][0] is SERVICES):
            params = {"limit": str(self.page_size), "resourceVersion": "0"}
            if self.selector and resource is SERVICES:
                params["labelSelector"] = self.selector
            try:
                # a changed body is held: the fetch cuts it rather than download it again
                answer = self._transport.get_list(_path(resource, namespace), params, unless_version=rv,
                                                  hold=self.stand_ins)
            except (ApiNotFound, ApiForbidden):
                return None  # the full listing decides about falling back to v1 Endpoints
            if not answer.get("unchanged"):
                return None  # something moved: the caller lists everything again
        if tagged:
            # a Node list's resourceVersion moves with every status update: compare what the pool reads
            found, _ = self.list_nodes()
            if nodes.digest(found) != node_digest:
                self._nodes_listed = found  # the full fetch uses it: still one Node list this poll
                return None
            version += NODES_TAG + node_digest
        return Snapshot(version=version, requests=self._transport.requests - requests0,
                        bytes=self._transport.bytes - bytes0)

    def _fetch(self, requests0: int, bytes0: int) -> Snapshot:
        versions: List[str] = []
        readers = self._read_all(SERVICES, versions, self.selector, errors.SERVICE_UNUSED)
        services = [o for r in readers for o in r.current()]  # stand-ins where unchanged: enough here
        listed = len(versions)
        wanted = set().union(*(r.owners() for r in readers))  # (namespace, name) of each Service
        want_nodes = nodes.wants_nodes(services, self.backend_mode)
        # externalTrafficPolicy Local needs each endpoint's node
        unused = errors.keeping(("nodeName",)) if want_nodes else errors.UNUSED_KEYS
        slice_readers: List[pieces.Reader] = []
        endpoint_readers: List[pieces.Reader] = []
        if self.endpoints_mode == "endpointslices":
            try:
                slice_readers = self._read_all(SLICES, versions, "", unused)
            except (ApiNotFound, ApiForbidden) as e:
                self._fallback_until = self._clock() + self._fallback_ttl
                log.warning("api.endpointslices_unavailable", status=e.status, error=str(e),
                            action=f"using v1 Endpoints for {self._fallback_ttl:g}s")
        mode = self.endpoints_mode
        if mode == "endpoints":
            del versions[listed:]  # drop what a failed slice list (one namespace of several) added
            slice_readers, endpoint_readers = [], self._read_all(ENDPOINTS, versions, "", unused)
        # Each list's resourceVersion changes whenever any object of that list changes, so
        # equal tokens mean equal answers; a list without one makes the token unknown ('').
        version = "%s:%s" % (mode, ",".join(versions)) if all(versions) else ""
        listed, self._nodes_listed = self._nodes_listed, None
        node_list = (listed if listed is not None else self.list_nodes()[0]) if want_nodes else []
        pool = nodes.digest(node_list)
        if version and want_nodes:
            version += NODES_TAG + pool
        # a Service whose node pool changed is built again: its objects in full
        every = readers + slice_readers + endpoint_readers
        dirty = set().union(*(r.dirty() for r in every)) if self.stand_ins and pool == self._pool_digest else None
        services = _items(readers, dirty, lists.typed_decoder(errors.SERVICE_UNUSED, SERVICES))
        # endpoint objects of Services listed only
        slices = _items(slice_readers, dirty, lists.typed_decoder(unused, SLICES), wanted)
        endpoints = _items(endpoint_readers, dirty, lists.typed_decoder(unused, ENDPOINTS), wanted)
        for r in every:
            r.commit()
        self._pool_digest = pool
        return Snapshot(services=tuple(services), endpoint_slices=tuple(slices), endpoints=tuple(endpoints),
                        nodes=tuple(node_list),
                        requests=self._transport.requests - requests0, bytes=self._transport.bytes - bytes0,
                        version=version, held=dirty is not None)  # a read in full: all objects new

    def _read_all(self, resource: Resource, versions: List[str], selector: str,
                  unused: Tuple[str, ...]) -> List[pieces.Reader]:
        """The resource cluster-wide, or in each configured namespace, read item by item
        (lbsync.kube.pieces); appends each list's token. The readers hold the items, taken
        (`_items`) once every list of the poll is read."""
        out = []
        for namespace in self.namespaces or (None,):
            reader = self._readers.get((resource[1], namespace))
            if reader is None:
                reader = self._readers[(resource[1], namespace)] = _reader(resource, self.stand_ins)
            if self.stand_ins:
                versions.append(self._lists.read(resource, namespace, selector, unused, reader)[1])
            else:  # nothing is kept for a next fetch: decoded whole, the cheapest way once
                reader.begin(unused)
                items, token = self._lists.read(resource, namespace, selector, unused)
                reader.whole(items)
                versions.append(token)
            out.append(reader)
        return out


def _reader(resource: Resource, remember: bool) -> pieces.Reader:
    """What a pass reads of an object whose Service it does not build again: a Service's
    identity and backend mode, an endpoint object's identity and Service (`remember`: else
    nothing is kept from one fetch to the next)."""
    if resource is SERVICES:
        keep: Callable[[dict], Any] = lambda o: pieces.stand_in(o, annotation=nodes.MODE_ANNOTATION)  # noqa: E731
    elif resource is SLICES:
        keep = lambda o: pieces.stand_in(o, label=SERVICE_NAME_LABEL)  # noqa: E731
    else:
        keep = pieces.stand_in
    return pieces.Reader(_slice_owner if resource is SLICES else _service_owner, keep if remember else None)


def _items(readers: List[pieces.Reader], dirty: Optional[Set[pieces.Owner]], decode: Callable[[Any], Any],
           wanted: Optional[Set[pieces.Owner]] = None) -> List[Dict[str, Any]]:
    return [o for r in readers for o in r.items(dirty, decode, wanted)]


def _service_owner(obj: Dict[str, Any]) -> Tuple[str, str]:
    return _meta(obj, "namespace"), _meta(obj, "name")


def _meta(obj: Dict[str, Any], key: str) -> str:
    return str((obj.get("metadata") or {}).get(key) or "")


def _slice_owner(obj: Dict[str, Any]) -> Tuple[str, str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return _meta(obj, "namespace"), str(labels.get(SERVICE_NAME_LABEL, ""))

