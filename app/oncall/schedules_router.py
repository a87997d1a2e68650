from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy import func, select

from app import deletion
from app.api.auth import Principal, Scope, require
from app.api.deps import SessionDep
from app.api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, fetch_page
from app.api.retry import TransactionRetryRoute
from app.core.errors import (
    Conflict,
    NotFound,
    Unprocessable,
    problem_responses,
)
from app.core.time import utcnow
from app.oncall import schedules
from app.oncall.models import LayerKind, Schedule, ScheduleOverride, User
from app.oncall.notification_rules import installed_reachability, unreachable_users
from app.oncall.schedule_schemas import (
    LayerIn,
    LayerRead,
    LayerUpdate,
    OnCallRead,
    OverrideCreate,
    OverrideRead,
    ReachabilityWarning,
    RestrictionIn,
    ScheduleCreate,
    ScheduleRead,
    ScheduleUpdate,
    ShiftRead,
    ShiftsRead,
    UserBrief,
)
from app.oncall.shifts import SourceType

router = APIRouter(prefix="/schedules", tags=["schedules"], route_class=TransactionRetryRoute)

Reader = Annotated[Principal, Depends(require(Scope.config_read))]
Writer = Annotated[Principal, Depends(require(Scope.config_write))]

# The default window of GET /shifts.
DEFAULT_SHIFTS_SPAN = timedelta(days=7)

FromQuery = Annotated[datetime | None, Query(alias="from", description="RFC 3339; default now")]
ToQuery = Annotated[datetime | None, Query(alias="to", description="RFC 3339, exclusive")]


def layer_read(loaded: schedules.LoadedLayer) -> LayerRead:
    row = loaded.row
    return LayerRead(
        id=row.id,
        position=row.position,
        name=row.name,
        kind=LayerKind(row.kind).value,
        members=loaded.members,
        rotation_unit=row.rotation_unit,
        rotation_length=row.rotation_length,
        start_date=row.start_date,
        handoff_time=row.handoff_time,
        handoff_day=row.handoff_day,
        restrictions=[RestrictionIn.model_validate(item) for item in row.restrictions],
        shift_count=len(row.fixed_shifts),
    )


async def schedule_read(session: SessionDep, schedule: Schedule) -> ScheduleRead:
    layers = await schedules.load_layers(session, schedule.id)
    user_ids = await schedules.user_ids_on_schedule(session, schedule.id)
    problems = await unreachable_users(session, user_ids, installed_reachability())
    return ScheduleRead(
        id=schedule.id,
        name=schedule.name,
        description=schedule.description,
        time_zone=schedule.time_zone,
        layers=[layer_read(loaded) for loaded in layers],
        warnings=[
            ReachabilityWarning(
                user_id=user_id, message=f"User {user_id} {problem}; pages cannot reach them."
            )
            for user_id, problem in problems.items()
        ],
        created_at=schedule.created_at,
        updated_at=schedule.updated_at,
    )


async def _check_name_free(session: SessionDep, name: str, schedule_id: uuid.UUID | None) -> None:
    existing = await session.scalar(
        select(Schedule).where(func.lower(Schedule.name) == name.lower())
    )
    if existing is not None and existing.id != schedule_id:
        raise Conflict(f"A schedule named {name!r} already exists.", field="name")


@router.get("", response_model=Page[ScheduleRead], responses=problem_responses(400, 401, 403))
async def list_schedules(
    session: SessionDep, _: Reader, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> Page[ScheduleRead]:
    """List schedules, oldest first."""
    rows, next_cursor = await fetch_page(
        session,
        select(Schedule),
        time_column=Schedule.created_at,
        id_column=Schedule.id,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[await schedule_read(session, row) for row in rows], next_cursor=next_cursor)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ScheduleRead,
    responses=problem_responses(401, 403, 409, 422),
)
async def create_schedule(
    body: ScheduleCreate, session: SessionDep, response: Response, _: Writer
) -> ScheduleRead:
    """Create a schedule, optionally with rotation layers (bottom first)."""
    await _check_name_free(session, body.name, None)
    schedule = Schedule(name=body.name, description=body.description, time_zone=body.time_zone)
    session.add(schedule)
    await session.flush()
    for index, layer in enumerate(body.layers):
        await schedules.add_rotation_layer(session, schedule, layer, field=f"layers.{index}")
    response.headers["Location"] = f"/v1/schedules/{schedule.id}"
    return await schedule_read(session, schedule)


@router.get(
    "/{schedule_id}", response_model=ScheduleRead, responses=problem_responses(401, 403, 404)
)
async def get_schedule(schedule_id: uuid.UUID, session: SessionDep, _: Reader) -> ScheduleRead:
    """Get a schedule with its layers, and warnings about users no page can reach."""
    return await schedule_read(session, await schedules.get_schedule(session, schedule_id))


@router.patch(
    "/{schedule_id}",
    response_model=ScheduleRead,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def update_schedule(
    schedule_id: uuid.UUID, body: ScheduleUpdate, session: SessionDep, _: Writer
) -> ScheduleRead:
    """Rename a schedule, change its zone, or reorder its layers."""
    schedule = await schedules.get_schedule(session, schedule_id)
    changes = body.model_dump(exclude_unset=True, exclude={"layer_order"})
    if changes.get("name"):
        await _check_name_free(session, changes["name"], schedule.id)
    for name, value in changes.items():
        if value is not None:
            setattr(schedule, name, value)
    if body.layer_order is not None:
        await schedules.reorder_layers(session, schedule.id, body.layer_order)
    schedule.updated_at = utcnow()
    await session.flush()
    return await schedule_read(session, schedule)


@router.delete(
    "/{schedule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409),
)
async def delete_schedule(schedule_id: uuid.UUID, session: SessionDep, _: Writer) -> None:
    """Delete a schedule. A schedule that an escalation level or a team uses is a 409
    listing them."""
    await deletion.delete_schedule(session, await schedules.get_schedule(session, schedule_id))


@router.post(
    "/{schedule_id}/layers",
    status_code=status.HTTP_201_CREATED,
    response_model=LayerRead,
    responses=problem_responses(401, 403, 404, 422),
)
async def add_layer(
    schedule_id: uuid.UUID, body: LayerIn, session: SessionDep, response: Response, _: Writer
) -> LayerRead:
    """Add a rotation layer on top of the others: it wins where it has someone."""
    schedule = await schedules.get_schedule(session, schedule_id)
    layer = await schedules.add_rotation_layer(session, schedule, body, field="body")
    response.headers["Location"] = f"/v1/schedules/{schedule_id}/layers/{layer.id}"
    return await _layer_read(session, schedule_id, layer.id)


async def _layer_read(
    session: SessionDep, schedule_id: uuid.UUID, layer_id: uuid.UUID
) -> LayerRead:
    return layer_read(await schedules.get_layer(session, schedule_id, layer_id))


@router.patch(
    "/{schedule_id}/layers/{layer_id}",
    response_model=LayerRead,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def update_layer(
    schedule_id: uuid.UUID,
    layer_id: uuid.UUID,
    body: LayerUpdate,
    session: SessionDep,
    _: Writer,
) -> LayerRead:
    """Change a rotation layer; fields left out keep their values.

    The whole rotation is recomputed from the new settings, past shifts included.
    """
    await schedules.get_schedule(session, schedule_id)
    loaded = await schedules.get_layer(session, schedule_id, layer_id)
    row = loaded.row
    if row.kind != LayerKind.rotation:
        raise Conflict(
            f"Layer {layer_id} contains an imported calendar; import the calendar again to "
            "change it.",
            field="layer_id",
        )
    current = {
        "name": row.name,
        "members": loaded.members,
        "rotation_unit": row.rotation_unit,
        "rotation_length": row.rotation_length,
        "start_date": row.start_date,
        "handoff_time": row.handoff_time,
        "handoff_day": row.handoff_day if row.rotation_unit == "weeks" else None,
        "restrictions": row.restrictions,
    }
    changes = body.model_dump(exclude_unset=True)
    if changes.get("rotation_unit") not in (None, "weeks") and "handoff_day" not in changes:
        current["handoff_day"] = None
    try:
        merged = LayerIn.model_validate({**current, **changes})
    except ValueError as exc:
        raise Unprocessable(f"The layer would be invalid: {exc}", field="body") from exc
    await schedules.update_rotation_layer(session, row, loaded.members, merged)
    return await _layer_read(session, schedule_id, layer_id)


@router.delete(
    "/{schedule_id}/layers/{layer_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def delete_layer(
    schedule_id: uuid.UUID, layer_id: uuid.UUID, session: SessionDep, _: Writer
) -> None:
    """Delete a layer; the layers above keep their precedence."""
    loaded = await schedules.get_layer(session, schedule_id, layer_id)
    await session.delete(loaded.row)


@router.get(
    "/{schedule_id}/overrides",
    response_model=Page[OverrideRead],
    responses=problem_responses(400, 401, 403, 404),
)
async def list_overrides(
    schedule_id: uuid.UUID,
    session: SessionDep,
    _: Reader,
    start: FromQuery = None,
    end: ToQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[OverrideRead]:
    """List a schedule's overrides that overlap [from, to), oldest first."""
    await schedules.get_schedule(session, schedule_id)
    statement = select(ScheduleOverride).where(ScheduleOverride.schedule_id == schedule_id)
    if start is not None:
        statement = statement.where(ScheduleOverride.end_at > start)
    if end is not None:
        statement = statement.where(ScheduleOverride.start_at < end)
    rows, next_cursor = await fetch_page(
        session,
        statement,
        time_column=ScheduleOverride.created_at,
        id_column=ScheduleOverride.id,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[_override_read(row) for row in rows], next_cursor=next_cursor)


def _override_read(row: ScheduleOverride) -> OverrideRead:
    return OverrideRead(
        id=row.id,
        schedule_id=row.schedule_id,
        user_id=row.user_id,
        start=row.start_at,
        end=row.end_at,
        created_at=row.created_at,
    )


@router.post(
    "/{schedule_id}/overrides",
    status_code=status.HTTP_201_CREATED,
    response_model=OverrideRead,
    responses=problem_responses(401, 403, 404, 422),
)
async def create_override(
    schedule_id: uuid.UUID,
    body: OverrideCreate,
    session: SessionDep,
    response: Response,
    _: Writer,
) -> OverrideRead:
    """Put a user on call for a time range; where overrides overlap the newest wins."""
    await schedules.get_schedule(session, schedule_id)
    await schedules.check_users_exist(session, [body.user_id], "user_id")
    override = ScheduleOverride(
        schedule_id=schedule_id, user_id=body.user_id, start_at=body.start, end_at=body.end
    )
    session.add(override)
    await session.flush()
    response.headers["Location"] = f"/v1/schedules/{schedule_id}/overrides/{override.id}"
    return _override_read(override)


@router.delete(
    "/{schedule_id}/overrides/{override_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def delete_override(
    schedule_id: uuid.UUID, override_id: uuid.UUID, session: SessionDep, _: Writer
) -> None:
    """Delete an override; the shifts it covered come back."""
    override = await session.get(ScheduleOverride, override_id)
    if override is None or override.schedule_id != schedule_id:
        raise NotFound(
            f"Schedule {schedule_id} has no override {override_id}.", field="override_id"
        )
    await session.delete(override)


async def _briefs(session: SessionDep, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, UserBrief]:
    if not user_ids:
        return {}
    rows = await session.scalars(select(User).where(User.id.in_(user_ids)))
    return {user.id: UserBrief(id=user.id, name=user.name, email=user.email) for user in rows}


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise Unprocessable("Times need a UTC offset, e.g. 2026-03-01T09:00:00Z.", field=field)
    return value


@router.get(
    "/{schedule_id}/oncall",
    response_model=OnCallRead,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_on_call(
    schedule_id: uuid.UUID,
    session: SessionDep,
    _: Reader,
    at: Annotated[datetime | None, Query(description="RFC 3339; default now")] = None,
) -> OnCallRead:
    """Tell who is on call at an instant, from which layer or override, and until when."""
    schedule = await schedules.get_schedule(session, schedule_id)
    instant = _aware(at, "at") if at is not None else utcnow()
    shift = await schedules.on_call(session, schedule, instant)
    if shift is None:
        return OnCallRead(
            at=instant,
            user=None,
            source=None,
            layer_id=None,
            layer_name=None,
            override_id=None,
            until=None,
        )
    user = (await _briefs(session, {shift.user_id})).get(shift.user_id)
    return OnCallRead(
        at=instant,
        user=user,
        source=shift.source,
        layer_id=shift.source_id if shift.source == SourceType.layer else None,
        layer_name=shift.layer_name,
        override_id=shift.source_id if shift.source == SourceType.override else None,
        until=shift.end,
    )


@router.get(
    "/{schedule_id}/shifts",
    response_model=ShiftsRead,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_shifts(
    schedule_id: uuid.UUID,
    session: SessionDep,
    _: Reader,
    start: FromQuery = None,
    end: ToQuery = None,
) -> ShiftsRead:
    """Return the final shifts in [from, to) (default: the next 7 days), at most 366 days."""
    schedule = await schedules.get_schedule(session, schedule_id)
    window_start = _aware(start, "from") if start is not None else utcnow()
    window_end = _aware(end, "to") if end is not None else window_start + DEFAULT_SHIFTS_SPAN
    schedules.check_window(window_start, window_end)
    computed = await schedules.compute_shifts(session, schedule, window_start, window_end)
    users = await _briefs(session, {shift.user_id for shift in computed})
    return ShiftsRead(
        schedule_id=schedule.id,
        time_zone=schedule.time_zone,
        start=window_start,
        end=window_end,
        shifts=[
            ShiftRead(
                start=shift.start,
                end=shift.end,
                user=users[shift.user_id],
                source=shift.source,
                layer_id=shift.source_id if shift.source == SourceType.layer else None,
                layer_name=shift.layer_name,
                override_id=shift.source_id if shift.source == SourceType.override else None,
            )
            for shift in computed
            if shift.user_id in users
        ],
    )
