"""Events in the fake API: create (POST), patch (PATCH), get and list, as kube-apiserver does.

One stored form (the core v1 shape, as the apiserver's internal type) served through both
`events.k8s.io/v1` and core `v1` with the same field mapping as the real conversion
(regarding <-> involvedObject, note <-> message, reportingController <-> reportingComponent,
deprecated* <-> the legacy fields). Validation follows pkg/apis/core/validation/events.go:
the strict rules for events.k8s.io/v1, the legacy ones for v1; metadata.name (or
generateName) required, 409 for a taken name, 404 for a missing namespace or Event,
immutable fields on update. Merge and strategic-merge patches are accepted (on Events
they are the same: no list carries a patch strategy).
"""
from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

EVENTS_V1 = "events.k8s.io/v1"
PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")
# events.k8s.io/v1 name -> core v1 name, for the fields that differ
_RENAMED = {"regarding": "involvedObject", "note": "message", "reportingController": "reportingComponent",
            "deprecatedSource": "source", "deprecatedFirstTimestamp": "firstTimestamp",
            "deprecatedLastTimestamp": "lastTimestamp", "deprecatedCount": "count"}
_TO_V1 = {v: k for k, v in _RENAMED.items()}
_IMMUTABLE = ("involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count",
              "type", "eventTime", "action", "related", "reportingComponent", "reportingInstance")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
Result = Tuple[int, Dict[str, Any]]  # HTTP status, object or Status-like error {"message", "reason"}


class EventStore:
    """Thread-safe Events by (namespace, name); `next_rv` stamps resourceVersions."""

    def __init__(self, next_rv: Callable[[], int], namespaces: Callable[[], List[str]]) -> None:
        self._events: Dict[Tuple[str, str], Dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._next_rv, self._namespaces = next_rv, namespaces

    def create(self, version: str, namespace: str, body: Dict[str, Any]) -> Result:
        if not isinstance(body, dict) or body.get("kind") not in (None, "Event"):
            return _error(400, "the body is not an Event", "BadRequest")
        meta = dict(body.get("metadata") or {})
        if meta.get("namespace") not in (None, "", namespace):
            return _error(400, "the namespace of the provided object does not match the namespace sent on "
                          "the request", "BadRequest")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if not meta.get("name"):
            return _invalid(meta, "metadata.name: Required value: name or generateName is required")
        if namespace not in self._namespaces():
            return _error(404, 'namespaces "%s" not found' % namespace, "NotFound")
        event = to_core(version, dict(body, metadata=meta))
        event["metadata"]["namespace"] = namespace
        problems = validate(event, version)
        if problems:
            return _invalid(meta, "; ".join(problems))
        with self._lock:
            if (namespace, meta["name"]) in self._events:
                return _error(409, 'events "%s" already exists' % meta["name"], "AlreadyExists")
            event["metadata"].update(uid=str(uuid.uuid4()), resourceVersion=str(self._next_rv()),
                                     creationTimestamp=_now())
            self._events[(namespace, meta["name"])] = event
            return 201, view(version, event)

    def patch(self, version: str, namespace: str, name: str, patch: Any, content_type: str) -> Result:
        if content_type.split(";")[0].strip() not in PATCH_TYPES:
            return _error(415, "the body of the request was in an unknown format - accepted media types "
                          "include: " + ", ".join(PATCH_TYPES), "UnsupportedMediaType")
        if not isinstance(patch, dict):
            return _error(400, "the patch is not a JSON object", "BadRequest")
        with self._lock:
            old = self._events.get((namespace, name))
            if old is None:
                return _error(404, 'events.%s "%s" not found' % ("events.k8s.io" if version == EVENTS_V1 else "",
                                                                  name), "NotFound")
            new = to_core(version, merge(view(version, old), patch))
            new["metadata"] = dict(old["metadata"], **{k: v for k, v in (new.get("metadata") or {}).items()
                                                      if k in ("labels", "annotations")})
            problems = validate(new, version) + _changed(old, new, version)
            if problems:
                return _invalid(old["metadata"], "; ".join(problems))
            new["metadata"]["resourceVersion"] = str(self._next_rv())
            self._events[(namespace, name)] = new
            return 200, view(version, new)

    def get(self, version: str, namespace: str, name: str) -> Result:
        with self._lock:
            event = self._events.get((namespace, name))
        if event is None:
            return _error(404, 'events "%s" not found' % name, "NotFound")
        return 200, view(version, event)

    def list(self, version: str, namespace: Optional[str], field_selector: str) -> Result:
        try:
            wanted = _fields(field_selector, version)
        except ValueError as e:
            return _error(400, str(e), "BadRequest")
        with self._lock:
            found = [e for (ns, _), e in sorted(self._events.items()) if namespace in (None, ns)]
        items = [view(version, e) for e in found if all(_field(e, k) == v for k, v in wanted)]
        for item in items:
            del item["kind"], item["apiVersion"]
        return 200, {"kind": "EventList", "apiVersion": version, "metadata": {"resourceVersion":
                                                                             str(self._next_rv())},
                     "items": items}

    def delete(self, namespace: str, name: str) -> bool:
        """Remove an Event, as its TTL (1 h by default) or `kubectl delete event` does."""
        with self._lock:
            return self._events.pop((namespace, name), None) is not None

    def all(self) -> List[Dict[str, Any]]:
        """Every Event, in the events.k8s.io/v1 shape (for tests)."""
        with self._lock:
            return [view(EVENTS_V1, e) for _, e in sorted(self._events.items())]


def route(parts: List[str]) -> Optional[Tuple[str, Optional[str], Optional[str]]]:
    """(version, namespace, name) for an Events path, else None."""
    if parts[:2] == ["api", "v1"]:
        version, rest = "v1", parts[2:]
    elif parts[:3] == ["apis", "events.k8s.io", "v1"]:
        version, rest = EVENTS_V1, parts[3:]
    else:
        return None
    namespace = None
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    if rest[:1] != ["events"] or len(rest) > 2:
        return None
    return version, namespace, (rest[1] if len(rest) == 2 else None)


def to_core(version: str, body: Dict[str, Any]) -> Dict[str, Any]:
    event = copy.deepcopy(body)
    if version == EVENTS_V1:
        event = {_RENAMED.get(k, k): v for k, v in event.items()}
    event.update(kind="Event", apiVersion="v1")
    return event


def view(version: str, event: Dict[str, Any]) -> Dict[str, Any]:
    """The stored Event as `version` prints it."""
    out = copy.deepcopy(event)
    if version == EVENTS_V1:
        out = {_TO_V1.get(k, k): v for k, v in out.items()}
        out.update(kind="Event", apiVersion=EVENTS_V1)
        return out
    out.setdefault("source", {})
    for key in ("firstTimestamp", "lastTimestamp", "eventTime"):
        out.setdefault(key, None)  # non-pointer times print as null (Go's metav1.Time)
    out.setdefault("reportingComponent", "")
    out.setdefault("reportingInstance", "")
    return out


def validate(e: Dict[str, Any], version: str) -> List[str]:
    """ValidateEventCreate: the legacy rules always, the strict ones for events.k8s.io/v1."""
    errs = []
    meta, obj = e.get("metadata") or {}, e.get("involvedObject") or {}
    if not _SUBDOMAIN.match(str(meta.get("name") or "")) or len(meta.get("name") or "") > 253:
        errs.append("metadata.name: Invalid value: a lowercase RFC 1123 subdomain must consist of ...")
    if e.get("eventTime") is None:
        if obj.get("namespace") and obj["namespace"] != meta.get("namespace"):
            errs.append("involvedObject.namespace: Invalid value: does not match event.namespace")
    else:
        if not obj.get("namespace") and meta.get("namespace") not in ("default", "kube-system"):
            errs.append("involvedObject.namespace: Invalid value: does not match event.namespace")
        for key, limit in (("reportingComponent", 0), ("reportingInstance", 128), ("action", 128),
                           ("reason", 128), ("message", 1024)):
            value = str(e.get(key) or "")
            if not value and key != "message":
                errs.append("%s: Required value" % (_TO_V1.get(key, key) if version == EVENTS_V1 else key))
            if limit and len(value) > limit:
                errs.append("%s: Invalid value: can have at most %d characters" % (key, limit))
        if not _QUALIFIED.match(str(e.get("reportingComponent") or "x")):
            errs.append("reportingController: Invalid value: must be a qualified name")
    return errs + (_strict(e) if version == EVENTS_V1 else [])


def _strict(e: Dict[str, Any]) -> List[str]:
    errs = []
    if e.get("eventTime") is None:
        errs.append("eventTime: Required value")
    if e.get("type") not in ("Normal", "Warning"):
        errs.append("type: Invalid value: has invalid value: %s" % e.get("type"))
    series = e.get("series")
    if series is not None and (int(series.get("count") or 0) < 2 or not series.get("lastObservedTime")):
        errs.append("series: Invalid value: count should be at least 2, lastObservedTime is required")
    for key in ("firstTimestamp", "lastTimestamp", "count"):
        if e.get(key):
            errs.append("%s: Invalid value: needs to be unset" % _TO_V1[key])
    if any((e.get("source") or {}).values()):
        errs.append("deprecatedSource: Invalid value: needs to be unset")
    return errs


def _changed(old: Dict[str, Any], new: Dict[str, Any], version: str) -> List[str]:
    if version != EVENTS_V1:
        return []  # the core API keeps its old, lax update rules
    return ["%s: Invalid value: field is immutable" % _TO_V1.get(k, k) for k in _IMMUTABLE
            if old.get(k) != new.get(k)]


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: null deletes, objects merge, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


def _fields(selector: str, version: str) -> List[Tuple[str, str]]:
    """fieldSelector terms, in the core field names (regarding.* is involvedObject.*)."""
    out = []
    for term in filter(None, (selector or "").split(",")):
        key, sep, value = term.partition("=")
        key = key.rstrip("=")
        value = value.lstrip("=")
        if not sep or "!" in key:
            raise ValueError("field selector %r: only = and == are supported by the fake" % term)
        out.append((("involvedObject" + key[len("regarding"):]) if key.startswith("regarding.") else key, value))
    return out


def _field(event: Dict[str, Any], path: str) -> str:
    value: Any = event
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def _error(code: int, message: str, reason: str) -> Result:
    return code, {"message": message, "reason": reason}


def _invalid(meta: Dict[str, Any], message: str) -> Result:
    return 422, {"message": 'Event "%s" is invalid: %s' % (meta.get("name") or "", message), "reason": "Invalid"}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def decode(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None
