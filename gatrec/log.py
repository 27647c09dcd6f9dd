"""Structured logging: concise key=value lines on stderr, configured once by the CLI."""

from __future__ import annotations

import logging
import sys

import structlog


def setup(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s")
    # Libraries we call are chatty at INFO; keep their warnings only.
    for noisy in ("urllib3", "alembic", "mlflow", "httpx", "sentence_transformers", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=False, pad_event_to=0),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # Look sys.stderr up per logger, not once: test runners and click's CliRunner swap it.
        logger_factory=lambda *args: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get(name: str) -> structlog.BoundLogger:
    return structlog.get_logger(name)
