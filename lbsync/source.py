"""Kubernetes objects from files: what `kubectl get ... -o yaml|json` prints, or manifests.

Accepts a file or a directory of `.yaml`/`.yml`/`.json` files (read in name order);
each document may be a single object or a `List` (`v1 List`, `ServiceList`, ...).
Objects of other kinds are skipped. Effects: reads files; knows nothing of the model.
"""
from __future__ import annotations

import json
import os
from typing import Dict, Iterator, List

import yaml

from lbsync import kubeyaml, yamlstream
from lbsync.exceptions import SourceFileError
from lbsync.snapshot import Snapshot

_KINDS = {"Service": "services", "EndpointSlice": "endpoint_slices", "Endpoints": "endpoints",
          "Node": "nodes"}
_SUFFIXES = (".yaml", ".yml", ".json")


class FileSource:
    """`fetch()` re-reads the path each time, so edits show up on the next sync."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fetch(self, *, unchanged_since: str = "") -> Snapshot:
        """`unchanged_since`: an earlier Snapshot's version; if no file changed since, nothing
        is parsed and the Snapshot has only that version."""
        found: Dict[str, List[dict]] = {v: [] for v in _KINDS.values()}
        files = _files(self.path)
        version = _version(files)
        if unchanged_since and version == unchanged_since:
            return Snapshot(version=version)
        for path in files:
            for obj in _objects(path):
                found[_KINDS[obj["kind"]]].append(obj)
        return Snapshot(services=tuple(found["services"]), endpoint_slices=tuple(found["endpoint_slices"]),
                        endpoints=tuple(found["endpoints"]), nodes=tuple(found["nodes"]), version=version)

    def describe(self) -> str:
        return f"file {self.path}"


def _files(path: str) -> List[str]:
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.endswith(_SUFFIXES) and not n.startswith("."))
        return [os.path.join(path, n) for n in names]
    if not os.path.exists(path):
        raise SourceFileError(f"source {path}: no such file or directory")
    return [path]


def _version(files: List[str]) -> str:
    """Changes when any file changes: names, sizes and modification times (ns)."""
    parts = []
    for path in files:
        try:
            st = os.stat(path)
        except OSError:
            return ""
        parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def _objects(path: str) -> Iterator[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise SourceFileError(f"source {path}: cannot read: {e}") from e
    for doc in _documents(path, text):
        yield from _flatten(doc, path)


def _documents(path: str, text: str) -> List[object]:
    """JSON; YAML as kubectl prints it read line by line (kubeyaml: a 5,000-Service dump in
    about twice the time of its JSON), other plain YAML from libyaml's event stream
    (yamlstream), yaml.load for YAML beyond plain data."""
    try:
        if path.endswith(".json") or text.lstrip().startswith(("{", "[")):
            return [json.loads(text)]
        try:
            return kubeyaml.load(text, drop=_NEVER_READ)
        except yamlstream.Unsupported:
            pass
        if yamlstream.available():
            try:
                return yamlstream.load_all(text, hook=_without_copies)
            except yamlstream.Unsupported:
                pass
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except (ValueError, yaml.YAMLError) as e:
        raise SourceFileError(f"source {path}: not valid YAML or JSON: {_first_line(e)}") from e


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"  # a copy of the object, never read
# and each endpoint's Pod reference: a fifth of a dump's lines, two of them unique per endpoint
_NEVER_READ = frozenset((LAST_APPLIED, "managedFields", "targetRef"))


def _without_copies(mapping: dict) -> dict:
    """A YAML mapping as it ends: kubectl's copy of the object is dropped (half a dump's size)."""
    mapping.pop(LAST_APPLIED, None)
    return mapping


def _flatten(doc: object, path: str) -> Iterator[dict]:
    if isinstance(doc, list):
        for item in doc:
            yield from _flatten(item, path)
        return
    if not isinstance(doc, dict):
        raise SourceFileError(f"source {path}: expected Kubernetes objects, found {type(doc).__name__}")
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        list_kind = kind[:-4]
        for item in doc["items"]:
            if isinstance(item, dict) and "kind" not in item and list_kind in _KINDS:
                item = dict(item, kind=list_kind)  # typed lists (ServiceList) omit item kinds
            yield from _flatten(item, path)
    elif kind in _KINDS:
        yield doc


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
