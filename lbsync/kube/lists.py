"""Reading one List from the API server: every page, restarted on 410, item by item.

Exists so ApiSource deals in Snapshots, not pages. The first page may come from the API
server's watch cache (`resourceVersion=0`); continued pages belong to its snapshot; an
expired continue token (410 Gone) restarts the list, at most MAX_LIST_RESTARTS times. With
a `pieces.Reader` a page is cut into items, which the reader holds (lbsync.kube.pieces);
without one (a watch's relist, Nodes) it is decoded whole.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from lbsync.exceptions import ApiGone
from lbsync.kube import errors, pieces
from lbsync.kube.transport import Transport
from lbsync.logs import get as get_logger

log = get_logger("lbsync.kube")

MAX_LIST_RESTARTS = 2  # after a 410 Gone on a continue token
Resource = Tuple[str, str, str, str]  # path prefix, plural, kind, apiVersion


class Lists:
    """Reads Lists through one transport."""

    def __init__(self, transport: Transport, page_size: int) -> None:
        self._transport = transport
        self.page_size = page_size

    def read(self, resource: Resource, namespace: Optional[str], selector: str,
              unused: Tuple[str, ...] = errors.UNUSED_KEYS,
              reader: Optional[pieces.Reader] = None) -> Tuple[List[Dict[str, Any]], str]:
        """One list (in `namespace`, or cluster-wide), every page: its items (none with a
        `reader`: it holds them) and its token ("resourceVersion/signature")."""
        where = path(resource, namespace)
        for attempt in range(MAX_LIST_RESTARTS + 1):
            try:
                items, rv = self._pages(where, selector, unused, reader, resource)
                break
            except ApiGone:
                if attempt == MAX_LIST_RESTARTS:
                    raise
                log.info("api.list_restarted", path=where, reason="continue token expired (410 Gone)")
        return typed(items, resource), rv

    def _page(self, path: str, params: Dict[str, str], unused: Tuple[str, ...],
              reader: pieces.Reader, resource: Resource) -> Dict[str, Any]:
        """One page read item by item: the List without its items, which the reader holds."""
        cut, signature, resp = self._transport.get_cut(path, params)
        head = reader.page(cut, typed_decoder(unused, resource))
        if head is None:  # another layout: decoded whole
            text = cut.body().decode("utf-8", "replace")
            head = errors.parse_list(text, resp, self._transport.display_url(path), unused)
            reader.whole(head.pop("items", None) or [])
        return dict(head, signature=signature)

    def _pages(self, path: str, selector: str, unused: Tuple[str, ...], reader: Optional[pieces.Reader],
               resource: Resource) -> Tuple[List[Dict[str, Any]], str]:
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
        if reader is not None:
            reader.begin(unused)
        while True:
            if reader is None:
                doc = self._transport.get_list(path, params, unused=unused)
            else:
                doc = self._page(path, params, unused, reader, resource)
            page_meta = doc.get("metadata") or {}
            if "continue" not in params:  # continued pages belong to the first page's snapshot
                rv = str(page_meta.get("resourceVersion") or "")
                # the list's token: its resourceVersion, and its items' signature, which stays
                # the same while only the cluster's global revision moves (lbsync.kube.signature)
                rv = "%s/%s" % (rv, doc.get("signature") or "") if rv else ""
            items.extend(doc.get("items") or [])
            token = page_meta.get("continue")
            if not token:
                return items, rv
            params = dict(base, **{"continue": str(token)})  # no resourceVersion with continue


def path(resource: Resource, namespace: Optional[str]) -> str:
    prefix, plural = resource[0], resource[1]
    return "%s/namespaces/%s/%s" % (prefix, namespace, plural) if namespace else "%s/%s" % (prefix, plural)


def typed(items: List[Dict[str, Any]], resource: Resource) -> List[Dict[str, Any]]:
    """List items carry no type; kubectl dumps do: keep both sources alike."""
    for item in items:
        item.setdefault("kind", resource[2])
        item.setdefault("apiVersion", resource[3])
    return items


def typed_decoder(unused: Tuple[str, ...], resource: Resource) -> Callable[[str], Any]:
    """errors.items_decoder for `resource`'s items, typed as they are decoded (once: a stand-in
    keeps its object's type, so nothing types a poll's items again)."""
    decode = errors.items_decoder(unused)

    def typed_decode(text: str) -> Any:
        objs = decode(text)
        if isinstance(objs, list):  # else the reader refuses it
            typed([o for o in objs if o.__class__ is dict], resource)
        return objs
    return typed_decode
