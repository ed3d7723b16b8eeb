"""ApiSource: one consistent-enough read of Services and their endpoints from the API server.

Exists to keep a poll cheap and predictable: paged lists (`limit`/`continue`) served from the
apiserver's cache (`resourceVersion=0` on the first page), a fixed number of requests per
poll whatever the number of Services (given the page size), a restart when a continue token
expires (410), and a remembered fall back to v1 Endpoints on clusters that do not serve or
do not permit EndpointSlices. Nodes are listed only when some Service is served through
nodePorts (backend mode `nodeport`): one more list per poll, whatever the cluster's size.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from lbsync import nodes
from lbsync.exceptions import ApiForbidden, ApiGone, ApiNotFound
from lbsync.kube import errors
from lbsync.kube.credentials import Credentials
from lbsync.kube.transport import Transport
from lbsync.logs import get as get_logger
from lbsync.snapshot import Snapshot

log = get_logger("lbsync.kube")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MAX_LIST_RESTARTS = 2  # after a 410 Gone on a continue token
FALLBACK_TTL = 600.0  # seconds to keep using v1 Endpoints before trying EndpointSlices again

# resource -> (path prefix, kind, apiVersion)
SERVICES = ("/api/v1", "services", "Service", "v1")
ENDPOINTS = ("/api/v1", "endpoints", "Endpoints", "v1")
SLICES = ("/apis/discovery.k8s.io/v1", "endpointslices", "EndpointSlice", "discovery.k8s.io/v1")
NODES = ("/api/v1", "nodes", "Node", "v1")  # cluster-scoped
NODES_TAG = ";nodes="  # in a Snapshot version: what the node pool was built from
Resource = Tuple[str, str, str, str]
NODE_UNUSED = errors.keeping(("status",))  # a Node keeps its addresses (nodes.py reads them)


class ApiSource:
    """Reads a Snapshot from the API server on each fetch()."""

    def __init__(self, credentials: Credentials, *, namespaces: Sequence[str] = (), selector: str = "",
                 timeout: float = 10.0, page_size: int = 500, fallback_ttl: float = FALLBACK_TTL,
                 clock: Callable[[], float] = time.monotonic, backend_mode: str = "pod") -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.credentials = credentials
        self.namespaces = tuple(namespaces)
        self.selector = selector
        self.page_size = page_size
        self._transport = Transport(credentials, timeout=timeout)
        self._fallback_ttl = fallback_ttl
        self._clock = clock
        self._fallback_until: Optional[float] = None
        self.backend_mode = backend_mode  # the setting; Services may override it by annotation
        self._nodes_listed: Optional[List[Dict[str, Any]]] = None  # by _unchanged, for _fetch

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
        items, token = self._list(resource, namespace, selector, unused)
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
        if unchanged_since:
            same = self._unchanged(unchanged_since)
            if same is not None:
                return same
        return self._fetch()

    def list_nodes(self) -> Tuple[List[Dict[str, Any]], str]:
        """Every v1 Node (paged; cluster-scoped, so one list whatever `namespaces` says) and the
        list's resourceVersion. Raises the same ApiErrors as the other lists."""
        return self._list(NODES, None, "", unused=NODE_UNUSED)

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
                answer = self._transport.get_list(_path(resource, namespace), params, unless_version=rv)
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

    def _fetch(self) -> Snapshot:
        requests0, bytes0 = self._transport.requests, self._transport.bytes
        versions: List[str] = []
        services = self._list_all(SERVICES, versions, self.selector, unused=errors.SERVICE_UNUSED)
        listed = len(versions)
        wanted = {(_meta(s, "namespace"), _meta(s, "name")) for s in services}
        want_nodes = nodes.wants_nodes(services, self.backend_mode)
        # externalTrafficPolicy Local needs each endpoint's node
        unused = errors.keeping(("nodeName",)) if want_nodes else errors.UNUSED_KEYS
        slices: List[Dict[str, Any]] = []
        endpoints: List[Dict[str, Any]] = []
        if self.endpoints_mode == "endpointslices":
            try:
                slices = [s for s in self._list_all(SLICES, versions, unused=unused) if _slice_owner(s) in wanted]
            except (ApiNotFound, ApiForbidden) as e:
                self._fallback_until = self._clock() + self._fallback_ttl
                log.warning("api.endpointslices_unavailable", status=e.status, error=str(e),
                            action=f"using v1 Endpoints for {self._fallback_ttl:g}s")
        mode = self.endpoints_mode
        if mode == "endpoints":
            del versions[listed:]  # drop what a failed slice list (one namespace of several) added
            endpoints = [e for e in self._list_all(ENDPOINTS, versions, unused=unused)
                         if (_meta(e, "namespace"), _meta(e, "name")) in wanted]
        # Each list's resourceVersion changes whenever any object of that list changes, so
        # equal tokens mean equal answers; a list without one makes the token unknown ('').
        version = "%s:%s" % (mode, ",".join(versions)) if all(versions) else ""
        listed, self._nodes_listed = self._nodes_listed, None
        node_list = (listed if listed is not None else self.list_nodes()[0]) if want_nodes else []
        if version and want_nodes:
            version += NODES_TAG + nodes.digest(node_list)
        return Snapshot(services=tuple(services), endpoint_slices=tuple(slices), endpoints=tuple(endpoints),
                        nodes=tuple(node_list),
                        requests=self._transport.requests - requests0, bytes=self._transport.bytes - bytes0,
                        version=version)

    def _list_all(self, resource: Resource, versions: List[str], selector: str = "",
                  unused: Tuple[str, ...] = errors.UNUSED_KEYS) -> List[Dict[str, Any]]:
        """The resource cluster-wide, or in each configured namespace; appends each list's RV."""
        items: List[Dict[str, Any]] = []
        for namespace in self.namespaces or (None,):
            found, rv = self._list(resource, namespace, selector, unused)
            items.extend(found)
            versions.append(rv)
        return items

    def _list(self, resource: Resource, namespace: Optional[str], selector: str,
              unused: Tuple[str, ...] = errors.UNUSED_KEYS) -> Tuple[List[Dict[str, Any]], str]:
        path, kind, api_version = _path(resource, namespace), resource[2], resource[3]
        for attempt in range(MAX_LIST_RESTARTS + 1):
            try:
                items, rv = self._pages(path, selector, unused)
                break
            except ApiGone:
                if attempt == MAX_LIST_RESTARTS:
                    raise
                log.info("api.list_restarted", path=path, reason="continue token expired (410 Gone)")
        for item in items:  # list items carry no type; kubectl dumps do, keep both sources alike
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
        return items, rv

    def _pages(self, path: str, selector: str, unused: Tuple[str, ...]) -> Tuple[List[Dict[str, Any]], str]:
        """Every page of one list, and the list's token ("resourceVersion/signature"). The first page may come from
        the apiserver cache (RV=0), which older servers answer whole, ignoring limit: then there
        is no continue token. Nothing of an answer is kept after the poll: holding the decoded
        lists to skip decoding an unchanged one would keep tens of MB resident at 5,000 Services."""
        base = {"limit": str(self.page_size)}
        if selector:
            base["labelSelector"] = selector
        params = dict(base, resourceVersion="0")
        items: List[Dict[str, Any]] = []
        rv = ""
        while True:
            doc = self._transport.get_list(path, params, unused=unused)
            page_meta = doc.get("metadata") or {}
            if not items:  # continued pages belong to the first page's snapshot
                rv = str(page_meta.get("resourceVersion") or "")
                # the list's token: its resourceVersion, and its items' signature, which stays
                # the same while only the cluster's global revision moves (lbsync.kube.signature)
                rv = "%s/%s" % (rv, doc.get("signature") or "") if rv else ""
            items.extend(doc.get("items") or [])
            token = page_meta.get("continue")
            if not token:
                return items, rv
            params = dict(base, **{"continue": str(token)})  # no resourceVersion with continue


def _path(resource: Resource, namespace: Optional[str]) -> str:
    prefix, plural = resource[0], resource[1]
    return "%s/namespaces/%s/%s" % (prefix, namespace, plural) if namespace else "%s/%s" % (prefix, plural)


def _meta(obj: Dict[str, Any], key: str) -> str:
    return str((obj.get("metadata") or {}).get(key) or "")


def _slice_owner(obj: Dict[str, Any]) -> Tuple[str, str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return _meta(obj, "namespace"), str(labels.get(SERVICE_NAME_LABEL, ""))

