"""Watch the files a config is made from (template, error pages, TLS certificate).

A change there triggers a sync at once instead of at the next poll. watchdog watches
directories, so editors that replace files by rename (and Kubernetes' `..data`
symlink swap for mounted Secrets and ConfigMaps) are seen too.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Set

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from lbsync.logs import get as get_logger

log = get_logger("lbsync.watch")


def paths_of(settings, syncer) -> List[str]:
    """The template and its backend section, the error page directory and the certificate."""
    paths = [syncer.renderer.template_path, syncer.renderer.section_path, syncer.renderer.errors_dir]
    if settings.tls_cert:
        paths.append(os.path.abspath(settings.tls_cert))
    return paths


class _Handler(FileSystemEventHandler):
    def __init__(self, watched: Set[str], callback: Callable[[List[str]], None]) -> None:
        self.watched, self.callback = watched, callback

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        touched = [os.path.abspath(str(p)) for p in (event.src_path, getattr(event, "dest_path", ""))
                   if p]
        hits = [p for p in touched if any(p == w or p.startswith(w.rstrip("/") + "/") or
                                          os.path.dirname(w) == os.path.dirname(p) and _k8s_swap(p)
                                          for w in self.watched)]
        if hits:
            self.callback(hits)


def _k8s_swap(path: str) -> bool:
    """Mounted Secrets/ConfigMaps change by swapping a `..data` symlink beside the files."""
    return os.path.basename(path).startswith("..")


def start(paths: List[str], callback: Callable[[List[str]], None]) -> Optional[Observer]:
    dirs: Dict[str, Set[str]] = {}
    for path in paths:
        path = os.path.abspath(path)
        directory = path if os.path.isdir(path) else os.path.dirname(path)
        if os.path.isdir(directory):
            dirs.setdefault(directory, set()).add(path)
    if not dirs:
        return None
    observer = Observer()
    for directory, watched in dirs.items():
        observer.schedule(_Handler(watched, callback), directory, recursive=False)
    observer.daemon = True
    observer.start()
    log.info("watch.started", paths=sorted(p for w in dirs.values() for p in w))
    return observer
