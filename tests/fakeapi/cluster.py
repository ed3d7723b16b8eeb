"""Test-facing mutation API of the fake API: create Services, set their endpoints, load files.

A mixin so server.py stays about serving. Writes go through the Store, which stamps uid,
resourceVersion and creationTimestamp and advances the global resourceVersion.
"""
from __future__ import annotations

import copy
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional

from tests.fakeapi import objects
from tests.fakeapi.kubeconfig import write_kubeconfig
from tests.fakeapi.store import Store
from tests.fakeapi.tls import TlsMaterial

DEFAULT_USER = "system:serviceaccount:lb:lbsync"
DEFAULT_TOKEN = "fake-token-0123456789abcdef"
RESOURCE_BY_KIND = {"Service": "services", "Endpoints": "endpoints", "EndpointSlice": "endpointslices",
                    "Node": "nodes"}


class ClusterMixin:
    """Mutations for FakeKubeApi (which provides store, tls, url and the token table)."""

    store: Store
    tls: Optional[TlsMaterial]
    url: str

    def _any_token(self) -> str:
        raise NotImplementedError

    # -- mutations --------------------------------------------------------------------------
    def churn(self, every: float) -> threading.Event:
        """Move the global revision on every `every` seconds, as a real cluster's node leases,
        Events and watch-cache progress notifications do, with no Service or endpoint
        changing. Set the returned Event to stop."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(every):
                self.store.advance_revision()
        threading.Thread(target=run, name="fake-kube-api-churn", daemon=True).start()
        return stop

    def put(self, obj: Dict[str, Any]) -> Dict[str, Any]:
        """Store any Service / Endpoints / EndpointSlice object (a copy); returns the stored one."""
        resource = RESOURCE_BY_KIND.get(obj.get("kind", ""))
        if resource is None:
            raise ValueError("the fake API does not store kind %r" % obj.get("kind"))
        obj = copy.deepcopy(obj)
        obj.setdefault("apiVersion", "discovery.k8s.io/v1" if resource == "endpointslices" else "v1")
        return self.store.put(resource, obj)

    def add_service(self, name: str, namespace: str = "default", ports: Iterable[Any] = (80,),
                    **kwargs: Any) -> Dict[str, Any]:
        """Create a Service (see objects.service for kwargs: labels, selector, type, ...)."""
        return self.store.put("services", objects.service(name, namespace, ports, **kwargs))

    def update_service(self, namespace: str, name: str, change: Callable[[Dict[str, Any]], None]
                       ) -> Dict[str, Any]:
        """Apply `change` to a copy of the Service and store it (resourceVersion advances)."""
        current = self.store.get("services", namespace, name)
        if current is None:
            raise KeyError("%s/%s" % (namespace, name))
        updated = copy.deepcopy(current)
        change(updated)
        return self.store.put("services", updated)

    def delete_service(self, namespace: str, name: str) -> None:
        """Delete a Service and, like the controllers, its Endpoints and EndpointSlices."""
        self.store.delete("services", namespace, name)
        self.store.delete("endpoints", namespace, name)
        for s in self._slices_of(namespace, name):
            self.store.delete("endpointslices", namespace, s["metadata"]["name"])

    def set_endpoints(self, namespace: str, service: str, ready: Iterable[Any] = (),
                      not_ready: Iterable[Any] = (), terminating: Iterable[Any] = ()) -> None:
        """Write the EndpointSlices and the v1 Endpoints the controllers would for these pods.

        Each endpoint is an IP string or a dict {ip, ready, serving, terminating, pod, node}.
        """
        svc = self.store.get("services", namespace, service)
        if svc is None:
            raise KeyError("service %s/%s does not exist" % (namespace, service))
        eps = objects.endpoint_list(namespace, service, ready, not_ready, terminating)
        when = objects.timestamp()
        slices = objects.endpoint_slices(svc, eps, when)
        keep = {s["metadata"]["name"] for s in slices}
        for old in self._slices_of(namespace, service):
            if old["metadata"]["name"] not in keep:
                self.store.delete("endpointslices", namespace, old["metadata"]["name"])
        for s in slices:
            self.store.put("endpointslices", s)
        self.store.put("endpoints", objects.endpoints_object(svc, eps, when))

    def _slices_of(self, namespace: str, service: str) -> List[Dict[str, Any]]:
        found = (self.store.get("endpointslices", namespace, n) for n in self.store.slice_names(namespace, service))
        return [s for s in found if s is not None]

    def add_node(self, name: str, address: str, **kwargs: Any) -> Dict[str, Any]:
        """Register a Node (see objects.node for kwargs: labels, taints, ready, external)."""
        return self.store.put("nodes", objects.node(name, address, **kwargs))

    def update_node(self, name: str, change: Callable[[Dict[str, Any]], None]) -> Dict[str, Any]:
        """Apply `change` to a copy of the Node and store it (resourceVersion advances)."""
        current = self.store.get("nodes", "", name)
        if current is None:
            raise KeyError("node %s" % name)
        updated = copy.deepcopy(current)
        change(updated)
        return self.store.put("nodes", updated)

    def delete_node(self, name: str) -> None:
        self.store.delete("nodes", "", name)

    def load_objects(self, docs: Iterable[Any]) -> int:
        """Store objects from YAML/JSON documents (single objects or `List`s); returns the count."""
        count = 0
        for doc in docs:
            if not doc:
                continue
            items = doc.get("items") if str(doc.get("kind", "")).endswith("List") else [doc]
            for item in items or []:
                if "kind" not in item and doc.get("kind", "").endswith("List"):
                    item = dict(item, kind=doc["kind"][:-4])
                self.put(item)
                count += 1
        return count

    def populate(self, services: int, endpoints_per_service: int = 10,
                 namespaces: Iterable[str] = ("default",)) -> None:
        """Scale helper: N Services (3 ports each) spread over namespaces, M ready endpoints each."""
        spaces = list(namespaces)
        for i in range(services):
            ns, name = spaces[i % len(spaces)], "svc-%05d" % i
            self.add_service(name, ns, [("http", 80, 8080), ("https", 443, 8443), ("metrics", 9100)],
                             labels={"app": name, "tier": "bench"})
            first = i * endpoints_per_service
            ips = ["10.%d.%d.%d" % (100 + n // 65536, n // 256 % 256, n % 256)
                   for n in range(first, first + endpoints_per_service)]
            self.set_endpoints(ns, name, ready=ips)

    # -- kubeconfig -------------------------------------------------------------------------
    def write_kubeconfig(self, path: str, *, auth: str = "token", token: Optional[str] = None,
                         inline: bool = False, **kwargs: Any) -> str:
        """A kubeconfig for this server. auth: "token", "cert", "both" or "none"."""
        if self.tls is not None:
            kwargs.setdefault("ca_file", self.tls.ca_cert)
        if auth in ("token", "both"):
            kwargs["token"] = token or self._any_token()
        if auth in ("cert", "both") and self.tls is not None:
            kwargs.update(client_cert=self.tls.client_cert, client_key=self.tls.client_key)
        return write_kubeconfig(path, self.url, inline=inline, **kwargs)
