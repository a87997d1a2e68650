"""Schedules in the database: load them into the pure shift computation, store layers."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound, Unprocessable
from app.core.time import utcnow
from app.oncall import shifts
from app.oncall.localtime import zone
from app.oncall.models import (
    LayerKind,
    Schedule,
    ScheduleLayer,
    ScheduleLayerMember,
    ScheduleOverride,
    User,
)
from app.oncall.schedule_schemas import LayerIn, RestrictionIn

# The widest window one request may compute shifts for.
MAX_WINDOW = timedelta(days=366)


@dataclass(frozen=True, slots=True)
class LoadedLayer:
    row: ScheduleLayer
    members: list[uuid.UUID]
    # Imported shifts of users that still exist; a deleted user's shifts become gaps.
    fixed_shifts: list[dict[str, Any]]


async def get_schedule(session: AsyncSession, schedule_id: uuid.UUID) -> Schedule:
    schedule = await session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFound(f"Schedule {schedule_id} does not exist.", field="schedule_id")
    return schedule


async def get_layer(
    session: AsyncSession, schedule_id: uuid.UUID, layer_id: uuid.UUID
) -> LoadedLayer:
    for loaded in await load_layers(session, schedule_id):
        if loaded.row.id == layer_id:
            return loaded
    raise NotFound(f"Schedule {schedule_id} has no layer {layer_id}.", field="layer_id")


async def load_layers(session: AsyncSession, schedule_id: uuid.UUID) -> list[LoadedLayer]:
    rows = (
        await session.scalars(
            select(ScheduleLayer)
            .where(ScheduleLayer.schedule_id == schedule_id)
            .order_by(ScheduleLayer.position)
        )
    ).all()
    members: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    if rows:
        member_rows = await session.execute(
            select(ScheduleLayerMember.layer_id, ScheduleLayerMember.user_id)
            .where(ScheduleLayerMember.layer_id.in_([row.id for row in rows]))
            .order_by(ScheduleLayerMember.layer_id, ScheduleLayerMember.position)
        )
        for layer_id, user_id in member_rows.all():
            members[layer_id].append(user_id)
    imported = {item["user_id"] for row in rows for item in row.fixed_shifts}
    existing = set()
    if imported:
        ids = [uuid.UUID(user_id) for user_id in imported]
        existing = {
            str(user_id)
            for user_id in (await session.scalars(select(User.id).where(User.id.in_(ids)))).all()
        }
    return [
        LoadedLayer(
            row,
            members[row.id],
            [item for item in row.fixed_shifts if item["user_id"] in existing],
        )
        for row in rows
    ]


def restriction_from_json(data: dict[str, Any]) -> shifts.Restriction:
    return shifts.Restriction(
        start_time=time.fromisoformat(data["start_time"]),
        end_time=time.fromisoformat(data["end_time"]),
        start_day=data.get("start_day"),
        end_day=data.get("end_day"),
    )


def to_layer(loaded: LoadedLayer) -> shifts.Layer:
    row = loaded.row
    if row.kind == LayerKind.calendar:
        fixed = tuple(
            shifts.FixedShift(
                user_id=uuid.UUID(item["user_id"]),
                start=datetime.fromisoformat(item["start"]),
                end=datetime.fromisoformat(item["end"]),
            )
            for item in loaded.fixed_shifts
        )
        return shifts.Layer(id=row.id, name=row.name, priority=row.position, fixed_shifts=fixed)
    # The rotation columns are set together whenever kind is rotation.
    assert row.rotation_unit is not None
    assert row.rotation_length is not None
    assert row.start_date is not None
    assert row.handoff_time is not None
    unit = shifts.RotationUnit(row.rotation_unit)
    rotation = shifts.Rotation(
        members=tuple(loaded.members),
        anchor=shifts.rotation_anchor(row.start_date, row.handoff_time, row.handoff_day, unit),
        length=shifts.UNIT_LENGTH[unit] * row.rotation_length,
        restrictions=tuple(restriction_from_json(item) for item in row.restrictions),
    )
    return shifts.Layer(id=row.id, name=row.name, priority=row.position, rotation=rotation)


async def load_overrides(
    session: AsyncSession, schedule_id: uuid.UUID, start: datetime, end: datetime
) -> list[shifts.Override]:
    rows = (
        await session.scalars(
            select(ScheduleOverride)
            .where(
                ScheduleOverride.schedule_id == schedule_id,
                ScheduleOverride.end_at > start,
                ScheduleOverride.start_at < end,
            )
            .order_by(ScheduleOverride.created_at, ScheduleOverride.id)
        )
    ).all()
    return [
        shifts.Override(
            id=row.id, user_id=row.user_id, start=row.start_at, end=row.end_at, order=order
        )
        for order, row in enumerate(rows)
    ]


async def compute_shifts(
    session: AsyncSession, schedule: Schedule, start: datetime, end: datetime
) -> list[shifts.Shift]:
    """Return the final shifts of a schedule in [start, end), clipped to that window."""
    layers = [to_layer(loaded) for loaded in await load_layers(session, schedule.id)]
    overrides = await load_overrides(session, schedule.id, start, end)
    return shifts.final_shifts(layers, overrides, zone(schedule.time_zone), start, end)


async def on_call(session: AsyncSession, schedule: Schedule, at: datetime) -> shifts.Shift | None:
    """Return the shift covering ``at`` with its end, or None when nobody is on call."""
    layers = [to_layer(loaded) for loaded in await load_layers(session, schedule.id)]
    horizon = shifts.ON_CALL_HORIZONS[-1]
    overrides = await load_overrides(session, schedule.id, at, at + horizon)
    return shifts.on_call_at(layers, overrides, zone(schedule.time_zone), at)


def check_window(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise Unprocessable(
            "Times need a UTC offset, e.g. 2026-03-01T09:00:00Z.",
            field="from" if start.tzinfo is None else "to",
        )
    if end <= start:
        raise Unprocessable("to must be after from.", field="to")
    if end - start > MAX_WINDOW:
        raise Unprocessable(
            f"The window spans at most {MAX_WINDOW.days} days; request several.", field="to"
        )


async def check_users_exist(
    session: AsyncSession, user_ids: Collection[uuid.UUID], field: str
) -> None:
    found = set((await session.scalars(select(User.id).where(User.id.in_(user_ids)))).all())
    missing = [user_id for user_id in user_ids if user_id not in found]
    if missing:
        raise Unprocessable(f"User {missing[0]} does not exist.", field=field)


def _rotation_values(body: LayerIn) -> dict[str, Any]:
    handoff_day = body.handoff_day
    if body.rotation_unit == shifts.RotationUnit.weeks and handoff_day is None:
        handoff_day = body.start_date.weekday()
    return {
        "name": body.name,
        "kind": LayerKind.rotation,
        "rotation_unit": body.rotation_unit.value,
        "rotation_length": body.rotation_length,
        "start_date": body.start_date,
        "handoff_time": body.handoff_time,
        "handoff_day": handoff_day,
        "restrictions": [restriction_json(item) for item in body.restrictions],
    }


def restriction_json(restriction: RestrictionIn) -> dict[str, Any]:
    return {
        "start_time": restriction.start_time.isoformat(timespec="minutes"),
        "end_time": restriction.end_time.isoformat(timespec="minutes"),
        "start_day": restriction.start_day,
        "end_day": restriction.end_day,
    }


async def add_rotation_layer(
    session: AsyncSession, schedule: Schedule, body: LayerIn, *, field: str
) -> ScheduleLayer:
    """Add a rotation layer on top of the schedule's layers."""
    await check_users_exist(session, body.members, f"{field}.members")
    layer = ScheduleLayer(
        schedule_id=schedule.id, position=await next_position(session, schedule.id)
    )
    for name, value in _rotation_values(body).items():
        setattr(layer, name, value)
    session.add(layer)
    await session.flush()
    await set_members(session, layer, body.members)
    return layer


async def update_rotation_layer(
    session: AsyncSession, layer: ScheduleLayer, members: list[uuid.UUID], body: LayerIn
) -> None:
    """Replace a rotation layer's settings with ``body`` (the merged old and new values)."""
    await check_users_exist(session, body.members, "members")
    for name, value in _rotation_values(body).items():
        setattr(layer, name, value)
    if body.members != members:
        await set_members(session, layer, body.members)
    await session.flush()


async def next_position(session: AsyncSession, schedule_id: uuid.UUID) -> int:
    positions = (
        await session.scalars(
            select(ScheduleLayer.position).where(ScheduleLayer.schedule_id == schedule_id)
        )
    ).all()
    return max(positions, default=-1) + 1


async def set_members(
    session: AsyncSession, layer: ScheduleLayer, members: Sequence[uuid.UUID]
) -> None:
    await session.execute(
        delete(ScheduleLayerMember).where(ScheduleLayerMember.layer_id == layer.id)
    )
    for position, user_id in enumerate(members):
        session.add(ScheduleLayerMember(layer_id=layer.id, position=position, user_id=user_id))
    await session.flush()


async def reorder_layers(
    session: AsyncSession, schedule_id: uuid.UUID, order: Sequence[uuid.UUID]
) -> None:
    layers = {loaded.row.id: loaded.row for loaded in await load_layers(session, schedule_id)}
    if sorted(order) != sorted(layers) or len(set(order)) != len(order):
        raise Unprocessable(
            "layer_order must list every layer id of the schedule exactly once.",
            field="layer_order",
        )
    # Two passes, so the unique (schedule, position) index never meets a duplicate.
    for offset, layer_id in enumerate(order):
        layers[layer_id].position = len(order) + offset
    await session.flush()
    for position, layer_id in enumerate(order):
        layers[layer_id].position = position
    await session.flush()


async def user_ids_on_schedule(session: AsyncSession, schedule_id: uuid.UUID) -> list[uuid.UUID]:
    """Return every user a schedule can put on call: members, imported shifts, overrides."""
    seen: dict[uuid.UUID, None] = {}
    for loaded in await load_layers(session, schedule_id):
        for user_id in loaded.members:
            seen.setdefault(user_id, None)
        for item in loaded.row.fixed_shifts:
            seen.setdefault(uuid.UUID(item["user_id"]), None)
    now = utcnow()
    overrides = await session.scalars(
        select(ScheduleOverride.user_id).where(
            ScheduleOverride.schedule_id == schedule_id, ScheduleOverride.end_at > now
        )
    )
    for user_id in overrides.all():
        seen.setdefault(user_id, None)
    return list(seen)


async def schedules_of_user(session: AsyncSession, user_id: uuid.UUID) -> list[Schedule]:
    """Return the schedules that can put ``user_id`` on call."""
    ids = set(
        (
            await session.scalars(
                select(ScheduleLayer.schedule_id)
                .join(ScheduleLayerMember, ScheduleLayerMember.layer_id == ScheduleLayer.id)
                .where(ScheduleLayerMember.user_id == user_id)
            )
        ).all()
    )
    ids |= set(
        (
            await session.scalars(
                select(ScheduleOverride.schedule_id).where(ScheduleOverride.user_id == user_id)
            )
        ).all()
    )
    calendar_layers = await session.scalars(
        select(ScheduleLayer).where(ScheduleLayer.kind == LayerKind.calendar)
    )
    for layer in calendar_layers.all():
        if any(item["user_id"] == str(user_id) for item in layer.fixed_shifts):
            ids.add(layer.schedule_id)
    if not ids:
        return []
    rows = await session.scalars(
        select(Schedule).where(Schedule.id.in_(ids)).order_by(Schedule.name)
    )
    return list(rows.all())
