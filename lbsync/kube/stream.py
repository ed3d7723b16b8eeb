"""One watch request to the API server, read as a stream of complete events.

The API server answers `?watch=1` with newline-delimited JSON: ADDED / MODIFIED / DELETED
(the whole object), BOOKMARK (only a resourceVersion: "you are up to date to here"),
ERROR (a Status; 410 Gone means the asked resourceVersion is too old: list again). A
stream ends normally when its `timeoutSeconds` are up.

What this module guarantees its caller: only whole lines are decoded (a line cut by a
dropped connection is thrown away, never applied, and the stream reports the cut); a
stream that sends nothing for `read_timeout` seconds is reported silent. It knows nothing
of stores, relists or threads: `lbsync.kube.informer` does.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Iterator, Optional, Tuple

import requests

from lbsync.exceptions import ApiError, ApiGone, ApiMalformed
from lbsync.kube import errors
from lbsync.kube.transport import Transport

Event = Tuple[str, Dict[str, Any]]  # (type, object)
EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED", "BOOKMARK")


class StreamSilent(ApiError):
    """No event or bookmark for longer than the read timeout: the connection is presumed dead."""


class StreamCut(ApiError):
    """The connection ended in the middle of an event line (the half line was not applied)."""


def events(transport: Transport, path: str, params: Dict[str, str], *, read_timeout: float,
           unused: Tuple[str, ...] = errors.UNUSED_KEYS) -> Iterator[Event]:
    """Open one watch and yield its events until it ends normally. Raises ApiGone (410: list
    again), StreamSilent, StreamCut, or another ApiError; the response is always closed.
    `unused`: the keys dropped from every object while decoding, as for a list."""
    url = transport.display_url(path)
    resp = transport.open_stream(path, params, read_timeout=read_timeout)
    try:
        for line in _lines(resp, transport, url, read_timeout):
            yield _event(line, url, unused)
    finally:
        resp.close()


def _lines(resp: requests.Response, transport: Transport, url: str, read_timeout: float) -> Iterator[bytes]:
    """Whole lines only: bytes after the last newline wait for the rest of their line."""
    pending = b""
    try:
        for chunk in resp.iter_content(chunk_size=None):
            transport.bytes += len(chunk)
            pending += chunk
            if b"\n" not in chunk:
                continue
            *complete, pending = pending.split(b"\n")
            for line in complete:
                if line.strip():
                    yield line
    except requests.exceptions.ConnectionError as e:
        if _timed_out(e):
            raise StreamSilent("watch %s: nothing received for %gs (no event, no bookmark); reopening"
                               % (url, read_timeout), url=url) from e
        raise StreamCut("watch %s: connection lost%s" % (url, _partial(pending)), url=url) from e
    except requests.RequestException as e:  # ChunkedEncodingError: the body ended mid-chunk
        raise StreamCut("watch %s: stream broken%s" % (url, _partial(pending)), url=url) from e
    if pending.strip():
        raise StreamCut("watch %s: stream ended%s" % (url, _partial(pending)), url=url)


def _timed_out(e: Exception) -> bool:
    return isinstance(e, requests.exceptions.ReadTimeout) or "timed out" in str(e).lower()


def _partial(pending: bytes) -> str:
    return " in the middle of an event (%d bytes dropped, not applied)" % len(pending) if pending.strip() else ""


def _event(line: bytes, url: str, unused: Tuple[str, ...] = errors.UNUSED_KEYS) -> Event:
    hook = errors.slimmer(unused)
    try:
        doc = json.loads(line, object_hook=hook)
    except ValueError as e:
        raise ApiMalformed("watch %s: an event line is not JSON: %s" % (url, errors.snippet(line)), url=url) from e
    kind = doc.get("type") if isinstance(doc, dict) else None
    obj = doc.get("object") if isinstance(doc, dict) else None
    if not isinstance(obj, dict) or kind not in EVENT_TYPES + ("ERROR",):
        raise ApiMalformed("watch %s: not a watch event: %s" % (url, errors.snippet(line)), url=url)
    if kind == "ERROR":
        raise _status_error(obj, url)
    return kind, obj


def _status_error(status: Dict[str, Any], url: str) -> ApiError:
    """The ApiError an ERROR event stands for; 410 Gone (Expired) asks for a relist."""
    code: Optional[int] = status.get("code") if isinstance(status.get("code"), int) else None
    reason, message = str(status.get("reason") or ""), str(status.get("message") or "")
    text = "watch %s: ERROR event %s%s: %s" % (url, code or "", " " + reason if reason else "", message)
    cls = errors.BY_STATUS.get(code or 0) or ApiError
    if code == 410 or reason in ("Expired", "Gone"):
        cls, code = ApiGone, 410
    return cls(text, url=url, status=code, reason=reason)
