"""Maintenance windows and silences as values: when they apply and to what. No I/O.

A recurring window follows an iCalendar RRULE (RFC 5545) read with python-dateutil. Its
occurrences start at the wall-clock time of ``starts_at`` in the window's time zone and
last the wall-clock length of the first occurrence, so "Sunday 01:00-04:00 in
Europe/Berlin" stays 01:00-04:00 local across DST changes. A start that falls in the hour
a DST change skips is read with the offset before the change (PEP 495, fold=0).
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule as RecurrenceRule
from dateutil.rrule import rrulestr

from app.rules.engine import AlertFacts
from app.rules.matchers import Matcher, MatcherError, parse_matchers
from app.rules.timeintervals import TimeIntervalError, load_zone

# Rules more frequent than hourly would make a window almost always on or off.
_REJECTED_FREQUENCIES = ("SECONDLY", "MINUTELY")
MAX_WINDOW_LENGTH = timedelta(days=366)
# How many occurrences of a recurring window are checked for overlaps when it is saved.
OVERLAP_CHECKED = 100


class WindowError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Occurrence:
    starts_at: datetime
    ends_at: datetime


@dataclass(eq=False)
class MaintenanceWindow:
    """A one-off or recurring period during which a service pages nobody."""

    id: uuid.UUID
    service_id: uuid.UUID
    name: str
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    rrule: str | None
    _zone: ZoneInfo = field(init=False, repr=False)
    _rule: RecurrenceRule | None = field(init=False, repr=False, default=None)
    _length: timedelta = field(init=False, repr=False)
    # (valid_from, valid_until, occurrence): the result of occurrence_at for that span.
    _memo: tuple[datetime, datetime | None, Occurrence | None] | None = field(
        init=False, repr=False, default=None
    )
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        try:
            self._zone = load_zone(self.time_zone, "time_zone")
        except TimeIntervalError as exc:
            raise WindowError(exc.field, exc.message) from exc
        if self.ends_at <= self.starts_at:
            raise WindowError("ends_at", "must be after starts_at")
        if self.ends_at - self.starts_at > MAX_WINDOW_LENGTH:
            raise WindowError("ends_at", "a window lasts at most 366 days")
        local_start = self.starts_at.astimezone(self._zone)
        local_end = self.ends_at.astimezone(self._zone)
        self._length = local_end.replace(tzinfo=None) - local_start.replace(tzinfo=None)
        if self.rrule:
            self._rule = _parse_rrule(self.rrule, local_start)

    def _end_of(self, start: datetime) -> datetime:
        return (start.replace(tzinfo=None) + self._length).replace(tzinfo=self._zone)

    def occurrence_at(self, at: datetime) -> Occurrence | None:
        """Return the occurrence that covers instant ``at``, if any."""
        memo = self._memo
        if memo is not None and memo[0] <= at and (memo[1] is None or at < memo[1]):
            return memo[2]
        occurrence, valid_until = self._compute(at)
        with self._lock:
            self._memo = (at, valid_until, occurrence)
        return occurrence

    def _compute(self, at: datetime) -> tuple[Occurrence | None, datetime | None]:
        if self._rule is None:
            if self.starts_at <= at < self.ends_at:
                return Occurrence(self.starts_at, self.ends_at), self.ends_at
            return None, (self.starts_at if at < self.starts_at else None)
        local_at = at.astimezone(self._zone)
        # Starts up to one window length (plus an hour of DST slack) back may still cover at.
        earliest = local_at - self._length - timedelta(hours=1)
        covering = [
            Occurrence(start, self._end_of(start))
            for start in self._rule.between(earliest, local_at, inc=True)
            if start <= at < self._end_of(start)
        ]
        if covering:
            occurrence = max(covering, key=lambda item: item.ends_at)
            return occurrence, occurrence.ends_at
        following = self._rule.after(local_at)
        return None, following

    def check_occurrences_apart(self) -> None:
        """Reject a recurring window whose occurrences touch or overlap.

        Such a window never ends, so it would hold paging until someone deletes it. The
        first OVERLAP_CHECKED occurrences are compared, which covers the shortest gap of
        the rules people write (BYDAY and BYHOUR patterns repeat within a few weeks).
        """
        if self._rule is None:
            return
        starts = list(itertools.islice(self._rule, OVERLAP_CHECKED))
        for start, following in itertools.pairwise(starts):
            if self._end_of(start) >= following:
                raise WindowError(
                    "ends_at",
                    f"each occurrence lasts {self._length}, but the rule starts the next one "
                    f"{following - start} later ({following.isoformat()}), so the window "
                    "would never end; shorten it or repeat it less often",
                )

    def next_occurrence(self, after: datetime) -> Occurrence | None:
        if self._rule is None:
            return Occurrence(self.starts_at, self.ends_at) if after < self.starts_at else None
        start = self._rule.after(after.astimezone(self._zone))
        return Occurrence(start, self._end_of(start)) if start is not None else None


def _parse_rrule(text: str, local_start: datetime) -> RecurrenceRule:
    cleaned = text.strip()
    if cleaned.upper().startswith("RRULE:"):
        cleaned = cleaned[6:]
    upper = cleaned.upper()
    if "DTSTART" in upper or "\n" in cleaned:
        raise WindowError(
            "rrule", "give one RRULE line without DTSTART; starts_at is the first start"
        )
    for frequency in _REJECTED_FREQUENCIES:
        if f"FREQ={frequency}" in upper:
            raise WindowError("rrule", f"FREQ={frequency} is not supported; use HOURLY or slower")
    try:
        parsed = rrulestr(cleaned, dtstart=local_start, cache=True)
    except (ValueError, TypeError) as exc:
        raise WindowError("rrule", f"invalid RRULE: {exc}") from exc
    if not isinstance(parsed, RecurrenceRule):
        raise WindowError("rrule", "expected a single RRULE")
    if parsed.after(local_start, inc=True) is None:
        raise WindowError("rrule", "the rule has no occurrence at or after starts_at")
    return parsed


@dataclass(frozen=True, slots=True, eq=False)
class Silence:
    """Matchers that keep matching alerts from paging until a time or until they resolve."""

    id: uuid.UUID
    service_id: uuid.UUID | None
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime | None
    until_resolved: bool
    expired_at: datetime | None
    created_by: dict[str, Any]
    comment: str

    def in_effect_at(self, at: datetime) -> bool:
        """Tell whether the silence's times let it apply at ``at``.

        An until-resolved silence also needs a matched alert still firing, or no match yet;
        the caller checks that in the database.
        """
        if at < self.starts_at:
            return False
        if self.expired_at is not None and at >= self.expired_at:
            return False
        return self.ends_at is None or at < self.ends_at

    def matches(self, facts: AlertFacts) -> bool:
        if self.service_id is not None and self.service_id != facts.service_id:
            return False
        return all(matcher.matches(facts.value_of(matcher.name)) for matcher in self.matchers)


def compile_silence_matchers(texts: Sequence[str]) -> tuple[Matcher, ...]:
    matchers: list[Matcher] = []
    for index, text in enumerate(texts):
        try:
            matchers.extend(parse_matchers(text))
        except MatcherError as exc:
            raise WindowError(f"matchers.{index}", str(exc)) from exc
    return tuple(matchers)
