"""Compute who is on call: rotation shifts, restrictions, layers and overrides. No I/O.

A schedule is a stack of layers plus overrides. Each layer yields shifts. Where several
layers have someone at the same instant, the layer with the highest ``priority`` wins, and
an override beats every layer. Shift boundaries of the layers stay where they are: an
override in the middle of a shift splits it into the part before and the part after.

All instants are aware UTC datetimes. Rotation boundaries are defined in local time and
mapped to instants by ``localtime.to_instant``.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from app.oncall.localtime import combine, local_dates, to_instant, to_local


class RotationUnit(StrEnum):
    hours = "hours"
    days = "days"
    weeks = "weeks"


UNIT_LENGTH = {
    RotationUnit.hours: timedelta(hours=1),
    RotationUnit.days: timedelta(days=1),
    RotationUnit.weeks: timedelta(weeks=1),
}


class SourceType(StrEnum):
    layer = "layer"
    override = "override"


@dataclass(frozen=True, slots=True)
class Restriction:
    """A window in local time during which a layer's member is on call.

    Without ``start_day`` the window repeats every day; with it, every week, from
    ``start_day`` at ``start_time`` to ``end_day`` at ``end_time`` (0 is Monday). A window
    whose end is not after its start wraps past midnight or past the end of the week.
    """

    start_time: time
    end_time: time
    start_day: int | None = None
    end_day: int | None = None


@dataclass(frozen=True, slots=True)
class Rotation:
    """Members take turns of ``length`` local time, starting at the local time ``anchor``."""

    members: tuple[uuid.UUID, ...]
    anchor: datetime
    length: timedelta
    restrictions: tuple[Restriction, ...] = ()


@dataclass(frozen=True, slots=True)
class FixedShift:
    user_id: uuid.UUID
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Layer:
    """A rotation, or a list of fixed shifts (an imported calendar); one of the two is set."""

    id: uuid.UUID
    name: str
    priority: int
    rotation: Rotation | None = None
    fixed_shifts: tuple[FixedShift, ...] = ()


@dataclass(frozen=True, slots=True)
class Override:
    id: uuid.UUID
    user_id: uuid.UUID
    start: datetime
    end: datetime
    # Where overrides overlap the higher order wins (the one created last).
    order: int = 0


@dataclass(frozen=True, slots=True)
class Shift:
    start: datetime
    end: datetime
    user_id: uuid.UUID
    source: SourceType
    source_id: uuid.UUID
    layer_name: str | None = None
    # The turn number within a rotation (0 for the turn that starts at the anchor).
    turn: int | None = None


def rotation_anchor(
    start_date: date, handoff_time: time, handoff_day: int | None, unit: RotationUnit
) -> datetime:
    """Return the local time of a rotation's first handoff.

    That is ``handoff_time`` on ``start_date``, or for a weekly rotation with a handoff
    day, on the first such weekday on or after ``start_date``.
    """
    day = start_date
    if unit == RotationUnit.weeks and handoff_day is not None:
        day += timedelta(days=(handoff_day - start_date.weekday()) % 7)
    return combine(day, handoff_time)


def rotation_turns(rotation: Rotation, tz: ZoneInfo, start: datetime, end: datetime) -> list[Shift]:
    """Return the turns of a rotation that overlap [start, end), unrestricted and unclipped.

    Turn k runs from the local time ``anchor + k * length`` to ``anchor + (k + 1) * length``,
    so each turn has the configured local length except where a boundary falls in a
    skipped hour and moves to the end of the gap. A turn that a gap swallows whole is
    dropped.
    """
    if not rotation.members or end <= start:
        return []
    local_start = to_local(start, tz)
    # Local clocks step back by at most a few hours, so starting two turns early is safe.
    first = max(0, (local_start - rotation.anchor) // rotation.length - 2)
    turns: list[Shift] = []
    turn = first
    boundary = to_instant(rotation.anchor + turn * rotation.length, tz)
    while boundary < end:
        following = to_instant(rotation.anchor + (turn + 1) * rotation.length, tz)
        if following > start and following > boundary:
            turns.append(
                Shift(
                    start=boundary,
                    end=following,
                    user_id=rotation.members[turn % len(rotation.members)],
                    source=SourceType.layer,
                    source_id=uuid.UUID(int=0),
                    turn=turn,
                )
            )
        turn += 1
        boundary = following
    return turns


def restriction_windows(
    restrictions: Sequence[Restriction], tz: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Return the instants covered by restriction windows around [start, end), merged."""
    windows: list[tuple[datetime, datetime]] = []
    for day in local_dates(start, end, tz, margin_days=8):
        for restriction in restrictions:
            window = _window_starting_on(restriction, day)
            if window is None:
                continue
            window_start, window_end = (to_instant(local, tz) for local in window)
            if window_end > start and window_start < end and window_end > window_start:
                windows.append((window_start, window_end))
    return _merge_intervals(windows)


def _window_starting_on(restriction: Restriction, day: date) -> tuple[datetime, datetime] | None:
    if restriction.start_day is None:
        local_start = combine(day, restriction.start_time)
        local_end = combine(day, restriction.end_time)
        if local_end <= local_start:
            local_end += timedelta(days=1)
        return local_start, local_end
    if day.weekday() != restriction.start_day:
        return None
    end_day = restriction.start_day if restriction.end_day is None else restriction.end_day
    local_start = combine(day, restriction.start_time)
    local_end = combine(
        day + timedelta(days=(end_day - restriction.start_day) % 7), restriction.end_time
    )
    if local_end <= local_start:
        local_end += timedelta(weeks=1)
    return local_start, local_end


def _merge_intervals(
    intervals: Iterable[tuple[datetime, datetime]],
) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for interval_start, interval_end in sorted(intervals):
        if merged and interval_start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], interval_end))
        else:
            merged.append((interval_start, interval_end))
    return merged


def restrict(shifts: Sequence[Shift], windows: Sequence[tuple[datetime, datetime]]) -> list[Shift]:
    """Cut shifts down to the parts inside the windows (both sorted, windows disjoint)."""
    restricted: list[Shift] = []
    first_window = 0
    for shift in shifts:
        while first_window < len(windows) and windows[first_window][1] <= shift.start:
            first_window += 1
        index = first_window
        while index < len(windows) and windows[index][0] < shift.end:
            piece_start = max(shift.start, windows[index][0])
            piece_end = min(shift.end, windows[index][1])
            if piece_end > piece_start:
                restricted.append(_replace_span(shift, piece_start, piece_end))
            index += 1
    return restricted


def layer_shifts(layer: Layer, tz: ZoneInfo, start: datetime, end: datetime) -> list[Shift]:
    """Return a layer's own shifts overlapping [start, end), restricted but unclipped."""
    if layer.rotation is not None:
        shifts = rotation_turns(layer.rotation, tz, start, end)
        if layer.rotation.restrictions:
            windows = restriction_windows(layer.rotation.restrictions, tz, start, end)
            shifts = restrict(shifts, windows)
    else:
        shifts = [
            Shift(
                start=fixed.start,
                end=fixed.end,
                user_id=fixed.user_id,
                source=SourceType.layer,
                source_id=layer.id,
            )
            for fixed in layer.fixed_shifts
            if fixed.end > start and fixed.start < end and fixed.end > fixed.start
        ]
    return [
        Shift(
            start=shift.start,
            end=shift.end,
            user_id=shift.user_id,
            source=SourceType.layer,
            source_id=layer.id,
            layer_name=layer.name,
            turn=shift.turn,
        )
        for shift in shifts
    ]


@dataclass(order=True, slots=True)
class _Candidate:
    # heapq pops the smallest, so the rank is negated: the highest rank comes first.
    negative_rank: tuple[int, int, float]
    end: datetime = field(compare=False)
    shift: Shift = field(compare=False)


def final_shifts(
    layers: Sequence[Layer],
    overrides: Sequence[Override],
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
) -> list[Shift]:
    """Return who is on call in [start, end), as shifts clipped to that window.

    The result is sorted, its shifts never overlap, and a stretch where no layer and no
    override has anyone is a gap between shifts.
    """
    if end <= start:
        return []
    ranked: list[tuple[tuple[int, int, float], Shift]] = []
    for layer in layers:
        for shift in layer_shifts(layer, tz, start, end):
            # Within an imported calendar the event that starts later takes over.
            ranked.append(((0, layer.priority, shift.start.timestamp()), shift))
    for override in overrides:
        if override.end > start and override.start < end and override.end > override.start:
            shift = Shift(
                start=override.start,
                end=override.end,
                user_id=override.user_id,
                source=SourceType.override,
                source_id=override.id,
            )
            ranked.append(((1, override.order, 0.0), shift))
    return _sweep(ranked, start, end)


def _sweep(
    ranked: list[tuple[tuple[int, int, float], Shift]], start: datetime, end: datetime
) -> list[Shift]:
    """Pick the highest-ranked shift at every instant; merge neighbouring pieces of one shift."""
    ranked.sort(key=lambda item: item[1].start)
    boundaries = sorted(
        {start, end}
        | {shift.start for _, shift in ranked if start < shift.start < end}
        | {shift.end for _, shift in ranked if start < shift.end < end}
    )
    result: list[Shift] = []
    active: list[_Candidate] = []
    next_index = 0
    for piece_start, piece_end in itertools.pairwise(boundaries):
        while next_index < len(ranked) and ranked[next_index][1].start <= piece_start:
            rank, shift = ranked[next_index]
            heapq.heappush(active, _Candidate((-rank[0], -rank[1], -rank[2]), shift.end, shift))
            next_index += 1
        while active and active[0].end <= piece_start:
            heapq.heappop(active)
        if not active:
            continue
        winner = active[0].shift
        if result and result[-1].end == piece_start and _same_shift(result[-1], winner):
            result[-1] = _replace_span(result[-1], result[-1].start, piece_end)
        else:
            result.append(_replace_span(winner, piece_start, piece_end))
    return result


def _same_shift(piece: Shift, shift: Shift) -> bool:
    return (
        piece.source == shift.source
        and piece.source_id == shift.source_id
        and piece.user_id == shift.user_id
        and piece.turn == shift.turn
    )


def _replace_span(shift: Shift, start: datetime, end: datetime) -> Shift:
    return Shift(
        start=start,
        end=end,
        user_id=shift.user_id,
        source=shift.source,
        source_id=shift.source_id,
        layer_name=shift.layer_name,
        turn=shift.turn,
    )


# How far ahead ``on_call_at`` looks for the end of the current shift. Rotations,
# overrides and imported events are all capped below this span.
ON_CALL_HORIZONS = (timedelta(days=1), timedelta(days=8), timedelta(days=36), timedelta(days=367))


def on_call_at(
    layers: Sequence[Layer], overrides: Sequence[Override], tz: ZoneInfo, at: datetime
) -> Shift | None:
    """Return the shift covering ``at`` with its full end, or None when nobody is on call.

    The shift's start is ``at`` itself: the computation looks forward only.
    """
    at = at.astimezone(UTC)
    for horizon in ON_CALL_HORIZONS:
        shifts = final_shifts(layers, overrides, tz, at, at + horizon)
        if not shifts or shifts[0].start > at:
            return None
        if shifts[0].end < at + horizon:
            return shifts[0]
    return shifts[0]
