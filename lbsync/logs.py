"""Logging set-up: structlog events, JSON lines for collectors, key=value on a terminal.

Log events, not prose: `log.info("config.reloaded", backends=12, reason="...")`.
"""
from __future__ import annotations

import logging
import sys
from typing import Optional, TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def setup(fmt: str = "auto", level: str = "info", stream: Optional[TextIO] = None) -> None:
    """fmt: json, console, or auto (console on a terminal, JSON otherwise, e.g. in a Pod)."""
    stream = stream or sys.stdout
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer = (structlog.processors.JSONRenderer(sort_keys=False) if fmt == "json"
                else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.format_exc_info,
                    renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False)


def get(name: str = "lbsync") -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)
