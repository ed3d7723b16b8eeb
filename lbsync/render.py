"""Topology -> haproxy.cfg text, through a Jinja2 template.

The template gets plain values only; routing rules (which Host or path goes where,
in which order) are worked out here in Python so a user's own template stays simple.
Every value from the cluster passes `word()` on its way out: a last guard, after the
model's validation, that nothing can break out of one HAProxy word. Pure: reads the
template and lists the error pages once, when a Renderer is made; no other I/O.
"""
from __future__ import annotations

import functools
import os
import re
import sys
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import jinja2

from lbsync import __version__, slots
from lbsync.endpoints import Server
from lbsync.exceptions import RenderError
from lbsync.model import Backend, Topology

SECTION = "backend.cfg.j2"  # one backend's lines: rendered per backend, so they can be kept
ERROR_CODES = (400, 403, 404, 408, 500, 502, 503, 504)
_WORD = re.compile(r"^[A-Za-z0-9._:/*~%?=&+\[\]-]+$")
_HOST_EXPR = "req.hdr(host),field(1,:),lower"


def word(value: object) -> str:
    """The value as one HAProxy config word, or RenderError: no spaces, #, quotes, braces..."""
    text = str(value)
    if not _WORD.match(text) or len(text) > 1024:
        raise RenderError(f"refusing to write {text[:60]!r} into the config: not a safe HAProxy word")
    return text


def addr(server: Server) -> str:
    """Template filter for templates of one's own that loop over `b.slots`."""
    return word(_address(server))


def bundled_dir(kind: str) -> str:
    """templates/ or errors/: the repo's (source checkout) or the installed copy."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for base in (here, os.path.join(sys.prefix, "share", "lbsync")):
        path = os.path.join(base, kind)
        if os.path.isdir(path):
            return path
    raise RenderError(f"bundled {kind}/ directory not found (looked in {here} and {sys.prefix}/share/lbsync)")


@dataclass(frozen=True)
class Frame:
    """The non-cluster values the template needs (a slice of Settings)."""

    http_bind: str = "*:80"
    https_bind: str = "*:443"
    stats_bind: str = "127.0.0.1:1936"
    tcp_bind_address: str = "*"
    tls_cert: Optional[str] = None
    https_redirect: bool = True
    hard_stop_after: str = "15m"
    haproxy_log: str = "stdout"
    maxconn: int = 0
    runtime_socket: Optional[str] = None
    runtime_socket_group: Optional[str] = None
    haproxy_user: Optional[str] = None
    haproxy_group: Optional[str] = None
    haproxy_version: Tuple[int, int] = (2, 4)  # oldest supported: no newer keywords
    prometheus_exporter: bool = False  # the binary has HAProxy's built-in exporter service


class Renderer:
    """Holds the compiled template and the error pages; `render` is then pure and fast."""

    def __init__(self, frame: Frame = Frame(), *, template: Optional[str] = None,
                 errors_dir: Optional[str] = None) -> None:
        self.frame = frame
        path = template or os.path.join(bundled_dir("templates"), "haproxy.cfg.j2")
        self.template_path = os.path.abspath(path)
        # the bundled template writes nothing of a backend outside its section but its name, mode
        # and TCP port: lbsync.incremental may then splice a changed section into the last text
        self.bundled = self.template_path == os.path.abspath(os.path.join(bundled_dir("templates"),
                                                                          "haproxy.cfg.j2"))
        self.errors_dir = os.path.abspath(errors_dir or bundled_dir("errors"))
        self.errorfiles = _errorfiles(self.errors_dir)
        self._template, self._section = _compile(self.template_path)
        self.section_path = os.path.abspath(self._section.filename or SECTION)
        self._lb = dict(vars(self.frame), version=__version__, errorfiles=self.errorfiles)
        self._section_globals = dict(self._section.globals)  # flat: a ChainMap is slow to copy 8,000 times

    def render(self, topology: Topology, layout: Optional[Mapping[str, slots.Slots]] = None, *,
               sections: Optional[Sequence[str]] = None) -> str:
        """The config text. `sections`: what `section()` gave for each backend of the topology,
        in order, e.g. kept from an earlier pass for backends that did not change (the result
        is the same bytes as without them)."""
        layout = layout if layout is not None else slots.layout(
            {b.name: b.servers for b in topology.backends}, {}, spares=bool(self.frame.runtime_socket))
        try:
            if sections is None:
                sections = [self.section(b, layout[b.name]) for b in topology.backends]
            views = [_view(b, layout[b.name], s) for b, s in zip(topology.backends, sections)]
            return self._template.render(lb=self._lb, backends=views, frontends=_frontends(topology, self.frame),
                                         placeholder=slots.PLACEHOLDER)
        except (jinja2.TemplateError, KeyError) as e:
            raise RenderError(f"template {self.template_path}: {e}") from e

    def section(self, backend: Backend, slot_list: slots.Slots) -> str:
        """One backend's own lines, from backend.cfg.j2 (what the template sees as `b.section`)."""
        # what Template.render does, with the globals merged once rather than on every call
        section = self._section
        context = section.new_context(dict(self._section_globals, b=_view(backend, slot_list), lb=self._lb),
                                      shared=True)
        try:
            try:
                return section.environment.concat(section.root_render_func(context))  # type: ignore[attr-defined]
            except Exception:
                section.environment.handle_exception()  # the template's own line in the traceback
        except jinja2.TemplateError as e:
            raise RenderError(f"template {self.section_path}: {e}") from e


def _compile(path: str) -> Tuple[jinja2.Template, jinja2.Template]:
    """The template and the backend section template: backend.cfg.j2 beside it, else the bundled one."""
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(os.path.dirname(path)),
                                  jinja2.FileSystemLoader(bundled_dir("templates"))])
    env = _Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                       keep_trailing_newline=True, loader=loader)
    env.filters.update(word=word, addr=addr)
    try:
        return env.get_template(os.path.basename(path)), env.get_template(SECTION)
    except jinja2.TemplateNotFound as e:
        raise RenderError(f"template {path} not found") from e
    except jinja2.TemplateError as e:
        raise RenderError(f"template {path}: {e}") from e


class _Environment(jinja2.Environment):
    """Reads a backend view's fields as items straight away: Jinja tries `b.name` as an
    attribute first, and a dict's missing attribute costs an exception (a fifth of a render)."""

    def getattr(self, obj: object, attribute: str) -> object:
        if type(obj) is _View and attribute not in _VIEW_ATTRIBUTES:  # same answer, sooner
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


def _errorfiles(directory: str) -> Tuple[Tuple[int, str], ...]:
    if not os.path.isdir(directory):
        raise RenderError(f"error page directory {directory} not found")
    found = tuple((code, os.path.join(directory, f"{code}.http")) for code in ERROR_CODES
                  if os.path.isfile(os.path.join(directory, f"{code}.http")))
    for _, path in found:
        word(path)
    return found


class _View(dict):
    """What a template sees of one backend: the Backend's fields, its slots, and values made
    from them, each computed when a template first reads it (the main template reads only a
    few fields of each backend; its sections come from `Renderer.section`)."""

    __slots__ = ()

    def __missing__(self, key: str) -> object:
        make = _DERIVED.get(key)
        if make is None:
            raise KeyError(key)
        value = self[key] = make(self)
        return value

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        return self[key] if key in self or key in _DERIVED else default


_VIEW_ATTRIBUTES = frozenset(dir(_View))  # a dict's methods: `b.items` in a template is still one


def _view(b: Backend, slot_list: slots.Slots, section: Optional[str] = None) -> _View:
    view = _View(vars(b))  # dict's own constructor: 8,000 views a pass at 5,000 Services
    view["slots"] = slot_list
    if section is not None:
        view["section"] = section
    return view


_DERIVED = {
    "servers_block": lambda v: _servers_block(v["slots"]),
    "host_acls": lambda v: _host_exprs(v["hosts"]),
    "path_regex": lambda v: (v["path_prefix"] or "").replace(".", "[.]"),
    "cookie_key": lambda v: f"lbsync-{v['namespace']}-{v['service']}-{v['port']}",
    "check_host": lambda v: next((h for h in v["hosts"] if not h.startswith("*.")), v["service"]),
}


def _servers_block(slot_list: slots.Slots) -> str:
    """All `server` lines of a backend, built here: the hottest loop of a render (80,000 lines
    at 5,000 Services) is 5x faster in Python than in Jinja. Addresses need no `word()`
    check: they are inet_ntop's canonical text (see endpoints.py)."""
    free = _address(slots.PLACEHOLDER) + " disabled"
    return "\n".join(f"    server s{i} {_server(s) if s else free}" for i, s in enumerate(slot_list, start=1))


def _server(server: Server) -> str:
    text = _address(server)
    return text if server.weight is None else f"{text} weight {int(server.weight)}"


def _address(server: Server) -> str:
    return f"[{server.address}]:{server.port}" if ":" in server.address else f"{server.address}:{server.port}"


def _host_exprs(hosts: Sequence[str]) -> List[str]:
    """Match expressions for these hosts: Host without :port, any case; `*.x` by suffix."""
    exact = [word(h) for h in hosts if not h.startswith("*.")]
    suffixes = [word(h[1:]) for h in hosts if h.startswith("*.")]
    exprs = []
    if exact:
        exprs.append(f"{_HOST_EXPR} -m str {' '.join(exact)}")
    if suffixes:
        exprs.append(f"{_HOST_EXPR} -m end {' '.join(suffixes)}")
    return exprs


@dataclass
class _Frontend:
    routes: List[Tuple[str, str]]
    redirects: List[str]


def _frontends(topology: Topology, frame: Frame) -> Dict[str, Optional[_Frontend]]:
    http = _Frontend(_routes(topology.on("http")), [])
    https = _Frontend(_routes(topology.on("https")), []) if frame.tls_cert else None
    if https and frame.https_redirect:
        served = {h for b in topology.on("http") for h in b.hosts}
        redirect = [b for b in topology.on("https") if any(h not in served for h in b.hosts)]
        http.redirects = [_host_cond(tuple(h for h in b.hosts if h not in served)) for b in redirect]
    return {"http": http, "https": https}


def _routes(backends: Sequence[Backend]) -> List[Tuple[str, str]]:
    """Exact hosts first, then wildcards (longest first), then path prefixes (longest first)."""
    exact = [(b.name, _host_cond(tuple(h for h in b.hosts if not h.startswith("*."))))
             for b in backends if any(not h.startswith("*.") for h in b.hosts)]
    wild = sorted(((len(h), b.name, h) for b in backends for h in b.hosts if h.startswith("*.")),
                  key=lambda t: (-t[0], t[1], t[2]))
    prefixes = sorted((b for b in backends if b.path_prefix), key=lambda b: (-len(b.path_prefix), b.name))
    return (exact + [(name, _host_cond((h,))) for _, name, h in wild] +
            [(b.name, f"{{ path {word(b.path_prefix)} }} || {{ path_beg {word(b.path_prefix)}/ }}")
             for b in prefixes])


@functools.lru_cache(maxsize=1 << 16)  # the same hosts pass after pass: routes of 5,000 Services
def _host_cond(hosts: Tuple[str, ...]) -> str:
    return " || ".join(f"{{ {expr} }}" for expr in _host_exprs(hosts))
