"""Shift computation on known DST dates, overrides and layers."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.oncall.localtime import to_instant
from app.oncall.shifts import (
    FixedShift,
    Layer,
    Override,
    Restriction,
    Rotation,
    RotationUnit,
    SourceType,
    final_shifts,
    on_call_at,
    rotation_anchor,
)

ALICE, BOB, CAROL, DAVE = (uuid.UUID(int=number) for number in range(1, 5))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def daily(
    anchor: datetime, *members: uuid.UUID, restrictions: tuple[Restriction, ...] = ()
) -> Layer:
    rotation = Rotation(
        members=members, anchor=anchor, length=timedelta(days=1), restrictions=restrictions
    )
    return Layer(id=uuid.uuid4(), name="daily", priority=0, rotation=rotation)


@pytest.mark.parametrize(
    ("zone_name", "handoff", "day", "expected"),
    [
        # London springs from 01:00 GMT to 02:00 BST on 29 March 2026.
        ("Europe/London", time(1, 30), date(2026, 3, 29), utc(2026, 3, 29, 1, 0)),
        # New York springs from 02:00 EST to 03:00 EDT on 8 March 2026.
        ("America/New_York", time(2, 30), date(2026, 3, 8), utc(2026, 3, 8, 7, 0)),
        ("America/New_York", time(2, 0), date(2026, 3, 8), utc(2026, 3, 8, 7, 0)),
        # Lord Howe springs from 02:00 (+10:30) to 02:30 (+11) on 4 October 2026.
        ("Australia/Lord_Howe", time(2, 15), date(2026, 10, 4), utc(2026, 10, 3, 15, 30)),
    ],
)
def test_handoff_in_skipped_hour_moves_to_gap_end(
    zone_name: str, handoff: time, day: date, expected: datetime
) -> None:
    tz = ZoneInfo(zone_name)
    layer = daily(datetime.combine(day - timedelta(days=3), handoff), ALICE, BOB)
    start = to_instant(datetime.combine(day - timedelta(days=2), time(12)), tz)

    shifts = final_shifts([layer], [], tz, start, start + timedelta(days=4))

    boundaries = [shift.start for shift in shifts[1:]]
    assert expected in boundaries
    before = next(shift for shift in shifts if shift.end == expected)
    after = next(shift for shift in shifts if shift.start == expected)
    assert before.user_id != after.user_id
    # The neighbouring handoffs stay at the local handoff time.
    assert before.start == to_instant(datetime.combine(day - timedelta(days=1), handoff), tz)
    assert after.end == to_instant(datetime.combine(day + timedelta(days=1), handoff), tz)


def test_handoff_in_repeated_hour_happens_once() -> None:
    tz = ZoneInfo("America/New_York")
    # New York falls back from 02:00 EDT to 01:00 EST on 1 November 2026.
    layer = daily(datetime(2026, 10, 25, 1, 30), ALICE, BOB)
    start = utc(2026, 10, 30, 12)

    shifts = final_shifts([layer], [], tz, start, start + timedelta(days=4))

    starts = [shift.start for shift in shifts]
    # 01:30 EDT, the first of the two 01:30s, is 05:30 UTC.
    assert utc(2026, 11, 1, 5, 30) in starts
    assert utc(2026, 11, 1, 6, 30) not in starts
    long_shift = next(shift for shift in shifts if shift.start == utc(2026, 10, 31, 5, 30))
    assert long_shift.end == utc(2026, 11, 1, 5, 30)
    following = next(shift for shift in shifts if shift.start == utc(2026, 11, 1, 5, 30))
    assert following.end == utc(2026, 11, 2, 6, 30)
    assert following.end - following.start == timedelta(hours=25)


def test_hourly_rotation_over_fall_back_has_no_overlap() -> None:
    tz = ZoneInfo("Europe/London")
    rotation = Rotation(
        members=(ALICE, BOB, CAROL), anchor=datetime(2026, 10, 24, 0, 0), length=timedelta(hours=1)
    )
    layer = Layer(id=uuid.uuid4(), name="hourly", priority=0, rotation=rotation)
    # London falls back from 02:00 BST to 01:00 GMT on 25 October 2026, at 01:00 UTC.
    start, end = utc(2026, 10, 24, 22), utc(2026, 10, 25, 4)

    shifts = final_shifts([layer], [], tz, start, end)

    for before, after in itertools.pairwise(shifts):
        assert before.end == after.start
    durations = {shift.start: shift.end - shift.start for shift in shifts}
    # The local hour 01:00-02:00 happens twice, so that turn lasts two real hours.
    assert durations[utc(2026, 10, 25, 0, 0)] == timedelta(hours=2)
    assert all(
        duration == timedelta(hours=1)
        for shift_start, duration in durations.items()
        if shift_start != utc(2026, 10, 25, 0, 0)
    )


def test_weekly_anchor_uses_handoff_day() -> None:
    # 1 January 2026 is a Thursday; the first Monday on or after it is 5 January.
    anchor = rotation_anchor(date(2026, 1, 1), time(9), 0, RotationUnit.weeks)
    assert anchor == datetime(2026, 1, 5, 9, 0)
    assert rotation_anchor(date(2026, 1, 1), time(9), 0, RotationUnit.days) == datetime(
        2026, 1, 1, 9, 0
    )


def test_override_spanning_several_shifts_keeps_boundaries() -> None:
    tz = ZoneInfo("Europe/London")
    layer = daily(datetime(2026, 3, 1, 9, 0), ALICE, BOB, CAROL)
    override = Override(
        id=uuid.uuid4(), user_id=DAVE, start=utc(2026, 3, 27, 12), end=utc(2026, 3, 30, 12)
    )
    start, end = utc(2026, 3, 26, 0), utc(2026, 4, 1, 0)

    plain = final_shifts([layer], [], tz, start, end)
    shifts = final_shifts([layer], [override], tz, start, end)

    overridden = [shift for shift in shifts if shift.source == SourceType.override]
    assert [(s.start, s.end, s.user_id) for s in overridden] == [
        (utc(2026, 3, 27, 12), utc(2026, 3, 30, 12), DAVE)
    ]
    before = next(shift for shift in shifts if shift.end == utc(2026, 3, 27, 12))
    after = next(shift for shift in shifts if shift.start == utc(2026, 3, 30, 12))
    # 27 March is still GMT (09:00 UTC); 30 March is BST (08:00 UTC).
    assert before.start == utc(2026, 3, 27, 9)
    assert after.end == utc(2026, 3, 31, 8)
    plain_outside = [
        s for s in plain if s.end <= utc(2026, 3, 27, 9) or s.start >= utc(2026, 3, 31, 8)
    ]
    for shift in plain_outside:
        assert shift in shifts


def test_later_override_wins_where_overrides_overlap() -> None:
    tz = ZoneInfo("UTC")
    layer = daily(datetime(2026, 1, 1, 0, 0), ALICE)
    first = Override(
        id=uuid.uuid4(), user_id=BOB, start=utc(2026, 2, 1, 0), end=utc(2026, 2, 1, 12), order=0
    )
    second = Override(
        id=uuid.uuid4(), user_id=CAROL, start=utc(2026, 2, 1, 6), end=utc(2026, 2, 1, 18), order=1
    )

    shifts = final_shifts([layer], [first, second], tz, utc(2026, 2, 1, 0), utc(2026, 2, 2, 0))

    assert [(s.start.hour, s.end.hour, s.user_id) for s in shifts] == [
        (0, 6, BOB),
        (6, 18, CAROL),
        (18, 0, ALICE),
    ]


def test_restricted_layer_lets_lower_through() -> None:
    tz = ZoneInfo("Asia/Kolkata")
    business_hours = Restriction(start_time=time(9), end_time=time(17))
    top = Layer(
        id=uuid.uuid4(),
        name="business hours",
        priority=1,
        rotation=Rotation(
            members=(ALICE,),
            anchor=datetime(2026, 1, 1, 0, 0),
            length=timedelta(weeks=1),
            restrictions=(business_hours,),
        ),
    )
    bottom = daily(datetime(2026, 1, 1, 0, 0), BOB)
    day_start = to_instant(datetime(2026, 1, 10, 0, 0), tz)

    only_top = final_shifts([top], [], tz, day_start, day_start + timedelta(days=1))
    both = final_shifts([bottom, top], [], tz, day_start, day_start + timedelta(days=1))

    assert [(s.start, s.end) for s in only_top] == [
        (day_start + timedelta(hours=9), day_start + timedelta(hours=17))
    ]
    assert [s.user_id for s in both] == [BOB, ALICE, BOB]
    assert [s.layer_name for s in both] == ["daily", "business hours", "daily"]


def test_weekly_restriction_wraps_over_week_end() -> None:
    tz = ZoneInfo("UTC")
    weekend = Restriction(start_day=4, start_time=time(18), end_day=0, end_time=time(8))
    layer = daily(datetime(2026, 1, 1, 0, 0), ALICE, restrictions=(weekend,))

    # 9 January 2026 is a Friday.
    shifts = final_shifts([layer], [], tz, utc(2026, 1, 5), utc(2026, 1, 19))

    # Monday 5 January until 08:00 is the end of the weekend before.
    assert (shifts[0].start, shifts[0].end) == (utc(2026, 1, 5, 0), utc(2026, 1, 5, 8))
    assert shifts[1].start == utc(2026, 1, 9, 18)
    assert all(shift.start.weekday() in (4, 5, 6, 0) for shift in shifts)
    # 8 hours, then 62 from Friday 18:00 to Monday 08:00, then 54 until the window ends.
    total = sum((shift.end - shift.start for shift in shifts), timedelta())
    assert total == timedelta(hours=8 + 62 + 54)


def test_imported_shifts_later_event_takes_over() -> None:
    tz = ZoneInfo("UTC")
    layer = Layer(
        id=uuid.uuid4(),
        name="imported",
        priority=0,
        fixed_shifts=(
            FixedShift(user_id=ALICE, start=utc(2026, 5, 1, 0), end=utc(2026, 5, 2, 0)),
            FixedShift(user_id=BOB, start=utc(2026, 5, 1, 20), end=utc(2026, 5, 3, 0)),
        ),
    )

    shifts = final_shifts([layer], [], tz, utc(2026, 5, 1), utc(2026, 5, 4))

    assert [(s.user_id, s.start, s.end) for s in shifts] == [
        (ALICE, utc(2026, 5, 1, 0), utc(2026, 5, 1, 20)),
        (BOB, utc(2026, 5, 1, 20), utc(2026, 5, 3, 0)),
    ]


def test_on_call_at_reports_full_shift_end() -> None:
    tz = ZoneInfo("Europe/London")
    layer = Layer(
        id=uuid.uuid4(),
        name="weekly",
        priority=0,
        rotation=Rotation(
            members=(ALICE, BOB), anchor=datetime(2026, 1, 5, 9, 0), length=timedelta(weeks=2)
        ),
    )

    current = on_call_at([layer], [], tz, utc(2026, 1, 6, 12))
    before_start = on_call_at([layer], [], tz, utc(2026, 1, 1, 12))

    assert current is not None
    assert current.user_id == ALICE
    assert current.end == utc(2026, 1, 19, 9)
    assert before_start is None
