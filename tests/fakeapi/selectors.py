"""Label selector parsing for the fake API (the `labelSelector` query parameter).

Supports the set-based grammar kube-apiserver accepts: `k=v`, `k==v`, `k!=v`, `k`, `!k`,
`k in (a,b)`, `k notin (a,b)`, joined by commas. Invalid input raises ValueError, which the
server turns into a 400 BadRequest Status like the real one.
"""
from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional

Matcher = Callable[[Dict[str, str]], bool]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(r"^(%s)\s+(in|notin)\s+\(([^)]*)\)$" % _KEY)
_EQ = re.compile(r"^(%s)\s*(==|=|!=)\s*(%s)$" % (_KEY, _VALUE))
_EXISTS = re.compile(r"^(!?)\s*(%s)$" % _KEY)


def _split(selector: str) -> List[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, current = [], 0, []
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    if depth != 0:
        raise ValueError("unbalanced parentheses")
    return parts


def _requirement(text: str) -> Matcher:
    m = _SET.match(text)
    if m:
        key, op = m.group(1), m.group(3)
        values = {v.strip() for v in m.group(4).split(",") if v.strip()}
        if not values:
            raise ValueError("for 'in', 'notin' operators, values set can't be empty")
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    m = _EQ.match(text)
    if m:
        key, op, value = m.group(1), m.group(3), m.group(4)
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: key in labels and labels[key] == value
    m = _EXISTS.match(text)
    if m:
        negate, key = bool(m.group(1)), m.group(2)
        return (lambda labels: key not in labels) if negate else (lambda labels: key in labels)
    raise ValueError("unable to parse requirement: %r" % text)


def parse(selector: Optional[str]) -> Matcher:
    """A predicate over a labels dict; the empty selector matches everything."""
    if not selector or not selector.strip():
        return lambda labels: True
    requirements = [_requirement(part) for part in _split(selector)]
    return lambda labels: all(req(labels) for req in requirements)
