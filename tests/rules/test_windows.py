"""Maintenance window occurrences (one-off and RRULE, across DST) and silence timing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.rules.matchers import parse_matchers
from app.rules.windows import MaintenanceWindow, Silence, WindowError

SERVICE = uuid.UUID("00000000-0000-0000-0000-0000000000a1")


def window(
    starts_at: datetime, ends_at: datetime, *, rrule: str | None = None, zone: str = "UTC"
) -> MaintenanceWindow:
    return MaintenanceWindow(
        id=uuid.uuid4(),
        service_id=SERVICE,
        name="deploys",
        starts_at=starts_at,
        ends_at=ends_at,
        time_zone=zone,
        rrule=rrule,
    )


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# Sundays 01:00-04:00 in Berlin, first on 2026-03-22 (CET, UTC+1).
SUNDAY_NIGHTS = dict(
    starts_at=utc(2026, 3, 22, 0, 0),
    ends_at=utc(2026, 3, 22, 3, 0),
    rrule="FREQ=WEEKLY;BYDAY=SU",
    zone="Europe/Berlin",
)


class TestOccurrences:
    @pytest.mark.parametrize(
        ("at", "expected"),
        [
            (utc(2026, 3, 1, 9, 59), None),
            (utc(2026, 3, 1, 10, 0), (utc(2026, 3, 1, 10, 0), utc(2026, 3, 1, 12, 0))),
            (utc(2026, 3, 1, 11, 59), (utc(2026, 3, 1, 10, 0), utc(2026, 3, 1, 12, 0))),
            (utc(2026, 3, 1, 12, 0), None),
        ],
    )
    def test_one_off(self, at: datetime, expected: tuple[datetime, datetime] | None) -> None:
        found = window(utc(2026, 3, 1, 10, 0), utc(2026, 3, 1, 12, 0)).occurrence_at(at)
        assert (None if found is None else (found.starts_at, found.ends_at)) == expected

    @pytest.mark.parametrize(
        ("at", "expected"),
        [
            # First occurrence, winter time: 01:00-04:00 CET is 00:00-03:00 UTC.
            (utc(2026, 3, 22, 0, 0), (utc(2026, 3, 22, 0, 0), utc(2026, 3, 22, 3, 0))),
            (utc(2026, 3, 22, 3, 0), None),
            # Monday in between: nothing.
            (utc(2026, 3, 23, 1, 0), None),
            # DST day (clocks skip 02:00-03:00): 01:00 CET to 04:00 CEST is 00:00-02:00 UTC.
            (utc(2026, 3, 29, 0, 30), (utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 2, 0))),
            (utc(2026, 3, 29, 2, 0), None),
            # Summer time: 01:00-04:00 CEST is 23:00-02:00 UTC, starting on Saturday in UTC.
            (utc(2026, 4, 4, 23, 0), (utc(2026, 4, 4, 23, 0), utc(2026, 4, 5, 2, 0))),
            (utc(2026, 4, 4, 22, 59), None),
            # The day clocks go back (2026-10-25): 01:00 CEST to 04:00 CET is 23:00-03:00 UTC.
            (utc(2026, 10, 25, 2, 30), (utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 3, 0))),
        ],
    )
    def test_weekly_rrule_follows_wall_clock(
        self, at: datetime, expected: tuple[datetime, datetime] | None
    ) -> None:
        found = window(**SUNDAY_NIGHTS).occurrence_at(at)  # type: ignore[arg-type]
        actual = None if found is None else (found.starts_at, found.ends_at)
        assert actual == expected

    def test_memo_answers_again_for_later_instants(self) -> None:
        weekly = window(**SUNDAY_NIGHTS)  # type: ignore[arg-type]
        inside = weekly.occurrence_at(utc(2026, 3, 22, 0, 30))
        assert inside is not None
        assert weekly.occurrence_at(utc(2026, 3, 22, 2, 59)) == inside
        assert weekly.occurrence_at(utc(2026, 3, 22, 3, 0)) is None
        assert weekly.occurrence_at(utc(2026, 3, 28, 23, 59)) is None
        following = weekly.occurrence_at(utc(2026, 3, 29, 0, 0))
        assert following is not None
        assert following.starts_at == utc(2026, 3, 29, 0, 0)

    def test_until_ends_recurrence(self) -> None:
        limited = window(
            utc(2026, 3, 2, 8, 0),
            utc(2026, 3, 2, 9, 0),
            rrule="FREQ=DAILY;UNTIL=20260304T080000Z",
        )
        assert limited.occurrence_at(utc(2026, 3, 4, 8, 30)) is not None
        assert limited.occurrence_at(utc(2026, 3, 5, 8, 30)) is None
        assert limited.next_occurrence(utc(2026, 3, 4, 9, 0)) is None

    def test_next_occurrence(self) -> None:
        weekly = window(**SUNDAY_NIGHTS)  # type: ignore[arg-type]
        upcoming = weekly.next_occurrence(utc(2026, 3, 23, 0, 0))
        assert upcoming is not None
        assert upcoming.starts_at == utc(2026, 3, 29, 0, 0)

    @pytest.mark.parametrize(
        ("rrule", "length"),
        [
            ("FREQ=HOURLY", timedelta(minutes=61)),
            ("FREQ=HOURLY", timedelta(hours=1)),
            # Monday and Tuesday nights: the shortest gap, Monday to Tuesday, is one day.
            ("FREQ=WEEKLY;BYDAY=MO,TU", timedelta(hours=25)),
        ],
    )
    def test_touching_occurrences_rejected(self, rrule: str, length: timedelta) -> None:
        start = utc(2026, 3, 2, 1, 0)
        with pytest.raises(WindowError) as error:
            window(start, start + length, rrule=rrule).check_occurrences_apart()
        assert error.value.field == "ends_at"
        assert "would never end" in error.value.message

    @pytest.mark.parametrize(
        ("rrule", "length"),
        [
            ("FREQ=HOURLY;INTERVAL=2", timedelta(hours=1)),
            ("FREQ=WEEKLY;BYDAY=MO,TU", timedelta(hours=23)),
        ],
    )
    def test_separate_occurrences_accepted(self, rrule: str, length: timedelta) -> None:
        start = utc(2026, 3, 2, 1, 0)
        recurring = window(start, start + length, rrule=rrule)
        recurring.check_occurrences_apart()
        assert recurring.occurrence_at(start + length) is None

    @pytest.mark.parametrize(
        ("kwargs", "field", "message"),
        [
            ({"rrule": "FREQ=FORTNIGHTLY"}, "rrule", "invalid RRULE"),
            ({"rrule": "FREQ=MINUTELY"}, "rrule", "not supported"),
            ({"rrule": "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY"}, "rrule", "without DTSTART"),
            ({"rrule": "FREQ=DAILY;UNTIL=20200101T000000Z"}, "rrule", "no occurrence"),
            ({"zone": "Atlantis/Capital"}, "time_zone", "unknown time zone"),
            ({"ends_at": utc(2026, 3, 1, 9, 0)}, "ends_at", "after starts_at"),
        ],
    )
    def test_invalid_window(self, kwargs: dict[str, object], field: str, message: str) -> None:
        values: dict[str, object] = {
            "starts_at": utc(2026, 3, 1, 10, 0),
            "ends_at": utc(2026, 3, 1, 12, 0),
            **kwargs,
        }
        with pytest.raises(WindowError) as error:
            window(**values)  # type: ignore[arg-type]
        assert error.value.field == field
        assert message in error.value.message


class TestSilenceTimes:
    def silence(self, **overrides: object) -> Silence:
        values: dict[str, object] = {
            "id": uuid.uuid4(),
            "service_id": None,
            "matchers": tuple(parse_matchers('env="prod"')),
            "starts_at": utc(2026, 3, 1, 10, 0),
            "ends_at": utc(2026, 3, 1, 12, 0),
            "until_resolved": False,
            "expired_at": None,
            "created_by": {"type": "api_key", "name": "ops"},
            "comment": "deploy",
            **overrides,
        }
        return Silence(**values)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("overrides", "at", "expected"),
        [
            ({}, utc(2026, 3, 1, 9, 59), False),
            ({}, utc(2026, 3, 1, 10, 0), True),
            ({}, utc(2026, 3, 1, 11, 59, 59), True),
            ({}, utc(2026, 3, 1, 12, 0), False),
            ({"expired_at": utc(2026, 3, 1, 11, 0)}, utc(2026, 3, 1, 11, 0), False),
            ({"ends_at": None, "until_resolved": True}, utc(2027, 1, 1), True),
        ],
    )
    def test_in_effect(self, overrides: dict[str, object], at: datetime, expected: bool) -> None:
        assert self.silence(**overrides).in_effect_at(at) is expected

    def test_expiry_applies_to_the_microsecond(self) -> None:
        ends = utc(2026, 3, 1, 12, 0)
        silence = self.silence(ends_at=ends)
        assert silence.in_effect_at(ends - timedelta(microseconds=1)) is True
        assert silence.in_effect_at(ends) is False
