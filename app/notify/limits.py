"""Throttle limits: parse ``5/15m,11/1h`` and decide whether a slot is free (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.core.logging import get_logger

log = get_logger(__name__)

# Defaults per notifier kind; TOCSIN_NOTIFIERS__<KIND>__THROTTLE or a contact method's
# settings.throttle replace them. Voice is listed for voice notifiers from plugins.
DEFAULT_LIMITS = {"sms": "5/15m,11/1h", "voice": "3/15m"}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*([smhd])\s*$")
MAX_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Limit:
    count: int
    window: timedelta

    def describe(self) -> str:
        minutes = int(self.window.total_seconds() // 60)
        if minutes and minutes % 60 == 0:
            return f"{self.count} per {minutes // 60} h"
        if minutes:
            return f"{self.count} per {minutes} min"
        return f"{self.count} per {int(self.window.total_seconds())} s"


def parse_limits(value: str) -> tuple[Limit, ...]:
    """Parse ``"5/15m,11/1h"`` (units s, m, h, d); ``"off"`` or ``""`` means no limit.

    Raises ValueError with a message that shows the expected form.
    """
    if value.strip().lower() in ("", "off", "none"):
        return ()
    limits = []
    for part in value.split(","):
        match = _LIMIT.match(part)
        if match is None:
            raise ValueError(
                f"invalid throttle {part.strip()!r}; write COUNT/WINDOW such as 5/15m, "
                "several separated by commas, or off"
            )
        count, amount, unit = int(match[1]), int(match[2]), match[3]
        window = timedelta(seconds=amount * _UNITS[unit])
        if count < 1 or not timedelta(0) < window <= MAX_WINDOW:
            raise ValueError(
                f"invalid throttle {part.strip()!r}; the count must be at least 1 and the "
                "window between 1 s and 7 d"
            )
        limits.append(Limit(count, window))
    return tuple(sorted(limits, key=lambda limit: limit.window))


def limits_for(
    kind: str,
    contact_settings: Mapping[str, Any],
    instance_options: Mapping[str, Mapping[str, Any]],
) -> tuple[Limit, ...]:
    """Return the limits of a contact method: its own, else the notifier's, else the default."""
    value = contact_settings.get("throttle")
    if value is None:
        value = instance_options.get(kind, {}).get("throttle")
    if value is None:
        value = DEFAULT_LIMITS.get(kind, "off")
    try:
        return parse_limits(str(value))
    except ValueError as exc:
        # A bad TOCSIN_NOTIFIERS value must not stop pages; fall back to the default.
        log.error("throttle.invalid", notifier=kind, error=str(exc))
        return parse_limits(DEFAULT_LIMITS.get(kind, "off"))


def next_free_at(
    slots: Sequence[datetime], now: datetime, limits: Sequence[Limit]
) -> datetime | None:
    """Return None if another notification may go now, else when the next slot frees.

    ``slots`` are the times of earlier notifications that took a slot, in any order.
    """
    free_at: datetime | None = None
    for limit in limits:
        recent = sorted(slot for slot in slots if slot > now - limit.window)
        if len(recent) < limit.count:
            continue
        # The window has room again once enough of its slots have aged out.
        moment = recent[len(recent) - limit.count] + limit.window
        free_at = moment if free_at is None else max(free_at, moment)
    return free_at
