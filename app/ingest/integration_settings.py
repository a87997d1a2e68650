"""Validate the per-format settings of an integration when it is created or changed."""

from __future__ import annotations

from typing import Any

from app.core.errors import Unprocessable
from app.ingest.parsers.common import ParseError, normalize_severity

# Shortest heartbeat interval: a check job per ping faster than this would be wasted work.
MIN_HEARTBEAT_INTERVAL_SECONDS = 10
MAX_HEARTBEAT_INTERVAL_SECONDS = 31 * 24 * 3600


def check_integration_settings(kind: str, settings: dict[str, Any]) -> None:
    """Raise 422 naming the setting when ``settings`` are invalid for ``kind``."""
    if kind != "heartbeat":
        return
    interval = settings.get("interval_seconds")
    if interval is None:
        raise Unprocessable(
            "A heartbeat integration needs settings.interval_seconds: the longest time "
            "between two pings before Tocsin opens an incident.",
            field="settings.interval_seconds",
        )
    _check_seconds(
        interval,
        "settings.interval_seconds",
        MIN_HEARTBEAT_INTERVAL_SECONDS,
        MAX_HEARTBEAT_INTERVAL_SECONDS,
    )
    if settings.get("grace_seconds") is not None:
        _check_seconds(
            settings["grace_seconds"], "settings.grace_seconds", 0, MAX_HEARTBEAT_INTERVAL_SECONDS
        )
    try:
        normalize_severity(settings.get("severity"), "settings.severity", strict=True)
    except ParseError as exc:
        raise Unprocessable(exc.message, field=exc.field) from exc


def _check_seconds(value: Any, field: str, minimum: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise Unprocessable(
            f"{field} must be a whole number of seconds from {minimum} to {maximum}, "
            f"got {value!r}.",
            field=field,
        )
