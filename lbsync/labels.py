"""Kubernetes label selectors (`node_selector`): parsed once, then matched against labels.

The grammar is the API server's: requirements joined by commas, each one of `key=value`,
`key==value`, `key!=value`, `key`, `!key`, `key in (a,b)`, `key notin (a,b)`. A bad
selector is a settings mistake, so `parse` raises ValueError naming the requirement.
Pure; knows nothing of Nodes or settings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Mapping, Tuple

_NAME = r"(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?"
_FORMS = (
    ("in", re.compile(rf"^({_NAME})\s+in\s+\(([^()]*)\)$")),
    ("notin", re.compile(rf"^({_NAME})\s+notin\s+\(([^()]*)\)$")),
    ("!=", re.compile(rf"^({_NAME})\s*!=\s*({_VALUE})$")),
    ("=", re.compile(rf"^({_NAME})\s*==?\s*({_VALUE})$")),
    ("!", re.compile(rf"^!\s*({_NAME})$")),
    ("exists", re.compile(rf"^({_NAME})$")),
)


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # in, notin, =, !=, exists, !
    values: FrozenSet[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # != and notin


Selector = Tuple[Requirement, ...]


def parse(text: str) -> Selector:
    """'' matches everything; anything unreadable raises ValueError."""
    return tuple(_requirement(part.strip()) for part in _split(text) if part.strip())


def matches(selector: Selector, labels: object) -> bool:
    found: Dict[str, str] = labels if isinstance(labels, dict) else {}
    return all(r.matches(found) for r in selector)


def _split(text: str) -> List[str]:
    """Commas outside parentheses separate requirements."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0 or depth > 1:
            raise ValueError(f"{text!r}: unbalanced parentheses")
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"{text!r}: unbalanced parentheses")
    return parts + [text[start:]]


def _requirement(text: str) -> Requirement:
    for op, form in _FORMS:
        m = form.match(text)
        if not m:
            continue
        if op in ("in", "notin"):
            values = frozenset(v.strip() for v in m.group(2).split(",") if v.strip())
            if not values or not all(re.match(rf"^{_VALUE}$", v) for v in values):
                raise ValueError(f"{text!r}: '{op}' needs a list of label values, e.g. (a,b)")
            return Requirement(m.group(1), op, values)
        if op in ("=", "!="):
            return Requirement(m.group(1), op, frozenset([m.group(2)]))
        return Requirement(m.group(1), op)
    raise ValueError(f"{text!r} is not a label requirement (key=value, key!=value, key, !key, "
                     "key in (a,b), key notin (a,b))")
