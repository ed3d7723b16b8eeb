"""Turn what the API server (or the network) did into one typed, actionable ApiError.

Exists so the one line the CLI prints says what failed (URL without query, HTTP status, the
Status body's own message) and what to do about it (check the token, grant a permission,
wait for an overloaded server, fix the CA).
"""
from __future__ import annotations

import functools
import json
import re
from typing import Any, Callable, Dict, Optional, Tuple, Type

import requests

from lbsync.exceptions import (ApiError, ApiForbidden, ApiGone, ApiMalformed, ApiNotFound,
                               ApiServerError, ApiTooManyRequests, ApiUnauthorized, ApiUnreachable)

BY_STATUS: Dict[int, Type[ApiError]] = {401: ApiUnauthorized, 403: ApiForbidden, 404: ApiNotFound,
                                        410: ApiGone, 429: ApiTooManyRequests}
_QUERY = re.compile(r"(/[^\s?]*)\?[^\s)'\"]*")
_FORBIDDEN = re.compile(r'cannot (\S+) resource "([^"]+)" in API group "([^"]*)"'
                        r'(?: in the namespace "([^"]+)"| at the cluster scope)?')


def snippet(body: bytes, limit: int = 120) -> str:
    """The first bytes of a body, printable and bounded."""
    text = body[:limit].decode("utf-8", "replace")
    return repr(text + ("..." if len(body) > limit else ""))


def status_body(resp: requests.Response) -> Optional[Dict[str, Any]]:
    """The metav1.Status object in an error answer, if there is one."""
    try:
        doc = json.loads(resp.content)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") == "Status" else None


def retry_after(resp: requests.Response) -> Optional[float]:
    try:
        return float(resp.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _forbidden_advice(message: str, details: Dict[str, Any]) -> str:
    m = _FORBIDDEN.search(message)
    if m:
        verb, resource, group, namespace = m.groups()
    else:
        verb, resource, group, namespace = "list", details.get("kind", "?"), details.get("group", ""), None
    scope = 'in namespace "%s" (Role or ClusterRole + RoleBinding)' % namespace if namespace else \
        "at the cluster scope (ClusterRole + ClusterRoleBinding)"
    return ('missing permission: %s %s (API group "%s") %s; add apiGroups ["%s"], resources ["%s"], '
            'verbs ["%s"] to the ClusterRole bound to lbsync' % (verb, resource, group, scope, group,
                                                                  resource, verb))


def _advice(status: int, body: Dict[str, Any], resp: requests.Response) -> str:
    if status == 401:
        return "check your credentials (token expired or revoked?)"
    if status == 403:
        return _forbidden_advice(str(body.get("message", "")), body.get("details") or {})
    if status == 404:
        return "the API server does not serve this resource"
    if status == 410:
        return "the list's continue token expired; restart the list"
    if status == 429 or status >= 500:
        after = retry_after(resp)
        return "API server overloaded or failing" + (" (Retry-After %gs)" % after if after is not None else "")
    return ""


def from_response(resp: requests.Response, url: str, method: str = "GET") -> ApiError:
    """The ApiError subclass for a non-2xx answer, carrying the Status message and advice."""
    status = resp.status_code
    body = status_body(resp) or {}
    reason = str(body.get("reason") or "")
    message = str(body.get("message") or "") or "%s, body %s" % (resp.reason or "no reason", snippet(resp.content))
    cls = BY_STATUS.get(status) or (ApiServerError if status >= 500 else ApiError)
    advice = _advice(status, body, resp)
    text = "%s %s: HTTP %d%s: %s%s" % (method, url, status, " " + reason if reason else "", message,
                                        "; " + advice if advice else "")
    err = cls(text, url=url, status=status, reason=reason)
    err.retry_after = retry_after(resp)  # type: ignore[attr-defined]
    return err


# Fields lbsync never reads that make up much of a list (a third of the objects of an
# EndpointSliceList): dropped while decoding, so they are never all in memory at once.
UNUSED_KEYS = ("managedFields", "ownerReferences", "targetRef", "nodeName", "hints", "zone",
               "deprecatedTopology", "status", "selector", "clusterIPs", "ipFamilies",
               "ipFamilyPolicy", "internalTrafficPolicy", "sessionAffinity", "finalizers")
UNUSED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"  # a copy of the object


# An endpoint's conditions, reduced to the one lbsync reads and shared by all endpoints:
# 50,000 dicts fewer in the EndpointSliceList of a 5,000-Service cluster. Never mutated.
_READY, _NOT_READY, _UNKNOWN = {"ready": True}, {"ready": False}, {}


@functools.lru_cache(maxsize=16)  # a few key sets, asked for by every list and watch event
def slimmer(unused: Tuple[str, ...] = UNUSED_KEYS) -> Callable[[Dict[str, Any]], Dict[str, Any]]:
    """The json object_hook that drops `unused` keys (and kubectl's last-applied copy) from
    every object, and hands one shared EndpointConditions per readiness.

    The hook sees every mapping, labels too. An EndpointSlice carries its Service's labels,
    so a mapping is taken for EndpointConditions only when its keys are conditions and its
    values are not strings. A Node's labels are read (--node-selector): for a key set that
    keeps `status` (Nodes, `keeping`), a mapping of strings only keeps all its keys but that copy."""
    drop = frozenset(unused + (UNUSED_ANNOTATION,))
    labels_read = "status" not in unused

    def slim(obj: Dict[str, Any]) -> Dict[str, Any]:
        if ("serving" in obj or "terminating" in obj or "ready" in obj) and obj.keys() <= _CONDITION_KEYS \
                and str not in map(type, obj.values()):
            ready = obj.get("ready")  # EndpointConditions
            return _READY if ready is True else _NOT_READY if ready is False else _UNKNOWN
        if not drop.isdisjoint(obj):  # one C loop over the object's few keys: most have none to drop
            if labels_read and set(map(type, obj.values())) == _STRINGS:  # labels or annotations
                obj.pop(UNUSED_ANNOTATION, None)
                return obj
            for key in drop.intersection(obj):
                del obj[key]
        return obj
    return slim


_CONDITION_KEYS = frozenset(("ready", "serving", "terminating"))
_STRINGS = {str}


def decoder(unused: Tuple[str, ...] = UNUSED_KEYS) -> Callable[[Any], Any]:
    """json.loads dropping `unused` keys (and kubectl's last-applied copy) from every object."""
    return functools.partial(json.loads, object_hook=slimmer(unused))


def items_decoder(unused: Tuple[str, ...] = UNUSED_KEYS) -> Callable[[str], Any]:
    """Like `decoder`, for a batch of list items as one JSON array (lbsync.kube.pieces): one
    decoder for every batch of a poll. ValueError if the text is not one JSON value, with
    nothing around it (the items have no whitespace)."""
    scan = json.JSONDecoder(object_hook=slimmer(unused)).scan_once

    def decode(text: str) -> Any:
        try:
            items, stop = scan(text, 0)
        except StopIteration as e:
            raise ValueError("not JSON at %d" % e.value) from None
        if stop != len(text):
            raise ValueError("not one JSON value: it ends at %d of %d" % (stop, len(text)))
        return items
    return decode


# A Node's big parts lbsync never reads (its image list alone can be tens of kB)
NODE_UNUSED_KEYS = ("images", "volumesInUse", "volumesAttached", "capacity", "allocatable", "nodeInfo")


def keeping(keep: Tuple[str, ...]) -> Tuple[str, ...]:
    """UNUSED_KEYS without `keep` (a Node list keeps `status`, a nodeport cluster's
    EndpointSlices keep `nodeName`)."""
    unused = tuple(k for k in UNUSED_KEYS if k not in keep)
    return unused + NODE_UNUSED_KEYS if "status" in keep else unused


_HEAD_RV = re.compile(rb'^\s*\{[^\[]*?"metadata"\s*:\s*\{([^{}]*)\}')
_RV = re.compile(rb'"resourceVersion"\s*:\s*"([^"]*)"')


def head_version(body: bytes) -> str:
    """The List's own resourceVersion read from the start of its body, without decoding the
    items: '' when it is not there (then the caller decodes). The API server writes a List's
    `metadata` before its `items` (Go encodes struct fields in order); a list with a
    `continue` token has more pages and gets no shortcut."""
    m = _HEAD_RV.match(body[:4096])
    if not m or b'"continue"' in m.group(1):
        return ""
    rv = _RV.search(m.group(1))
    return rv.group(1).decode("ascii", "replace") if rv else ""


# A Service's uid is kept: a Kubernetes Event about it names it (`kubectl describe` matches on it).
SERVICE_UNUSED = keeping(("uid",))



def parse_list(text: str, resp: requests.Response, url: str,
               unused: Tuple[str, ...] = UNUSED_KEYS) -> Dict[str, Any]:
    """The decoded List object (without `unused` keys) of a 200 answer's `text`, or ApiMalformed."""
    try:
        doc = decoder(unused)(text)
    except ValueError as e:
        raise ApiMalformed("GET %s: HTTP %d answer is not JSON (Content-Type %s): %s" % (
            url, resp.status_code, resp.headers.get("Content-Type", "none"), snippet(text[:200].encode())),
            url=url, status=resp.status_code) from e
    if not isinstance(doc, dict) or not isinstance(doc.get("items") or [], list):
        raise ApiMalformed("GET %s: answer is JSON but not a List object: %s" % (url, snippet(text[:200].encode())),
                           url=url, status=resp.status_code)
    return doc


def from_exception(exc: requests.RequestException, url: str, timeout: float, method: str = "GET") -> ApiError:
    """An ApiUnreachable (or ApiMalformed for a body cut short) for a failed exchange."""
    text = _QUERY.sub(r"\1", str(exc))  # continue tokens and selectors stay out of messages
    where = "%s %s" % (method, url)  # what the messages name: "GET https://..."
    if isinstance(exc, requests.exceptions.SSLError):
        if "hostname" in text and "match" in text:
            why = "TLS verification failed (server certificate does not match the host name; tls-server-name?)"
        elif "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            why = "TLS verification failed (wrong CA?)"
        else:
            why = "TLS handshake failed"
        return ApiUnreachable("%s: %s: %s" % (where, why, _short(text)), url=url)
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return ApiMalformed("%s: answer body truncated or corrupt: %s" % (where, _short(text)), url=url)
    if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
        return ApiUnreachable("%s: no answer within %gs (timeout)" % (where, timeout), url=url)
    return ApiUnreachable("%s: cannot connect: %s" % (where, _short(text)), url=url)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
