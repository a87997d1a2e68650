"""Property tests of the shift computation over zones with DST changes, across years."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.oncall.localtime import is_skipped, to_instant, to_local
from app.oncall.shifts import (
    Layer,
    Override,
    Restriction,
    Rotation,
    Shift,
    SourceType,
    final_shifts,
    layer_shifts,
)

ZONES = ["Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
USERS = [uuid.UUID(int=number) for number in range(1, 7)]
ONE_SECOND = timedelta(seconds=1)

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """Return the instants from 2019 to 2034 at which the zone's UTC offset changes."""
    tz = ZoneInfo(zone_name)
    found = []
    instant = datetime(2019, 1, 1, tzinfo=UTC)
    while instant.year < 2034:
        following = instant + timedelta(hours=1)
        if instant.astimezone(tz).utcoffset() != following.astimezone(tz).utcoffset():
            found.append(following)
        instant = following
    return tuple(found)


def lengths() -> st.SearchStrategy[timedelta]:
    return st.one_of(
        st.integers(1, 36).map(lambda count: timedelta(hours=count)),
        st.integers(1, 10).map(lambda count: timedelta(days=count)),
        st.integers(1, 3).map(lambda count: timedelta(weeks=count)),
    )


@st.composite
def scenarios(draw: st.DrawFn, span_days: int) -> tuple[str, Rotation, datetime, datetime]:
    """A zone, a rotation and a window [start, end) after the rotation's first handoff.

    Mostly a handoff falls near a DST change of the zone, in its skipped or
    repeated hour or next to it, and the window spans that change.
    """
    zone_name = draw(st.sampled_from(ZONES))
    tz = ZoneInfo(zone_name)
    length = draw(lengths())
    members = tuple(draw(st.lists(st.sampled_from(USERS), min_size=1, max_size=5)))
    changes = transitions(zone_name)
    if changes and draw(st.integers(0, 4)) > 0:
        change = draw(st.sampled_from(changes))
        wall_clock = to_local(change - ONE_SECOND, tz) + ONE_SECOND
        # Quarter hours also hit Lord Howe's 30-minute change.
        wall_clock += timedelta(minutes=draw(st.sampled_from(range(-60, 60, 15))))
        anchor = wall_clock - draw(st.integers(1, 30)) * length
        start = change - timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
        start = max(start, to_instant(anchor, tz))
    else:
        day = draw(st.dates(min_value=date(2019, 1, 1), max_value=date(2030, 12, 31)))
        at = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30, 45])))
        anchor = datetime.combine(day, at)
        offset = timedelta(minutes=draw(st.integers(0, 3 * 365 * 24 * 60)))
        start = to_instant(anchor, tz) + offset
    end = start + timedelta(minutes=draw(st.integers(60, span_days * 24 * 60)))
    return zone_name, Rotation(members=members, anchor=anchor, length=length), start, end


def rotation_layer(rotation: Rotation, priority: int = 0, name: str = "layer") -> Layer:
    return Layer(id=uuid.uuid4(), name=name, priority=priority, rotation=rotation)


def assert_tiles(shifts: list[Shift], start: datetime, end: datetime) -> None:
    assert shifts, "no shifts in a window the rotation covers"
    assert shifts[0].start == start
    assert shifts[-1].end == end
    for before, after in itertools.pairwise(shifts):
        assert before.end == after.start, f"gap or overlap between {before} and {after}"
    for shift in shifts:
        assert shift.end > shift.start, f"empty shift {shift}"


def who_at(shifts: list[Shift], instant: datetime) -> uuid.UUID | None:
    for shift in shifts:
        if shift.start <= instant < shift.end:
            return shift.user_id
    return None


def assert_boundary_is_local(instant: datetime, nominal: datetime, tz: ZoneInfo) -> None:
    """A boundary sits at its nominal local time, or at the first instant after a skipped one."""
    if is_skipped(nominal, tz):
        event("boundary in a skipped hour")
        assert to_local(instant, tz) > nominal
        assert to_local(instant - ONE_SECOND, tz) < nominal
    else:
        assert to_local(instant, tz) == nominal
        # The first of the two instants a repeated local time has.
        assert instant.astimezone(tz).fold == 0


@PROPERTY_SETTINGS
@given(scenario=scenarios(span_days=40))
def test_rotation_tiles_window_with_local_length(
    scenario: tuple[str, Rotation, datetime, datetime],
) -> None:
    zone_name, rotation, start, end = scenario
    tz = ZoneInfo(zone_name)

    shifts = final_shifts([rotation_layer(rotation)], [], tz, start, end)

    assert_tiles(shifts, start, end)
    for shift in shifts:
        assert shift.turn is not None
        assert shift.user_id == rotation.members[shift.turn % len(rotation.members)]
        nominal_start = rotation.anchor + shift.turn * rotation.length
        nominal_end = nominal_start + rotation.length
        if shift.start != start:
            assert_boundary_is_local(shift.start, nominal_start, tz)
        if shift.end != end:
            assert_boundary_is_local(shift.end, nominal_end, tz)
        both_exist = not is_skipped(nominal_start, tz) and not is_skipped(nominal_end, tz)
        if shift.start != start and shift.end != end and both_exist:
            assert to_local(shift.end, tz) - to_local(shift.start, tz) == rotation.length


@PROPERTY_SETTINGS
@given(scenario=scenarios(span_days=20), data=st.data(), override_count=st.integers(1, 4))
def test_overrides_replace_only_what_they_cover(
    scenario: tuple[str, Rotation, datetime, datetime],
    data: st.DataObject,
    override_count: int,
) -> None:
    zone_name, rotation, start, end = scenario
    tz = ZoneInfo(zone_name)
    span_minutes = int((end - start).total_seconds() // 60)
    overrides = []
    for order in range(override_count):
        first = data.draw(st.integers(-600, span_minutes + 600))
        length = data.draw(st.integers(1, 5 * 24 * 60))
        overrides.append(
            Override(
                id=uuid.uuid4(),
                user_id=uuid.UUID(int=100 + order),
                start=start + timedelta(minutes=first),
                end=start + timedelta(minutes=first + length),
                order=order,
            )
        )
    layers = [rotation_layer(rotation)]

    plain = final_shifts(layers, [], tz, start, end)
    overridden = final_shifts(layers, overrides, tz, start, end)

    assert_tiles(overridden, start, end)
    points = {start, end - ONE_SECOND}
    for shift in plain + overridden:
        points |= {shift.start, shift.end - ONE_SECOND, shift.start + (shift.end - shift.start) / 2}
    for override in overrides:
        points |= {override.start, override.end, override.start - ONE_SECOND}
    for point in sorted(p for p in points if start <= p < end):
        covering = [o for o in overrides if o.start <= point < o.end]
        if covering:
            expected = max(covering, key=lambda o: o.order).user_id
        else:
            expected = who_at(plain, point)
        assert who_at(overridden, point) == expected, f"at {point}"

    override_edges = {o.start for o in overrides} | {o.end for o in overrides}
    plain_by_turn = {shift.turn: shift for shift in plain}
    for shift in overridden:
        if shift.source == SourceType.override:
            continue
        original = plain_by_turn[shift.turn]
        assert original.start <= shift.start
        assert shift.end <= original.end
        if shift.start not in override_edges:
            assert shift.start == original.start, "an override moved a shift boundary"
        if shift.end not in override_edges:
            assert shift.end == original.end, "an override moved a shift boundary"


def inside_restriction(local: datetime, restriction: Restriction) -> bool:
    """Tell from the local wall clock alone whether ``local`` lies in the window."""
    minute_of_week = local.weekday() * 1440 + local.hour * 60 + local.minute
    opens = restriction.start_time.hour * 60 + restriction.start_time.minute
    closes = restriction.end_time.hour * 60 + restriction.end_time.minute
    if restriction.start_day is None:
        minute, period = minute_of_week % 1440, 1440
    else:
        assert restriction.end_day is not None
        minute, period = minute_of_week, 7 * 1440
        opens += restriction.start_day * 1440
        closes += restriction.end_day * 1440
    return (minute - opens) % period < (closes - opens) % period


@PROPERTY_SETTINGS
@given(
    scenario=scenarios(span_days=15),
    top_length=lengths(),
    window_start=st.integers(0, 23),
    window_hours=st.integers(1, 23),
    weekday=st.one_of(st.none(), st.integers(0, 6)),
)
def test_higher_layer_wins_inside_its_restrictions(
    scenario: tuple[str, Rotation, datetime, datetime],
    top_length: timedelta,
    window_start: int,
    window_hours: int,
    weekday: int | None,
) -> None:
    zone_name, bottom_rotation, start, end = scenario
    tz = ZoneInfo(zone_name)
    restriction = Restriction(
        start_time=time(window_start),
        end_time=time((window_start + window_hours) % 24),
        start_day=weekday,
        end_day=None if weekday is None else (weekday + 1) % 7,
    )
    top_rotation = Rotation(
        members=(uuid.UUID(int=50), uuid.UUID(int=51)),
        anchor=bottom_rotation.anchor,
        length=top_length,
        restrictions=(restriction,),
    )
    bottom = rotation_layer(bottom_rotation, priority=0, name="bottom")
    upper = rotation_layer(top_rotation, priority=1, name="top")

    combined = final_shifts([bottom, upper], [], tz, start, end)
    bottom_only = final_shifts([bottom], [], tz, start, end)
    top_only = layer_shifts(upper, tz, start, end)

    assert_tiles(combined, start, end)
    points = {start}
    for shift in combined + bottom_only + top_only:
        points |= {shift.start, shift.end - ONE_SECOND, shift.end}
    for point in sorted(p for p in points if start <= p < end):
        top_user = who_at(top_only, point)
        expected = top_user if top_user is not None else who_at(bottom_only, point)
        assert who_at(combined, point) == expected, f"at {point}"
        # The second pass through a repeated hour reads the same on the clock as the
        # first, so the wall clock alone cannot tell which side of a boundary it is on.
        if point.astimezone(tz).fold == 0:
            inside = inside_restriction(to_local(point, tz), restriction)
            assert (top_user is not None) == inside, f"restriction at {to_local(point, tz)}"
