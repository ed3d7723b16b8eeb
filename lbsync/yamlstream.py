"""YAML documents built straight from libyaml's event stream: kubectl dumps at JSON's pace.

Why: `yaml.load` (even with CSafeLoader) makes a node for every scalar and then constructs the
objects in Python; a 5,000-Service `kubectl get ... -o yaml` dump took 10 s and 545 MB. Here
the C parser's events become dicts, lists and scalars directly: plain scalars are resolved by
SafeLoader's own implicit resolvers and constructors (so `port: 80` is 80, `yes` is True, as
before), each distinct short value once; `slim` drops what lbsync never reads as each mapping
ends, and `managedFields` is never built at all. What plain data does not need — tags, anchors,
aliases, merge keys, mappings or lists as keys — raises Unsupported, and the caller loads that
text with yaml.load. Pure: text in, objects out.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import yaml
from yaml import events
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode

STR = "tag:yaml.org,2002:str"
_REFUSED_TAGS = ("tag:yaml.org,2002:merge", "tag:yaml.org,2002:value")
_SKIPPED = "managedFields"  # the largest part of a server-side-applied object; never read
_NO_KEY = object()
_MISS = object()


class Unsupported(Exception):
    """The text uses YAML beyond plain data: load it with yaml.load instead."""


def available() -> bool:
    return hasattr(yaml, "CSafeLoader")


def load_all(text: str, hook: Callable[[Dict[Any, Any]], Any] = lambda d: d) -> List[Any]:
    """Every document of `text`; `hook` gets each mapping once it is complete (innermost first).
    Raises yaml.YAMLError for text that is not YAML, Unsupported for YAML it does not build."""
    builder = _Builder(hook)
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        builder.feed(event)
    return builder.documents


class _Builder:
    def __init__(self, hook: Callable[[Dict[Any, Any]], Any]) -> None:
        self.hook = hook
        self.documents: List[Any] = []
        self.stack: List[Any] = []  # open containers
        self.keys: List[Any] = []  # per open container: its pending key (_NO_KEY: none)
        self.skip = 0  # depth inside a subtree that is not built
        self.scalar = _Scalars()

    def feed(self, e: events.Event) -> None:
        kind = type(e)
        if self.skip:
            self.skip += 1 if kind in (events.MappingStartEvent, events.SequenceStartEvent) else \
                -1 if kind in (events.MappingEndEvent, events.SequenceEndEvent) else 0
            return
        if kind is events.ScalarEvent:
            _plain_data(e)
            self.add(self.scalar(e.value) if not e.style and e.implicit[0] else e.value)  # plain: "" or None
        elif kind is events.MappingStartEvent or kind is events.SequenceStartEvent:
            self.open(e, {} if kind is events.MappingStartEvent else [])
        elif kind is events.MappingEndEvent:
            self.keys.pop()
            self.add(self.hook(self.stack.pop()))
        elif kind is events.SequenceEndEvent:
            self.keys.pop()
            self.add(self.stack.pop())
        elif kind is events.AliasEvent:
            raise Unsupported("aliases")

    def open(self, e: events.Event, container: Any) -> None:
        _plain_data(e)
        if self.stack and isinstance(self.stack[-1], dict):
            key = self.keys[-1]
            if key is _NO_KEY:
                raise Unsupported("a mapping or list as a key")
            if key == _SKIPPED:
                self.keys[-1], self.skip = _NO_KEY, 1
                return
        self.stack.append(container)
        self.keys.append(_NO_KEY)

    def add(self, value: Any) -> None:
        if not self.stack:
            if value is not None:  # an empty document
                self.documents.append(value)
            return
        top = self.stack[-1]
        if type(top) is list:
            top.append(value)
            return
        key = self.keys[-1]
        if key is _NO_KEY:
            self.keys[-1] = value
        else:
            top[key] = value
            self.keys[-1] = _NO_KEY


def _plain_data(e: Any) -> None:
    if e.anchor is not None or (e.tag is not None and e.tag != "!"):
        raise Unsupported("tags or anchors")


class _Scalars:
    """Plain scalars as SafeLoader resolves them, each distinct short text resolved once."""

    def __init__(self) -> None:
        self.resolvers = yaml.SafeLoader.yaml_implicit_resolvers
        self.constructor = SafeConstructor()
        self.seen: Dict[str, Any] = {}

    def __call__(self, text: str) -> Any:
        value = self.seen.get(text, _MISS)
        if value is _MISS:
            value = self._construct(text)
            if len(text) <= 64:
                self.seen[text] = value
        return value

    def _construct(self, text: str) -> Any:
        tag = self._tag(text)
        if tag == STR:
            return text
        if tag in _REFUSED_TAGS:
            raise Unsupported("merge keys")
        return self.constructor.yaml_constructors[tag](self.constructor, ScalarNode(tag, text))

    def _tag(self, text: str) -> Optional[str]:
        candidates = self.resolvers.get(text[0] if text else "", []) + self.resolvers.get(None, [])
        for tag, regexp in candidates:
            if regexp.match(text):
                return tag
        return STR
