"""iCalendar (RFC 5545) export of on-call shifts and import of an external schedule. No I/O."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from app.oncall.localtime import to_instant
from app.oncall.shifts import Shift

PRODID = "-//Tocsin//On-call schedules//EN"
EMAIL_PATTERN = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass(frozen=True, slots=True)
class CalendarPerson:
    name: str
    email: str


def export_calendar(
    *,
    name: str,
    entries: Sequence[tuple[Shift, str]],
    people: dict[uuid.UUID, CalendarPerson],
    uid_namespace: uuid.UUID,
    now: datetime,
) -> bytes:
    """Render ``(shift, schedule name)`` pairs as a VCALENDAR named ``name``.

    Times are written in UTC, which every calendar app reads without a VTIMEZONE block.
    UIDs derive from the shift, so a calendar that polls the feed updates events in place.
    """
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    for shift, schedule_name in entries:
        person = people.get(shift.user_id)
        if person is None:
            continue
        event = icalendar.Event()
        key = f"{shift.source_id}:{shift.user_id}:{shift.start.isoformat()}"
        event.add("uid", f"{uuid.uuid5(uid_namespace, key)}@tocsin")
        event.add("dtstamp", now.astimezone(UTC))
        event.add("dtstart", shift.start.astimezone(UTC))
        event.add("dtend", shift.end.astimezone(UTC))
        event.add("summary", f"On call: {person.name} ({schedule_name})")
        source = "override" if shift.layer_name is None else f"layer {shift.layer_name}"
        event.add("description", f"{person.name} is on call for {schedule_name} ({source}).")
        attendee = icalendar.vCalAddress(f"mailto:{person.email}")
        attendee.params["cn"] = icalendar.vText(person.name)
        event.add("attendee", attendee)
        event.add("transp", "TRANSPARENT")
        calendar.add_component(event)
    body: bytes = calendar.to_ical()
    return body


@dataclass(frozen=True, slots=True)
class ImportedEvent:
    uid: str
    summary: str
    start: datetime
    end: datetime
    # E-mail addresses named by the event (attendees, organizer, summary), in that order.
    emails: list[str]
    names: list[str]


class CalendarError(ValueError):
    pass


def parse_calendar(
    body: bytes, tz: ZoneInfo, window_start: datetime, window_end: datetime
) -> list[ImportedEvent]:
    """Read the events of an iCalendar body in [window_start, window_end), recurrences expanded.

    All-day events and times without a zone are read in ``tz``, the schedule's zone.
    """
    try:
        calendar = icalendar.Calendar.from_ical(body)
    except ValueError as exc:
        raise CalendarError(f"the body is not an iCalendar file: {exc}") from exc
    try:
        occurrences = recurring_ical_events.of(calendar).between(window_start, window_end)
    except Exception as exc:  # the library raises many error types for bad recurrences
        raise CalendarError(f"cannot expand the calendar's recurring events: {exc}") from exc
    events = []
    for component in occurrences:
        if component.name != "VEVENT" or component.get("dtstart") is None:
            continue
        start = _instant(component.get("dtstart").dt, tz)
        end_value = component.get("dtend")
        if end_value is not None:
            end = _instant(end_value.dt, tz)
        elif component.get("duration") is not None:
            end = start + component.get("duration").dt
        else:
            end = start + (
                timedelta(days=1) if _is_date(component.get("dtstart").dt) else timedelta()
            )
        summary = str(component.get("summary", ""))
        events.append(
            ImportedEvent(
                uid=str(component.get("uid", "")),
                summary=summary,
                start=start,
                end=end,
                emails=_emails(component, summary),
                names=_names(component),
            )
        )
    events.sort(key=lambda event: (event.start, event.uid))
    return events


def _is_date(value: date | datetime) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)


def _instant(value: date | datetime, tz: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):
        return to_instant(datetime(value.year, value.month, value.day), tz)
    if value.tzinfo is None:
        return to_instant(value, tz)
    return value.astimezone(UTC)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _emails(component: Any, summary: str) -> list[str]:
    emails = []
    for address in _as_list(component.get("attendee")) + _as_list(component.get("organizer")):
        text = str(address)
        if text.lower().startswith("mailto:"):
            emails.append(text[len("mailto:") :].strip().lower())
    emails += [match.lower() for match in EMAIL_PATTERN.findall(summary)]
    return list(dict.fromkeys(emails))


def _names(component: Any) -> list[str]:
    names = []
    for address in _as_list(component.get("attendee")) + _as_list(component.get("organizer")):
        common_name = getattr(address, "params", {}).get("cn")
        if common_name:
            names.append(str(common_name))
    summary = str(component.get("summary", "")).strip()
    if summary:
        names.append(summary)
    return names
