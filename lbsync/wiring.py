"""From settings to the parts a pass is made of: model options, the render frame, the
source (file, polled API or watched API) and the reloader.

Effects only where a setting asks HAProxy itself (`auto` version and exporter detection).
"""
from __future__ import annotations

from typing import Optional, Tuple

from lbsync import haproxy, model, render
from lbsync.exceptions import LbsyncError
from lbsync.haproxy.reload import Reloader
from lbsync.settings import Settings, duration_ms


def options_from(settings: Settings) -> model.Options:
    return model.Options(
        publish=settings.publish, exclude_namespaces=settings.exclude_namespaces,
        exclude_services=settings.exclude_services, path_prefixes=settings.path_prefixes,
        check_interval_ms=duration_ms(settings.check_interval, what="check_interval"),
        tls=bool(settings.tls_cert), reserved_ports=_bind_ports(settings),
        deny_networks=settings.deny_networks, backend_mode=settings.backend_mode,
        node_address_types=settings.node_address_types, node_selector=settings.node_selector,
        node_health_port=settings.node_health_port)


def frame_from(settings: Settings) -> render.Frame:
    return render.Frame(
        http_bind=settings.http_bind, https_bind=settings.https_bind, stats_bind=settings.stats_bind,
        tcp_bind_address=settings.tcp_bind_address, tls_cert=settings.tls_cert,
        https_redirect=settings.https_redirect, hard_stop_after=settings.hard_stop_after,
        haproxy_log=settings.haproxy_log, maxconn=settings.maxconn, runtime_socket=settings.runtime_socket,
        runtime_socket_group=settings.runtime_socket_group, haproxy_user=settings.haproxy_user,
        haproxy_group=settings.haproxy_group, haproxy_version=_haproxy_version(settings),
        prometheus_exporter=_prometheus_exporter(settings))


def _haproxy_version(settings: Settings) -> Tuple[int, int]:
    if settings.haproxy_version != "auto":
        major, minor = settings.haproxy_version.split(".")
        return int(major), int(minor)
    try:
        return tuple(haproxy.version(settings.haproxy_binary)[:2])  # type: ignore[return-value]
    except LbsyncError:
        return (2, 4)  # cannot ask: write only what every supported version accepts


def _prometheus_exporter(settings: Settings) -> bool:
    if settings.haproxy_exporter != "auto" or not settings.stats_bind:
        return settings.haproxy_exporter == "true" and bool(settings.stats_bind)
    try:
        return haproxy.has_prometheus_exporter(settings.haproxy_binary)
    except LbsyncError:
        return False  # cannot ask: a `use-service` the binary lacks would fail the config check


def _bind_ports(settings: Settings) -> Tuple[int, ...]:
    binds = [settings.http_bind, settings.stats_bind, settings.metrics_bind or ""]
    if settings.tls_cert:
        binds.append(settings.https_bind)
    return tuple(sorted({int(b.rsplit(":", 1)[1]) for b in binds if b}))


def make_source(settings: Settings, *, stand_ins: bool = False):
    """The file source for --source, else the Kubernetes API (listed each pass, or watched).
    `stand_ins`: a polling source hands on unchanged items as stand-ins (for a caller that
    keeps what it built from them: lbsync.incremental)."""
    if settings.source:
        from lbsync.source import FileSource
        return FileSource(settings.source)
    from lbsync import kube
    creds = kube.credentials.load(settings.kubeconfig, settings.context)
    creds.disable_compression = creds.disable_compression or not settings.api_compression
    if settings.watch:
        return kube.WatchSource(creds, namespaces=settings.namespaces, selector=settings.selector,
                                timeout=settings.api_timeout, page_size=settings.page_size,
                                watch_timeout=settings.watch_timeout, resync=settings.resync,
                                backend_mode=settings.backend_mode)
    return kube.ApiSource(creds, namespaces=settings.namespaces, selector=settings.selector,
                          timeout=settings.api_timeout, page_size=settings.page_size,
                          backend_mode=settings.backend_mode, stand_ins=stand_ins)


def make_reloader(settings: Settings) -> Optional[Reloader]:
    common = dict(config_path=settings.haproxy_config, binary=settings.haproxy_binary,
                  timeout=settings.reload_timeout)
    if settings.master_socket:
        return haproxy.MasterSocketReloader(settings.master_socket, **common)
    if settings.pidfile:
        return haproxy.SignalReloader(settings.pidfile, confirm_socket=settings.master_socket, **common)
    if settings.reload_cmd:
        return haproxy.CommandReloader(settings.reload_cmd, timeout=settings.reload_timeout)
    return None
