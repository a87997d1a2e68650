"""Calendar routes: iCalendar export and subscription feeds, import of external calendars."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.api.auth import Principal, Scope, require
from app.api.deps import SessionDep, read_body
from app.api.retry import TransactionRetryRoute
from app.core.errors import FieldError, NotFound, Unauthorized, Unprocessable, problem_responses
from app.core.time import isoformat, utcnow
from app.oncall import calendar_import, schedules
from app.oncall.calendar_feeds import (
    calendar_response,
    export_window,
    feed_token,
    feed_token_valid,
)
from app.oncall.localtime import zone
from app.oncall.models import User
from app.oncall.schedule_schemas import CalendarFeedRead, CalendarImportRead, SkippedEvent
from app.oncall.schedules_router import layer_read

router = APIRouter(tags=["calendars"], route_class=TransactionRetryRoute)

Reader = Annotated[Principal, Depends(require(Scope.config_read))]
Writer = Annotated[Principal, Depends(require(Scope.config_write))]

MAX_CALENDAR_BYTES = 2 * 1024 * 1024
CALENDAR_BODY = {
    "requestBody": {
        "required": True,
        "content": {"text/calendar": {"schema": {"type": "string"}}},
    }
}
ICS_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/calendar": {"schema": {"type": "string"}}}}
}

FromQuery = Annotated[datetime | None, Query(alias="from", description="RFC 3339; default now")]
ToQuery = Annotated[datetime | None, Query(alias="to", description="RFC 3339, exclusive")]
TokenQuery = Annotated[str, Query(max_length=128, description="The token of the feed URL")]


async def _check_user(session: SessionDep, user_id: uuid.UUID) -> None:
    if await session.get(User, user_id) is None:
        raise NotFound(f"User {user_id} does not exist.", field="user_id")


@router.get(
    "/schedules/{schedule_id}/calendar.ics",
    response_class=Response,
    responses={**ICS_RESPONSE, **problem_responses(401, 403, 404, 422)},
)
async def export_schedule_calendar(
    schedule_id: uuid.UUID,
    session: SessionDep,
    _: Reader,
    start: FromQuery = None,
    end: ToQuery = None,
) -> Response:
    """Export shifts as iCalendar (default: 7 days back to 90 days ahead)."""
    schedule = await schedules.get_schedule(session, schedule_id)
    window = export_window(start, end)
    return await calendar_response(session, sources=[schedule], user_id=None, window=window)


@router.get(
    "/schedules/{schedule_id}/calendar-feed",
    response_model=CalendarFeedRead,
    responses=problem_responses(401, 403, 404),
)
async def get_schedule_feed(
    schedule_id: uuid.UUID, session: SessionDep, request: Request, _: Reader
) -> CalendarFeedRead:
    """Return a calendar subscription URL for the schedule, signed so it needs no API key."""
    await schedules.get_schedule(session, schedule_id)
    settings = request.app.state.settings
    token = feed_token(settings.signing_key(), "schedule", schedule_id)
    return CalendarFeedRead(
        url=f"{settings.public_base_url}/v1/calendars/schedules/{schedule_id}.ics?token={token}"
    )


@router.post(
    "/schedules/{schedule_id}/calendar-import",
    status_code=status.HTTP_201_CREATED,
    response_model=CalendarImportRead,
    responses=problem_responses(401, 403, 404, 409, 413, 422),
    openapi_extra=CALENDAR_BODY,
)
async def import_calendar(
    schedule_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    _: Writer,
    layer_name: Annotated[str, Query(min_length=1, max_length=200)] = "Imported calendar",
    replace_layer_id: Annotated[
        uuid.UUID | None, Query(description="A calendar layer whose shifts the import replaces")
    ] = None,
    skip_unmatched: Annotated[
        bool, Query(description="Import the events that name a known user and skip the rest")
    ] = False,
) -> CalendarImportRead:
    """Import an external schedule (text/calendar) as a layer of fixed shifts.

    Each event becomes a shift of the user its attendee, organizer or summary names
    (by e-mail address, else by exact name). Recurring events are expanded from 31 days
    back to 365 days ahead. Where events overlap, the one that starts later wins.
    """
    schedule = await schedules.get_schedule(session, schedule_id)
    body = await read_body(request, MAX_CALENDAR_BYTES)
    now = utcnow()
    window_start = now - calendar_import.IMPORT_PAST
    window_end = now + calendar_import.IMPORT_FUTURE
    try:
        result = await calendar_import.match_events(
            session, body, zone(schedule.time_zone), window_start, window_end
        )
    except calendar_import.CalendarError as exc:
        raise Unprocessable(str(exc), field="body") from exc
    if not result.shifts and not result.skipped:
        raise Unprocessable(
            f"The calendar has no events between {isoformat(window_start)} and "
            f"{isoformat(window_end)}, so there is nothing to import. To empty a calendar "
            "layer, delete it.",
            field="body",
        )
    if result.skipped and not skip_unmatched:
        raise Unprocessable(
            f"{len(result.skipped)} events name no known user; add the users, or pass "
            "skip_unmatched=true to import the rest.",
            field="body",
            errors=_skipped_errors(result.skipped),
        )
    if not result.shifts:
        raise Unprocessable(
            f"None of the calendar's {len(result.skipped)} events can be imported: errors "
            "lists the reason for each.",
            field="body",
            errors=_skipped_errors(result.skipped),
        )
    layer = await calendar_import.store_layer(
        session, schedule, result, layer_name=layer_name, replace_layer_id=replace_layer_id
    )
    return CalendarImportRead(
        layer=layer_read(await schedules.get_layer(session, schedule_id, layer.id)),
        imported=len(result.shifts),
        skipped=result.skipped,
    )


def _skipped_errors(skipped: list[SkippedEvent]) -> list[FieldError]:
    return [
        FieldError(field="body", message=f"{item.summary!r} ({item.uid}): {item.reason}")
        for item in skipped[:50]
    ]


@router.get(
    "/calendars/schedules/{schedule_id}.ics",
    response_class=Response,
    responses={**ICS_RESPONSE, **problem_responses(401, 404, 422)},
)
async def schedule_feed(
    schedule_id: uuid.UUID,
    session: SessionDep,
    request: Request,
    token: TokenQuery,
) -> Response:
    """Serve a schedule's calendar to calendar apps; the signed token replaces the API key."""
    if not feed_token_valid(
        request.app.state.settings.signing_key(), "schedule", schedule_id, token
    ):
        raise Unauthorized("The calendar token is invalid; get the URL again from calendar-feed.")
    schedule = await schedules.get_schedule(session, schedule_id)
    return await calendar_response(
        session, sources=[schedule], user_id=None, window=export_window(None, None)
    )


@router.get(
    "/calendars/users/{user_id}.ics",
    response_class=Response,
    responses={**ICS_RESPONSE, **problem_responses(401, 404, 422)},
)
async def user_feed(
    user_id: uuid.UUID,
    session: SessionDep,
    request: Request,
    token: TokenQuery,
) -> Response:
    """Serve one user's on-call shifts across schedules to calendar apps."""
    if not feed_token_valid(request.app.state.settings.signing_key(), "user", user_id, token):
        raise Unauthorized("The calendar token is invalid; get the URL again from calendar-feed.")
    await _check_user(session, user_id)
    return await calendar_response(
        session,
        sources=await schedules.schedules_of_user(session, user_id),
        user_id=user_id,
        window=export_window(None, None),
    )


@router.get(
    "/users/{user_id}/calendar.ics",
    response_class=Response,
    responses={**ICS_RESPONSE, **problem_responses(401, 403, 404)},
)
async def export_user_calendar(user_id: uuid.UUID, session: SessionDep, _: Reader) -> Response:
    """Export a user's on-call shifts across schedules (7 days back to 90 days ahead)."""
    await _check_user(session, user_id)
    return await calendar_response(
        session,
        sources=await schedules.schedules_of_user(session, user_id),
        user_id=user_id,
        window=export_window(None, None),
    )


@router.get(
    "/users/{user_id}/calendar-feed",
    response_model=CalendarFeedRead,
    responses=problem_responses(401, 403, 404),
)
async def get_user_feed(
    user_id: uuid.UUID, session: SessionDep, request: Request, _: Reader
) -> CalendarFeedRead:
    """Return a calendar subscription URL for the user, signed so it needs no API key."""
    await _check_user(session, user_id)
    settings = request.app.state.settings
    token = feed_token(settings.signing_key(), "user", user_id)
    return CalendarFeedRead(
        url=f"{settings.public_base_url}/v1/calendars/users/{user_id}.ics?token={token}"
    )
