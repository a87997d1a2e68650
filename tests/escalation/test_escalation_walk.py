"""An incident walks its escalation policy on durable jobs, under a controllable clock."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app.incidents.paging import PagingContext
from tests.support.jobs import advance_clock, drain_jobs, queued_jobs
from tests.support.oncall import (
    OnCallApi,
    escalation_due_in,
    paged_users,
    schedule_target,
    team_target,
    timeline_kinds,
    user_target,
)

pytestmark = pytest.mark.asyncio


def assert_due_in(due: timedelta, minutes: int) -> None:
    # The job was enqueued a moment before this check, so it is due a little sooner.
    assert timedelta(minutes=minutes) - timedelta(seconds=30) < due <= timedelta(minutes=minutes)


@pytest.fixture
def api(client: httpx.AsyncClient, auth: dict[str, str]) -> OnCallApi:
    return OnCallApi(client, auth)


async def three_level_policy(
    api: OnCallApi, demo: dict[str, Any], repeat_count: int
) -> tuple[str, str, str]:
    """Level 1 pages Ada, level 2 the schedule Bob is on, level 3 the team Cleo is on."""
    ada = await api.user("Ada")
    bob = await api.user("Bob")
    cleo = await api.user("Cleo")
    bob_schedule = await api.rotation_schedule("Bob's rotation", [bob])
    cleo_schedule = await api.rotation_schedule("Cleo's rotation", [cleo])
    team = await api.post(
        "/v1/teams",
        {"name": "Storage", "schedule_id": cleo_schedule, "members": [{"user_id": cleo}]},
    )
    policy = await api.policy(
        "Three levels",
        [
            ([user_target(ada)], 5),
            ([schedule_target(bob_schedule)], 10),
            ([team_target(team["id"])], 5),
        ],
        repeat_count=repeat_count,
    )
    await api.use_policy(demo["services"][0]["id"], policy)
    return ada, bob, cleo


async def test_walks_levels_repeats_and_stops(
    api: OnCallApi,
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> None:
    ada, bob, cleo = await three_level_policy(api, demo, repeat_count=1)
    incident = await api.fire_alert(alertmanager_path, "DiskFull")

    await drain_jobs(raw_db, paging)
    assert await paged_users(raw_db, incident) == [(0, ada)]
    [due] = await escalation_due_in(raw_db)
    assert_due_in(due, 5)

    await advance_clock(raw_db, timedelta(minutes=4))
    await drain_jobs(raw_db, paging)
    assert await paged_users(raw_db, incident) == [(0, ada)], "level 2 paged before its time"

    await advance_clock(raw_db, timedelta(minutes=1))
    await drain_jobs(raw_db, paging)
    assert await paged_users(raw_db, incident) == [(0, ada), (1, bob)]
    [due] = await escalation_due_in(raw_db)
    assert_due_in(due, 10)

    await advance_clock(raw_db, timedelta(minutes=10))
    await drain_jobs(raw_db, paging)
    assert await paged_users(raw_db, incident) == [(0, ada), (1, bob), (2, cleo)]

    # The repeat starts again at level 1 after level 3's delay.
    await advance_clock(raw_db, timedelta(minutes=5))
    await drain_jobs(raw_db, paging)
    assert await paged_users(raw_db, incident) == [(0, ada), (1, bob), (2, cleo), (3, ada)]

    response = await api.client.post(f"/v1/incidents/{incident}/acknowledge", headers=api.auth)
    assert response.status_code == 200, response.text
    await advance_clock(raw_db, timedelta(hours=2))
    await drain_jobs(raw_db, paging)
    assert await paged_users(raw_db, incident) == [(0, ada), (1, bob), (2, cleo), (3, ada)]
    assert await escalation_due_in(raw_db) == []


async def test_policy_runs_out_after_repeats(
    api: OnCallApi,
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> None:
    ada, bob, cleo = await three_level_policy(api, demo, repeat_count=1)
    incident = await api.fire_alert(alertmanager_path, "CpuHot")

    await drain_jobs(raw_db, paging)
    for _ in range(8):
        await advance_clock(raw_db, timedelta(minutes=10))
        await drain_jobs(raw_db, paging)

    steps = await paged_users(raw_db, incident)
    assert [user for _, user in steps] == [ada, bob, cleo, ada, bob, cleo]
    assert [step for step, _ in steps] == [0, 1, 2, 3, 4, 5]
    assert "escalation.finished" in await timeline_kinds(raw_db, incident)


async def test_empty_schedule_skips_to_next_level_at_once(
    api: OnCallApi,
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> None:
    ada = await api.user("Ada")
    later = await api.post(
        "/v1/schedules",
        {
            "name": "Starts next year",
            "time_zone": "Europe/London",
            "layers": [
                {
                    "name": "future",
                    "members": [ada],
                    "rotation_unit": "weeks",
                    "rotation_length": 1,
                    "start_date": "2099-01-01",
                    "handoff_time": "09:00",
                }
            ],
        },
    )
    policy = await api.policy(
        "Empty first", [([schedule_target(later["id"])], 30), ([user_target(ada)], 30)]
    )
    await api.use_policy(demo["services"][0]["id"], policy)
    incident = await api.fire_alert(alertmanager_path, "QueueStuck")

    await drain_jobs(raw_db, paging)

    assert await paged_users(raw_db, incident) == [(1, ada)]
    kinds = await timeline_kinds(raw_db, incident)
    assert "escalation.target_skipped" in kinds
    assert "escalation.level_empty" in kinds
    assert kinds.index("escalation.level_empty") < kinds.index("escalation.paged")
    messages = await raw_db.fetch(
        "SELECT message FROM timeline_entries WHERE incident_id = $1 AND kind = $2",
        uuid.UUID(incident),
        "escalation.target_skipped",
    )
    assert "nobody is on call on schedule 'Starts next year'" in messages[0]["message"]


async def test_incident_keeps_policy_version_it_started_with(
    api: OnCallApi,
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> None:
    ada = await api.user("Ada")
    bob = await api.user("Bob")
    dan = await api.user("Dan")
    policy = await api.policy("Editable", [([user_target(ada)], 5), ([user_target(bob)], 5)])
    await api.use_policy(demo["services"][0]["id"], policy)
    incident = await api.fire_alert(alertmanager_path, "Latency")
    await drain_jobs(raw_db, paging)

    await api.patch(
        f"/v1/escalation-policies/{policy}",
        {"levels": [{"targets": [user_target(dan)], "delay_minutes": 5}] * 2},
    )
    await advance_clock(raw_db, timedelta(minutes=5))
    await drain_jobs(raw_db, paging)

    assert await paged_users(raw_db, incident) == [(0, ada), (1, bob)]
    snapshot = await raw_db.fetchval(
        "SELECT escalation_snapshot->>'version' FROM incidents WHERE id = $1", uuid.UUID(incident)
    )
    assert snapshot == "1"


async def test_rule_steps_page_later_and_stop_on_acknowledge(
    api: OnCallApi,
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> None:
    ada = await api.user("Ada", contact=None)
    push = await api.contact_method(ada, "log")
    sms_like = await api.contact_method(ada, "log")
    await api.post(f"/v1/users/{ada}/notification-rules", {"contact_method_id": push})
    await api.post(
        f"/v1/users/{ada}/notification-rules",
        {"contact_method_id": sms_like, "delay_minutes": 2},
    )
    await api.post(
        f"/v1/users/{ada}/notification-rules",
        {"contact_method_id": push, "delay_minutes": 10},
    )
    policy = await api.policy("Rules", [([user_target(ada)], 30)])
    await api.use_policy(demo["services"][0]["id"], policy)

    first = await api.fire_alert(alertmanager_path, "RulesFirst")
    await drain_jobs(raw_db, paging)
    methods = await raw_db.fetch(
        "SELECT contact_method_id FROM notifications WHERE incident_id = $1", uuid.UUID(first)
    )
    assert [str(row["contact_method_id"]) for row in methods] == [push]
    rule_jobs = [
        job for job in await queued_jobs(raw_db) if job["entrypoint"] == "notification.rule_step"
    ]
    assert len(rule_jobs) == 2

    await advance_clock(raw_db, timedelta(minutes=2))
    await drain_jobs(raw_db, paging)
    methods = await raw_db.fetch(
        "SELECT contact_method_id FROM notifications WHERE incident_id = $1 ORDER BY created_at",
        uuid.UUID(first),
    )
    assert [str(row["contact_method_id"]) for row in methods] == [push, sms_like]

    response = await api.client.post(f"/v1/incidents/{first}/acknowledge", headers=api.auth)
    assert response.status_code == 200
    await advance_clock(raw_db, timedelta(minutes=10))
    await drain_jobs(raw_db, paging)
    # Acknowledged notices may follow; only pages (incident.triggered) count here.
    count = await raw_db.fetchval(
        "SELECT count(*) FROM notifications WHERE incident_id = $1 "
        "AND event = 'incident.triggered'",
        uuid.UUID(first),
    )
    assert count == 2, "a rule step paged after the acknowledge"


async def test_low_urgency_without_rules_uses_default(
    api: OnCallApi,
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> None:
    ada = await api.user("Ada", contact=None)
    first = await api.contact_method(ada, "log")
    second = await api.contact_method(ada, "log")
    # Only a high-urgency rule: low-urgency pages fall back to every method at once.
    await api.post(
        f"/v1/users/{ada}/notification-rules",
        {"contact_method_id": first, "delay_minutes": 3, "urgency": "high"},
    )
    policy = await api.policy("Default rules", [([user_target(ada)], 30)])
    await api.use_policy(demo["services"][0]["id"], policy)
    incident = await api.fire_alert(alertmanager_path, "LowUrgency")
    await raw_db.execute("UPDATE incidents SET urgency = 'low' WHERE id = $1", uuid.UUID(incident))

    await drain_jobs(raw_db, paging)

    rows = await raw_db.fetch(
        "SELECT contact_method_id FROM notifications WHERE incident_id = $1", uuid.UUID(incident)
    )
    assert {str(row["contact_method_id"]) for row in rows} == {first, second}
    rules = await api.get(f"/v1/users/{ada}/notification-rules")
    assert rules["default_applies"] == {"high": False, "low": True}


async def test_empty_policy_waits_before_repeating(
    api: OnCallApi,
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> None:
    nobody = await api.post("/v1/schedules", {"name": "Nobody yet", "time_zone": "UTC"})
    policy = await api.policy(
        "Schedule only", [([schedule_target(nobody["id"])], 10)], repeat_count=3
    )
    await api.use_policy(demo["services"][0]["id"], policy)
    incident = await api.fire_alert(alertmanager_path, "QueueStuck")

    await drain_jobs(raw_db, paging)

    kinds = await timeline_kinds(raw_db, incident)
    assert kinds.count("escalation.level_empty") == 1
    [due] = await escalation_due_in(raw_db)
    assert_due_in(due, 10)
