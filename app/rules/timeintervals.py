"""Time conditions: days of the week and times of day, read on the wall clock of a named zone.

The shape follows Alertmanager's ``time_intervals`` (``weekdays``, ``times`` with
``start_time`` and ``end_time``). An instant is converted to the zone's local time and
compared there, so "09:00-17:00 in Europe/Berlin" follows the clocks on DST days. On the
day clocks go forward, the hour that does not exist is never matched. On the day they go
back, the repeated hour matches both times it occurs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY_INDEX = {name: index for index, name in enumerate(WEEKDAYS)}
_WEEKDAY_INDEX.update({name[:3]: index for index, name in enumerate(WEEKDAYS)})
_CLOCK = re.compile(r"(?P<hour>\d{2}):(?P<minute>\d{2})")
MINUTES_PER_DAY = 24 * 60


class TimeIntervalError(ValueError):
    """An invalid time condition; ``field`` is the path inside the interval."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class TimeInterval:
    time_zone: str
    zone: ZoneInfo
    # 0 is Monday; empty means every day.
    weekdays: frozenset[int]
    # Half-open [start, end) ranges in minutes after local midnight; empty means all day.
    minutes: tuple[tuple[int, int], ...]

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(self.zone)
        if self.weekdays and local.weekday() not in self.weekdays:
            return False
        if not self.minutes:
            return True
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.minutes)

    def describe(self) -> str:
        days = ", ".join(WEEKDAYS[day] for day in sorted(self.weekdays)) or "every day"
        times = ", ".join(f"{_clock(start)}-{_clock(end)}" for start, end in self.minutes)
        return f"{days} {times or 'all day'} ({self.time_zone})"


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def load_zone(name: str, field: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TimeIntervalError(
            field, f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin"
        ) from exc


def _parse_clock(text: str, field: str) -> int:
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        raise TimeIntervalError(field, f"expected HH:MM, got {text!r}")
    hour, minute = int(match["hour"]), int(match["minute"])
    if minute > 59 or hour > 24 or (hour == 24 and minute != 0):
        raise TimeIntervalError(field, f"{text!r} is not a time between 00:00 and 24:00")
    return hour * 60 + minute


def _parse_weekdays(specs: Sequence[str], field: str) -> frozenset[int]:
    days: set[int] = set()
    for index, spec in enumerate(specs):
        where = f"{field}.{index}"
        first, _, last = spec.strip().lower().partition(":")
        if first not in _WEEKDAY_INDEX or (last and last not in _WEEKDAY_INDEX):
            raise TimeIntervalError(
                where, f"unknown weekday in {spec!r}; use names such as monday or monday:friday"
            )
        start = _WEEKDAY_INDEX[first]
        end = _WEEKDAY_INDEX[last] if last else start
        if end < start:
            raise TimeIntervalError(
                where, f"{spec!r} runs backwards; split a range over Sunday into two entries"
            )
        days.update(range(start, end + 1))
    return frozenset(days)


def parse_interval(spec: dict[str, Any], field: str) -> TimeInterval:
    """Build a TimeInterval from ``{"time_zone", "weekdays", "times"}``."""
    time_zone = str(spec.get("time_zone") or "UTC")
    zone = load_zone(time_zone, f"{field}.time_zone")
    weekdays = _parse_weekdays(spec.get("weekdays") or [], f"{field}.weekdays")
    ranges = []
    for index, item in enumerate(spec.get("times") or []):
        where = f"{field}.times.{index}"
        start = _parse_clock(str(item.get("start_time", "")), f"{where}.start_time")
        end = _parse_clock(str(item.get("end_time", "")), f"{where}.end_time")
        if end <= start:
            raise TimeIntervalError(
                where,
                "end_time must be after start_time; split a range over midnight into "
                "two entries, e.g. 22:00-24:00 and 00:00-06:00",
            )
        ranges.append((start, end))
    return TimeInterval(
        time_zone=time_zone, zone=zone, weekdays=weekdays, minutes=tuple(sorted(ranges))
    )
