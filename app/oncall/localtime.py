"""Map local wall-clock times in an IANA zone to instants, across DST changes. No I/O.

Schedules are defined in local time (a handoff at 09:00 Europe/London stays at 09:00 in
summer and winter), so every boundary goes through ``to_instant``:

- a local time inside a skipped hour (spring forward) maps to the first valid instant
  after the gap, the moment of the transition;
- a local time inside a repeated hour (fall back) maps to its first occurrence.

Both rules keep the mapping monotonic: later local times never map to earlier instants,
so boundaries computed this way cannot overlap or leave gaps.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

ONE_SECOND = timedelta(seconds=1)


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def to_instant(local: datetime, tz: ZoneInfo) -> datetime:
    """Return the UTC instant of the naive local time ``local`` in ``tz``."""
    return _to_instant(local.replace(tzinfo=None, fold=0), tz)


@lru_cache(maxsize=65536)
def _to_instant(local: datetime, tz: ZoneInfo) -> datetime:
    early = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if early.astimezone(tz).replace(tzinfo=None) == local:
        return early
    # ``local`` does not exist. With fold=0 zoneinfo applies the offset from before the
    # transition, which lands after the gap; fold=1 applies the later offset, which
    # lands before it. The transition lies between the two, so bisect on whole seconds.
    late = local.replace(tzinfo=tz, fold=1).astimezone(UTC)
    low, high = min(early, late), max(early, late)
    after_offset = early.astimezone(tz).utcoffset()
    while high - low > ONE_SECOND:
        middle = low + (high - low) // 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(tz).utcoffset() == after_offset:
            high = middle
        else:
            low = middle
    return high


def to_local(instant: datetime, tz: ZoneInfo) -> datetime:
    """Return the naive local wall-clock time of an aware instant."""
    return instant.astimezone(tz).replace(tzinfo=None)


def is_skipped(local: datetime, tz: ZoneInfo) -> bool:
    """Tell whether a naive local time falls in a skipped hour (it never shows on a clock)."""
    naive = local.replace(tzinfo=None, fold=0)
    return to_local(naive.replace(tzinfo=tz).astimezone(UTC), tz) != naive


def local_dates(start: datetime, end: datetime, tz: ZoneInfo, margin_days: int) -> list[date]:
    """Return every local date touched by [start, end), widened by ``margin_days`` each side."""
    first = to_local(start, tz).date() - timedelta(days=margin_days)
    last = to_local(end, tz).date() + timedelta(days=margin_days)
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def combine(day: date, at: time) -> datetime:
    return datetime.combine(day, at.replace(tzinfo=None))
