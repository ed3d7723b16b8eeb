"""Writing Kubernetes Events: the HTTP side of telling a Service's owner what lbsync did.

Exists so the reporter (lbsync.events) deals in `Note`s, not in API shapes. Writes
`events.k8s.io/v1` Events, or core `v1` Events on a server that does not serve that group
(found once, from the group's discovery document: a 404 means not served); creates them
with POST and moves a series along with a strategic-merge PATCH, as client-go's recorders
do. Failures are the usual ApiErrors (403 ApiForbidden, 404 ApiNotFound, 409 status 409).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, Optional

from lbsync.exceptions import ApiNotFound
from lbsync.kube.credentials import Credentials
from lbsync.kube.transport import Transport

CONTROLLER = "lbsync"
EVENTS_V1 = "events.k8s.io/v1"
CORE_V1 = "v1"
PATCH_TYPE = "application/strategic-merge-patch+json"


@dataclass(frozen=True)
class Note:
    """One Event as lbsync means it, whichever API it goes to. Times are epoch seconds."""

    namespace: str
    name: str  # the Event's own name
    service: str
    uid: str
    type: str  # Normal or Warning
    reason: str  # CamelCase
    action: str
    note: str
    first: float
    last: float = 0.0
    count: int = 1


class EventSink:
    """Creates and patches Events in the API server the credentials point at."""

    def __init__(self, credentials: Credentials, *, instance: str, timeout: float = 10.0) -> None:
        self.instance = instance[:128]  # the API's limit for reportingInstance
        self._transport = Transport(credentials, timeout=timeout)
        self.api: Optional[str] = None  # EVENTS_V1 or CORE_V1, once discovered

    def close(self) -> None:
        self._transport.close()

    def create(self, note: Note) -> None:
        api = self._discover()
        body = _events_v1(note, self.instance) if api == EVENTS_V1 else _core_v1(note, self.instance)
        self._transport.send("POST", _path(api, note.namespace), body, "application/json")

    def patch_series(self, note: Note) -> None:
        """Move an existing Event's series on to `note.count` / `note.last` (ApiNotFound: it is gone)."""
        api = self._discover()
        if api == EVENTS_V1:
            body: Dict[str, Any] = {"series": {"count": note.count, "lastObservedTime": _micro(note.last)}}
        else:
            body = {"count": note.count, "lastTimestamp": _seconds(note.last)}
        self._transport.send("PATCH", _path(api, note.namespace) + "/" + note.name, body, PATCH_TYPE)

    def _discover(self) -> str:
        if self.api is None:
            try:
                self._transport.get_list("/apis/" + EVENTS_V1, {})  # an APIResourceList: "items" absent
                self.api = EVENTS_V1
            except ApiNotFound:
                self.api = CORE_V1  # Kubernetes before 1.19 (or a server that turned the group off)
        return self.api


def _path(api: str, namespace: str) -> str:
    prefix = "/apis/" + EVENTS_V1 if api == EVENTS_V1 else "/api/v1"
    return "%s/namespaces/%s/events" % (prefix, namespace)


def _regarding(note: Note) -> Dict[str, str]:
    return {"kind": "Service", "apiVersion": "v1", "namespace": note.namespace, "name": note.service,
            "uid": note.uid}


def _events_v1(note: Note, instance: str) -> Dict[str, Any]:
    body: Dict[str, Any] = {
        "apiVersion": EVENTS_V1, "kind": "Event",
        "metadata": {"name": note.name, "namespace": note.namespace},
        "eventTime": _micro(note.first), "reportingController": CONTROLLER, "reportingInstance": instance,
        "action": note.action, "reason": note.reason, "regarding": _regarding(note), "note": note.note,
        "type": note.type}
    if note.count > 1:  # created late (rate limit, a lost Event): the series so far
        body["series"] = {"count": note.count, "lastObservedTime": _micro(note.last)}
    return body


def _core_v1(note: Note, instance: str) -> Dict[str, Any]:
    """The legacy shape (count and timestamps, as client-go's record package writes it),
    which every kubectl shows, plus the newer fields the core API also holds."""
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": note.name, "namespace": note.namespace},
            "involvedObject": _regarding(note), "reason": note.reason, "message": note.note,
            "source": {"component": CONTROLLER, "host": instance}, "type": note.type,
            "firstTimestamp": _seconds(note.first), "lastTimestamp": _seconds(note.last or note.first),
            "count": note.count, "action": note.action, "reportingComponent": CONTROLLER,
            "reportingInstance": instance}


def _micro(epoch: float) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
