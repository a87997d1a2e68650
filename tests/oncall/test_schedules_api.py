"""The schedules API: layers, who is on call, shifts, overrides, warnings and calendars."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import httpx
import icalendar
import pytest

from tests.support.oncall import OnCallApi

pytestmark = pytest.mark.asyncio

PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def api(client: httpx.AsyncClient, auth: dict[str, str]) -> OnCallApi:
    return OnCallApi(client, auth)


async def weekly_schedule(api: OnCallApi, members: list[str]) -> dict[str, object]:
    schedule: dict[str, object] = await api.post(
        "/v1/schedules",
        {
            "name": "Platform",
            "time_zone": "America/New_York",
            "layers": [
                {
                    "name": "weekly",
                    "members": members,
                    "rotation_unit": "weeks",
                    "rotation_length": 1,
                    "start_date": "2026-03-02",
                    "handoff_time": "09:00",
                    "handoff_day": 0,
                }
            ],
        },
    )
    return schedule


async def test_oncall_follows_local_handoff_across_dst(api: OnCallApi) -> None:
    ada = await api.user("Ada")
    bob = await api.user("Bob")
    schedule = await weekly_schedule(api, [ada, bob])

    # Monday 9 March 2026 09:00 in New York is EDT (13:00 UTC); a week before it was EST.
    before = await api.get(f"/v1/schedules/{schedule['id']}/oncall", at="2026-03-09T12:59:00Z")
    after = await api.get(f"/v1/schedules/{schedule['id']}/oncall", at="2026-03-09T13:00:00Z")

    assert before["user"]["id"] == ada
    assert before["source"] == "layer"
    assert before["layer_name"] == "weekly"
    assert before["until"] == "2026-03-09T13:00:00Z"
    assert after["user"]["id"] == bob
    assert after["until"] == "2026-03-16T13:00:00Z"


async def test_shifts_and_override_keep_boundaries(api: OnCallApi) -> None:
    ada = await api.user("Ada")
    bob = await api.user("Bob")
    cleo = await api.user("Cleo")
    schedule = await weekly_schedule(api, [ada, bob])
    override = await api.post(
        f"/v1/schedules/{schedule['id']}/overrides",
        {"user_id": cleo, "start": "2026-03-08T00:00:00Z", "end": "2026-03-10T00:00:00Z"},
    )

    shifts = await api.get(
        f"/v1/schedules/{schedule['id']}/shifts",
        **{"from": "2026-03-02T00:00:00Z", "to": "2026-03-16T00:00:00Z"},
    )

    spans = [(s["start"], s["end"], s["user"]["id"], s["source"]) for s in shifts["shifts"]]
    assert spans == [
        ("2026-03-02T14:00:00Z", "2026-03-08T00:00:00Z", ada, "layer"),
        ("2026-03-08T00:00:00Z", "2026-03-10T00:00:00Z", cleo, "override"),
        ("2026-03-10T00:00:00Z", "2026-03-16T00:00:00Z", bob, "layer"),
    ]
    assert shifts["shifts"][1]["override_id"] == override["id"]

    deleted = await api.client.delete(
        f"/v1/schedules/{schedule['id']}/overrides/{override['id']}", headers=api.auth
    )
    assert deleted.status_code == 204
    shifts = await api.get(
        f"/v1/schedules/{schedule['id']}/shifts",
        **{"from": "2026-03-08T00:00:00Z", "to": "2026-03-10T00:00:00Z"},
    )
    assert [s["user"]["id"] for s in shifts["shifts"]] == [ada, bob]


async def test_restricted_top_layer_wins_inside_window(api: OnCallApi) -> None:
    ada = await api.user("Ada")
    bob = await api.user("Bob")
    schedule = await weekly_schedule(api, [ada])
    await api.post(
        f"/v1/schedules/{schedule['id']}/layers",
        {
            "name": "business hours",
            "members": [bob],
            "rotation_unit": "days",
            "rotation_length": 1,
            "start_date": "2026-03-01",
            "handoff_time": "00:00",
            "restrictions": [
                {"start_time": "09:00", "end_time": "17:00", "start_day": 0, "end_day": 0}
            ],
        },
    )

    monday = await api.get(f"/v1/schedules/{schedule['id']}/oncall", at="2026-03-09T15:00:00Z")
    evening = await api.get(f"/v1/schedules/{schedule['id']}/oncall", at="2026-03-09T22:00:00Z")

    assert monday["user"]["id"] == bob
    assert monday["layer_name"] == "business hours"
    assert monday["until"] == "2026-03-09T21:00:00Z"
    assert evening["user"]["id"] == ada


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "time_zone": "Mars/Olympus"}, "body.time_zone"),
        (
            {
                "name": "x",
                "time_zone": "UTC",
                "layers": [
                    {
                        "name": "l",
                        "members": [],
                        "rotation_unit": "days",
                        "rotation_length": 1,
                        "start_date": "2026-01-01",
                        "handoff_time": "09:00",
                    }
                ],
            },
            "body.layers.0.members",
        ),
        (
            {
                "name": "x",
                "time_zone": "UTC",
                "layers": [
                    {
                        "name": "l",
                        "members": ["01a24000-0000-7000-8000-000000000000"],
                        "rotation_unit": "weeks",
                        "rotation_length": 52,
                        "start_date": "2026-01-01",
                        "handoff_time": "09:00",
                    }
                ],
            },
            "body.layers.0",
        ),
    ],
)
async def test_create_schedule_rejects_bad_input(
    api: OnCallApi, body: dict[str, object], field: str
) -> None:
    response = await api.client.post("/v1/schedules", json=body, headers=api.auth)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["field"] == field


async def test_unknown_member_and_window_errors(api: OnCallApi) -> None:
    ada = await api.user("Ada")
    schedule = await weekly_schedule(api, [ada])
    unknown = await api.client.post(
        f"/v1/schedules/{schedule['id']}/overrides",
        json={
            "user_id": "01a24000-0000-7000-8000-000000000000",
            "start": "2026-03-01T00:00:00Z",
            "end": "2026-03-02T00:00:00Z",
        },
        headers=api.auth,
    )
    naive = await api.client.get(
        f"/v1/schedules/{schedule['id']}/oncall",
        params={"at": "2026-03-01T00:00:00"},
        headers=api.auth,
    )
    too_wide = await api.client.get(
        f"/v1/schedules/{schedule['id']}/shifts",
        params={"from": "2026-01-01T00:00:00Z", "to": "2027-06-01T00:00:00Z"},
        headers=api.auth,
    )
    backwards = await api.client.post(
        f"/v1/schedules/{schedule['id']}/overrides",
        json={"user_id": ada, "start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
        headers=api.auth,
    )

    assert unknown.status_code == 422
    assert unknown.json()["field"] == "user_id"
    assert naive.status_code == 422
    assert naive.json()["field"] == "at"
    assert too_wide.status_code == 422
    assert too_wide.json()["field"] == "to"
    assert backwards.status_code == 422


async def test_schedule_warns_about_unreachable_member(api: OnCallApi) -> None:
    ada = await api.user("Ada")
    silent = await api.user("Silent", contact=None)

    schedule = await weekly_schedule(api, [ada, silent])

    warnings = schedule["warnings"]
    assert isinstance(warnings, list)
    assert [warning["user_id"] for warning in warnings] == [silent]
    assert "has no contact method" in warnings[0]["message"]


async def test_layer_update_and_reorder(api: OnCallApi) -> None:
    ada = await api.user("Ada")
    bob = await api.user("Bob")
    schedule = await weekly_schedule(api, [ada])
    second = await api.post(
        f"/v1/schedules/{schedule['id']}/layers",
        {
            "name": "second",
            "members": [bob],
            "rotation_unit": "hours",
            "rotation_length": 12,
            "start_date": "2026-03-01",
            "handoff_time": "08:00",
        },
    )
    first_id = schedule["layers"][0]["id"]  # type: ignore[index]

    updated = await api.patch(
        f"/v1/schedules/{schedule['id']}/layers/{second['id']}", {"members": [ada, bob]}
    )
    reordered = await api.patch(
        f"/v1/schedules/{schedule['id']}", {"layer_order": [second["id"], first_id]}
    )
    bad_order = await api.client.patch(
        f"/v1/schedules/{schedule['id']}", json={"layer_order": [first_id]}, headers=api.auth
    )

    assert updated["members"] == [ada, bob]
    assert updated["rotation_unit"] == "hours"
    assert [layer["name"] for layer in reordered["layers"]] == ["second", "weekly"]
    assert bad_order.status_code == 422
    assert bad_order.json()["field"] == "layer_order"


async def test_ical_export_is_valid_and_feed_needs_token(
    api: OnCallApi, client: httpx.AsyncClient
) -> None:
    ada = await api.user("Ada")
    bob = await api.user("Bob")
    schedule = await weekly_schedule(api, [ada, bob])

    export = await client.get(
        f"/v1/schedules/{schedule['id']}/calendar.ics",
        params={"from": "2026-03-02T00:00:00Z", "to": "2026-03-23T00:00:00Z"},
        headers=api.auth,
    )
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(export.content)
    events = list(calendar.walk("VEVENT"))
    assert len(events) == 3
    assert str(calendar["version"]) == "2.0"
    assert events[0]["dtstart"].dt == datetime(2026, 3, 2, 14, tzinfo=UTC)
    assert events[1]["dtstart"].dt == datetime(2026, 3, 9, 13, tzinfo=UTC)
    assert str(events[0]["attendee"]) == "mailto:ada@example.com"
    assert len({str(event["uid"]) for event in events}) == 3

    feed = await api.get(f"/v1/schedules/{schedule['id']}/calendar-feed")
    path = feed["url"].removeprefix("http://tocsin.test")
    subscribed = await client.get(path)
    forged = await client.get(path.rsplit("=", 1)[0] + "=" + "0" * 40)
    assert subscribed.status_code == 200
    assert icalendar.Calendar.from_ical(subscribed.content).walk("VEVENT")
    assert forged.status_code == 401
    assert forged.headers["content-type"] == PROBLEM_JSON

    user_feed = await api.get(f"/v1/users/{bob}/calendar-feed")
    user_calendar = await client.get(user_feed["url"].removeprefix("http://tocsin.test"))
    assert user_calendar.status_code == 200
    attendees = {
        str(event["attendee"])
        for event in icalendar.Calendar.from_ical(user_calendar.content).walk("VEVENT")
    }
    assert attendees == {"mailto:bob@example.com"}


IMPORTED = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Example//Other tool//EN\r
BEGIN:VEVENT\r
UID:weekly-ada@example\r
DTSTAMP:20260101T000000Z\r
DTSTART;TZID=Europe/London:%(start)s\r
DTEND;TZID=Europe/London:%(end)s\r
RRULE:FREQ=WEEKLY;COUNT=4\r
SUMMARY:On call\r
ATTENDEE;CN=Ada:mailto:ADA@example.com\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:stranger@example\r
DTSTAMP:20260101T000000Z\r
DTSTART:%(start)sZ\r
DTEND:%(end)sZ\r
SUMMARY:On call: stranger@elsewhere.org\r
END:VEVENT\r
END:VCALENDAR\r
"""


def on_today(calendar: bytes) -> bytes:
    """Fill a calendar template with a shift from 09:00 to 17:00 today."""
    today = datetime.now(UTC).date()
    return calendar % {
        b"start": today.strftime("%Y%m%dT090000").encode(),
        b"end": today.strftime("%Y%m%dT170000").encode(),
    }


async def test_calendar_import_matches_users_and_reports_strangers(
    api: OnCallApi, client: httpx.AsyncClient
) -> None:
    ada = await api.user("Ada")
    schedule = await api.post("/v1/schedules", {"name": "Imported", "time_zone": "Europe/London"})
    body = on_today(IMPORTED)
    path = f"/v1/schedules/{schedule['id']}/calendar-import"
    headers = {**api.auth, "content-type": "text/calendar"}

    strict = await client.post(path, content=body, headers=headers)
    lenient = await client.post(
        path, content=body, headers=headers, params={"skip_unmatched": "true"}
    )
    garbage = await client.post(path, content=b"not a calendar", headers=headers)

    assert strict.status_code == 422
    assert "stranger@elsewhere.org" in strict.text
    assert lenient.status_code == 201, lenient.text
    result = lenient.json()
    assert result["imported"] == 4
    assert [item["uid"] for item in result["skipped"]] == ["stranger@example"]
    assert result["layer"]["kind"] == "calendar"
    assert garbage.status_code == 422
    start = datetime.combine(datetime.now(UTC).date(), datetime.min.time()).replace(
        hour=12, tzinfo=UTC
    )
    on_call = await api.get(f"/v1/schedules/{schedule['id']}/oncall", at=start.isoformat())
    assert on_call["user"]["id"] == ada


EMPTY_CALENDAR = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example//EN\r\nEND:VCALENDAR\r\n"
STRANGERS_ONLY = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Example//Other tool//EN\r
BEGIN:VEVENT\r
UID:stranger@example\r
DTSTAMP:20260101T000000Z\r
DTSTART:%(start)sZ\r
DTEND:%(end)sZ\r
SUMMARY:On call: stranger@elsewhere.org\r
END:VEVENT\r
END:VCALENDAR\r
"""


async def test_calendar_import_rejects_empty_calendar(
    api: OnCallApi, client: httpx.AsyncClient
) -> None:
    schedule = await api.post("/v1/schedules", {"name": "Empty", "time_zone": "UTC"})
    path = f"/v1/schedules/{schedule['id']}/calendar-import"
    headers = {**api.auth, "content-type": "text/calendar"}
    strangers_only = on_today(STRANGERS_ONLY)

    empty = await client.post(path, content=EMPTY_CALENDAR, headers=headers)
    unmatched = await client.post(
        path, content=strangers_only, headers=headers, params={"skip_unmatched": "true"}
    )

    assert empty.status_code == 422, empty.text
    assert empty.headers["content-type"] == PROBLEM_JSON
    assert empty.json()["field"] == "body"
    assert "no events" in empty.json()["detail"]
    assert unmatched.status_code == 422, unmatched.text
    assert unmatched.json()["field"] == "body"
    assert "stranger@elsewhere.org" in unmatched.text
    stored = await api.get(f"/v1/schedules/{schedule['id']}")
    assert stored["layers"] == []


async def test_calendar_import_fails_for_user_deleted_meanwhile(
    api: OnCallApi, client: httpx.AsyncClient, raw_db: asyncpg.Connection
) -> None:
    ada = await api.user("Ada")
    schedule = await api.post("/v1/schedules", {"name": "Imported", "time_zone": "UTC"})
    body = on_today(IMPORTED)
    path = f"/v1/schedules/{schedule['id']}/calendar-import"
    headers = {**api.auth, "content-type": "text/calendar"}

    # A delete locks Ada's row while the import runs, and commits once the import waits.
    transaction = raw_db.transaction()
    await transaction.start()
    await raw_db.execute("SELECT 1 FROM users WHERE id = $1::uuid FOR UPDATE", ada)
    request = asyncio.create_task(
        client.post(path, content=body, headers=headers, params={"skip_unmatched": "true"})
    )
    async with asyncio.timeout(30):
        while not await raw_db.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"):
            await asyncio.sleep(0.05)
    await raw_db.execute("DELETE FROM users WHERE id = $1::uuid", ada)
    await transaction.commit()
    answer = await request

    assert answer.status_code == 409, answer.text
    assert answer.json()["field"] == "body"
    assert ada in answer.json()["detail"]
    stored = await api.get(f"/v1/schedules/{schedule['id']}")
    assert stored["layers"] == []
