"""Calendar exports: signed subscription tokens and the text/calendar response."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from fastapi import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Unprocessable
from app.core.security import constant_time_equal, derive_key, hmac_sha256_hex
from app.core.time import utcnow
from app.oncall import schedules
from app.oncall.ical import CalendarPerson, export_calendar
from app.oncall.models import Schedule, User
from app.oncall.shifts import Shift

# The default window of calendar exports, around now.
EXPORT_BEFORE = timedelta(days=7)
EXPORT_AFTER = timedelta(days=90)
# Namespace of event UIDs, so the same shift keeps its UID across exports.
UID_NAMESPACE = uuid.UUID("6f1d8a52-3c1b-4f57-9a0e-2b9c7d4e8a10")


def feed_token(secret: bytes, kind: str, object_id: uuid.UUID) -> str:
    """Return the token of a calendar subscription URL.

    Calendar apps cannot send an API key, so the URL carries an HMAC of the object it
    exports. Tokens do not expire; changing TOCSIN_SECRET_KEY revokes them all.
    """
    key = derive_key(secret, "tocsin calendar feeds")
    return hmac_sha256_hex(key, f"{kind}:{object_id}".encode())[:40]


def feed_token_valid(secret: bytes, kind: str, object_id: uuid.UUID, token: str) -> bool:
    return constant_time_equal(feed_token(secret, kind, object_id), token)


async def calendar_response(
    session: AsyncSession,
    *,
    sources: Sequence[Schedule],
    user_id: uuid.UUID | None,
    window: tuple[datetime, datetime],
) -> Response:
    """Render the shifts of ``sources`` (only ``user_id``'s when given) as text/calendar."""
    start, end = window
    entries: list[tuple[Shift, str]] = []
    for schedule in sources:
        computed = await schedules.compute_shifts(session, schedule, start, end)
        entries += [
            (shift, schedule.name)
            for shift in computed
            if user_id is None or shift.user_id == user_id
        ]
    ids = {shift.user_id for shift, _ in entries}
    people = {}
    if ids:
        rows = await session.scalars(select(User).where(User.id.in_(ids)))
        people = {user.id: CalendarPerson(name=user.name, email=user.email) for user in rows}
    if user_id is not None and user_id in people:
        name = f"On call: {people[user_id].name}"
    else:
        name = sources[0].name if len(sources) == 1 else "On call"
    body = export_calendar(
        name=name, entries=entries, people=people, uid_namespace=UID_NAMESPACE, now=utcnow()
    )
    return Response(
        content=body,
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="oncall.ics"'},
    )


def export_window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """Return the export window: [from, to), by default 7 days back to 90 days ahead."""
    now = utcnow()
    window_start = now - EXPORT_BEFORE if start is None else start
    window_end = now + EXPORT_AFTER if end is None else end
    for value, field in ((window_start, "from"), (window_end, "to")):
        if value.tzinfo is None:
            raise Unprocessable("Times need a UTC offset, e.g. 2026-03-01T09:00:00Z.", field=field)
    schedules.check_window(window_start, window_end)
    return window_start, window_end
