"""Import an external on-call calendar as a schedule layer of fixed shifts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound
from app.core.time import isoformat
from app.oncall import schedules
from app.oncall.ical import CalendarError, ImportedEvent, parse_calendar
from app.oncall.models import LayerKind, Schedule, ScheduleLayer, User
from app.oncall.schedule_schemas import SkippedEvent

__all__ = ["IMPORT_FUTURE", "IMPORT_PAST", "CalendarError", "match_events", "store_layer"]

# Recurring events are expanded over this window around the import.
IMPORT_PAST = timedelta(days=31)
IMPORT_FUTURE = timedelta(days=365)
# Longer events are cut to this span, the longest shift on-call look-ups search for.
MAX_EVENT_SPAN = timedelta(days=366)
MAX_EVENTS = 20_000


@dataclass(frozen=True, slots=True)
class MatchResult:
    shifts: list[dict[str, str]]
    skipped: list[SkippedEvent]


async def match_events(
    session: AsyncSession, body: bytes, tz: ZoneInfo, start: datetime, end: datetime
) -> MatchResult:
    """Parse a calendar and give each event the user it names, or a reason to skip it."""
    events = parse_calendar(body, tz, start, end)
    if len(events) > MAX_EVENTS:
        raise CalendarError(
            f"the calendar has {len(events)} events in the import window; the limit is {MAX_EVENTS}"
        )
    by_email, by_name = await _user_index(session, events)
    shifts: list[dict[str, str]] = []
    skipped: list[SkippedEvent] = []
    for event in events:
        user_id = next((by_email[e] for e in event.emails if e in by_email), None)
        if user_id is None:
            user_id = next((by_name[n.lower()] for n in event.names if n.lower() in by_name), None)
        if event.end <= event.start:
            skipped.append(_skip(event, "the event ends before it starts or has no length"))
        elif user_id is None:
            named = ", ".join(event.emails) or "no e-mail address"
            skipped.append(_skip(event, f"no user has the e-mail address or name ({named})"))
        else:
            shift_end = min(event.end, event.start + MAX_EVENT_SPAN)
            shifts.append(
                {
                    "user_id": str(user_id),
                    "start": isoformat(event.start),
                    "end": isoformat(shift_end),
                    "uid": event.uid,
                }
            )
    return MatchResult(shifts=shifts, skipped=skipped)


def _skip(event: ImportedEvent, reason: str) -> SkippedEvent:
    return SkippedEvent(uid=event.uid, summary=event.summary, start=event.start, reason=reason)


async def _user_index(
    session: AsyncSession, events: list[ImportedEvent]
) -> tuple[dict[str, uuid.UUID], dict[str, uuid.UUID]]:
    emails = {email for event in events for email in event.emails}
    names = {name.lower() for event in events for name in event.names}
    by_email: dict[str, uuid.UUID] = {}
    by_name: dict[str, uuid.UUID] = {}
    if emails:
        rows = await session.execute(
            select(func.lower(User.email), User.id).where(func.lower(User.email).in_(emails))
        )
        by_email = {email: user_id for email, user_id in rows.all()}
    if names:
        rows = await session.execute(
            select(func.lower(User.name), User.id).where(func.lower(User.name).in_(names))
        )
        for name, user_id in rows.all():
            # A name two users share matches nobody rather than the wrong person.
            by_name[name] = user_id if name not in by_name else uuid.UUID(int=0)
        by_name = {name: user_id for name, user_id in by_name.items() if user_id.int}
    return by_email, by_name


async def store_layer(
    session: AsyncSession,
    schedule: Schedule,
    result: MatchResult,
    *,
    layer_name: str,
    replace_layer_id: uuid.UUID | None,
) -> ScheduleLayer:
    """Store the matched shifts in a new calendar layer on top, or replace a layer's shifts.

    The named users are locked first, as other references to users are, so a concurrent
    delete either waits and then finds the shifts, or came first and fails the import.
    """
    user_ids = sorted({uuid.UUID(shift["user_id"]) for shift in result.shifts})
    locked = await session.scalars(
        select(User.id)
        .where(User.id.in_(user_ids))
        .order_by(User.id)
        .with_for_update(key_share=True)
    )
    missing = set(user_ids) - set(locked.all())
    if missing:
        raise Conflict(
            f"{len(missing)} users named by the calendar were deleted during the import "
            f"({', '.join(sorted(map(str, missing)))}); import the calendar again.",
            field="body",
        )
    if replace_layer_id is not None:
        layer = await session.get(ScheduleLayer, replace_layer_id)
        if layer is None or layer.schedule_id != schedule.id or layer.kind != LayerKind.calendar:
            raise NotFound(
                f"Schedule {schedule.id} has no calendar layer {replace_layer_id}.",
                field="replace_layer_id",
            )
        layer.name = layer_name
        layer.fixed_shifts = result.shifts
        layer.updated_at = datetime.now(UTC)
    else:
        layer = ScheduleLayer(
            schedule_id=schedule.id,
            position=await schedules.next_position(session, schedule.id),
            name=layer_name,
            kind=LayerKind.calendar,
            restrictions=[],
            fixed_shifts=result.shifts,
        )
        session.add(layer)
    await session.flush()
    return layer
