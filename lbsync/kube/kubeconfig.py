"""Read kubeconfig files and pick a context, merging several files the way kubectl does.

Exists so that credentials.py only deals with turning one resolved (cluster, user) pair
into Credentials. Rules followed (client-go's): with a $KUBECONFIG list, the first file to
define a cluster/user/context name wins, and the first non-empty current-context wins;
missing files in the list are skipped; relative paths resolve against the directory of the
file that defined the entry.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from lbsync.exceptions import CredentialsError

# Keys whose values are file paths (resolved against the defining file's directory).
PATH_KEYS = {"cluster": ("certificate-authority",),
             "user": ("client-certificate", "client-key", "tokenFile")}
SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))


@dataclass(frozen=True)
class Entry:
    """One named cluster/user/context body plus the file it came from."""

    name: str
    body: Dict[str, Any]
    path: str

    @property
    def base_dir(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))


@dataclass
class Merged:
    files: List[str] = field(default_factory=list)
    clusters: Dict[str, Entry] = field(default_factory=dict)
    users: Dict[str, Entry] = field(default_factory=dict)
    contexts: Dict[str, Entry] = field(default_factory=dict)
    current_context: str = ""


@dataclass(frozen=True)
class Selected:
    """The outcome: which context, its cluster and user entries, its default namespace."""

    context: str
    cluster: Entry
    user: Entry
    namespace: str
    files: Tuple[str, ...]


def _read(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except FileNotFoundError:
        raise CredentialsError("kubeconfig %s: no such file" % path) from None
    except OSError as e:
        raise CredentialsError("kubeconfig %s: cannot read: %s" % (path, e.strerror)) from None
    except yaml.YAMLError as e:
        # Never str(e): PyYAML quotes the offending line, which may hold a token.
        mark = getattr(e, "problem_mark", None)
        where = " at line %d, column %d" % (mark.line + 1, mark.column + 1) if mark else ""
        problem = getattr(e, "problem", None) or "syntax error"
        raise CredentialsError("kubeconfig %s: not valid YAML%s: %s" % (path, where, problem)) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise CredentialsError("kubeconfig %s: top level is a %s, not a mapping"
                               % (path, type(doc).__name__))
    return doc


def _entries(doc: Dict[str, Any], path: str, section: str, inner: str) -> List[Entry]:
    items = doc.get(section) or []
    if not isinstance(items, list):
        raise CredentialsError("kubeconfig %s: '%s' must be a list" % (path, section))
    out = []
    for item in items:
        if not isinstance(item, dict) or not item.get("name"):
            raise CredentialsError("kubeconfig %s: an entry of '%s' has no name" % (path, section))
        body = item.get(inner) or {}
        if not isinstance(body, dict):
            raise CredentialsError("kubeconfig %s: %s %r: '%s' must be a mapping"
                                   % (path, inner, item["name"], inner))
        out.append(Entry(str(item["name"]), body, path))
    return out


def merge(paths: Sequence[str], *, skip_missing: bool) -> Merged:
    """Read and merge files in order (first definition of a name wins)."""
    merged = Merged()
    for path in paths:
        if skip_missing and not os.path.exists(path):
            continue
        doc = _read(path)
        merged.files.append(path)
        for section, inner in SECTIONS:
            target: Dict[str, Entry] = getattr(merged, section)
            for entry in _entries(doc, path, section, inner):
                target.setdefault(entry.name, entry)
        if not merged.current_context and doc.get("current-context"):
            merged.current_context = str(doc["current-context"])
    if not merged.files:
        raise CredentialsError("kubeconfig: none of %s exists" % ", ".join(paths))
    return merged


def select(merged: Merged, context: Optional[str] = None) -> Selected:
    """Resolve the context (explicit or current) to its cluster and user entries."""
    where = "kubeconfig " + ":".join(merged.files)
    name = context or merged.current_context
    if not name:
        raise CredentialsError("%s: no current-context set and no --context given (contexts: %s)"
                               % (where, ", ".join(sorted(merged.contexts)) or "none"))
    ctx = merged.contexts.get(name)
    if ctx is None:
        raise CredentialsError("%s: context %r not found (available: %s)"
                               % (where, name, ", ".join(sorted(merged.contexts)) or "none"))
    cluster_name, user_name = ctx.body.get("cluster"), ctx.body.get("user")
    cluster = merged.clusters.get(str(cluster_name)) if cluster_name else None
    if cluster is None:
        raise CredentialsError("%s: context %r refers to cluster %r, which is not defined"
                               % (where, name, cluster_name))
    user = merged.users.get(str(user_name)) if user_name else None
    if user is None and user_name:
        raise CredentialsError("%s: context %r refers to user %r, which is not defined"
                               % (where, name, user_name))
    return Selected(name, cluster, user or Entry("", {}, ctx.path),
                    str(ctx.body.get("namespace") or "default"), tuple(merged.files))


def resolve_path(entry: Entry, value: str, home: str) -> str:
    """Expand ~ and make a relative path absolute against the defining file's directory."""
    if value.startswith("~"):
        value = home + value[1:]
    return value if os.path.isabs(value) else os.path.join(entry.base_dir, value)
