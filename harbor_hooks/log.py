"""structlog: readable lines for people on a terminal, JSON lines for machines."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def setup_logging(fmt: str | None = None, verbose: bool = False) -> None:
    fmt = fmt or os.environ.get("HARBOR_HOOKS_LOG_FORMAT", "console")
    renderer = (structlog.processors.JSONRenderer() if fmt == "json"
                else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG if verbose else logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "harbor_hooks"):
    """Our logger; logs go to stderr even where no command set logging up (the API, Harbor)."""
    if not structlog.is_configured():
        setup_logging()
    return structlog.get_logger(name)
