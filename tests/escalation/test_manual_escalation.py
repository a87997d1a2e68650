"""Escalate an incident to a level, reassign it to a user: actions with 409 on bad states."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app.incidents.paging import PagingContext
from tests.support.jobs import advance_clock, drain_jobs, queued_jobs
from tests.support.oncall import OnCallApi, paged_users, timeline_kinds, user_target

pytestmark = pytest.mark.asyncio

PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def api(client: httpx.AsyncClient, auth: dict[str, str]) -> OnCallApi:
    return OnCallApi(client, auth)


async def setup_incident(
    api: OnCallApi,
    demo: dict[str, Any],
    path: str,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> tuple[str, list[str]]:
    users = [await api.user(name) for name in ("Ada", "Bob", "Cleo")]
    policy = await api.policy(
        "Manual", [([user_target(user)], 15) for user in users], repeat_count=0
    )
    await api.use_policy(demo["services"][0]["id"], policy)
    incident = await api.fire_alert(path, "Manual")
    await drain_jobs(raw_db, paging)
    return incident, users


async def test_escalate_pages_level_now_and_continues(
    api: OnCallApi,
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> None:
    incident, (ada, bob, cleo) = await setup_incident(api, demo, alertmanager_path, raw_db, paging)

    escalated = await api.post(f"/v1/incidents/{incident}/escalate", {"level": 2}, expected=200)
    await drain_jobs(raw_db, paging)

    # Step numbers count jobs: step 1 was the automatic step that escalation replaced.
    assert escalated["status"] == "triggered"
    assert await paged_users(raw_db, incident) == [(0, ada), (2, bob)]
    # The automatic step that was due for level 2 is stale now and pages nobody.
    await advance_clock(raw_db, timedelta(minutes=15))
    await drain_jobs(raw_db, paging)
    assert await paged_users(raw_db, incident) == [(0, ada), (2, bob), (3, cleo)]
    assert "escalation.manual" in await timeline_kinds(raw_db, incident)


async def test_escalate_acknowledged_incident_triggers_it_again(
    api: OnCallApi,
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> None:
    incident, (ada, _, cleo) = await setup_incident(api, demo, alertmanager_path, raw_db, paging)
    await api.post(f"/v1/incidents/{incident}/acknowledge", {}, expected=200)

    escalated = await api.post(f"/v1/incidents/{incident}/escalate", {"level": 3}, expected=200)
    await drain_jobs(raw_db, paging)

    assert escalated["status"] == "triggered"
    assert escalated["acknowledged_at"] is None
    assert await paged_users(raw_db, incident) == [(0, ada), (2, cleo)]
    assert "incident.retriggered" in await timeline_kinds(raw_db, incident)


async def test_escalate_rejects_bad_level_and_state(
    api: OnCallApi,
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> None:
    incident, _ = await setup_incident(api, demo, alertmanager_path, raw_db, paging)

    too_high = await api.client.post(
        f"/v1/incidents/{incident}/escalate", json={"level": 4}, headers=api.auth
    )
    assert too_high.status_code == 422
    assert too_high.headers["content-type"] == PROBLEM_JSON
    assert too_high.json()["field"] == "level"

    await api.post(f"/v1/incidents/{incident}/resolve", {}, expected=200)
    resolved = await api.client.post(
        f"/v1/incidents/{incident}/escalate", json={"level": 1}, headers=api.auth
    )
    assert resolved.status_code == 409
    assert resolved.headers["content-type"] == PROBLEM_JSON
    assert resolved.json()["field"] == "status"
    assert "resolved" in resolved.json()["detail"]
    reassigned = await api.client.post(
        f"/v1/incidents/{incident}/reassign",
        json={"user_id": str(uuid.uuid4())},
        headers=api.auth,
    )
    assert reassigned.status_code == 409
    assert reassigned.json()["field"] == "status"
    missing = await api.client.post(
        f"/v1/incidents/{uuid.uuid4()}/escalate", json={"level": 1}, headers=api.auth
    )
    assert missing.status_code == 404


async def test_reassign_pages_user_and_cancels_pending_rule_steps(
    api: OnCallApi,
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> None:
    ada = await api.user("Ada", contact=None)
    at_once = await api.contact_method(ada, "log")
    later = await api.contact_method(ada, "log")
    await api.post(f"/v1/users/{ada}/notification-rules", {"contact_method_id": at_once})
    await api.post(
        f"/v1/users/{ada}/notification-rules", {"contact_method_id": later, "delay_minutes": 5}
    )
    bob = await api.user("Bob")
    dan = await api.user("Dan")
    policy = await api.policy("Reassign", [([user_target(ada)], 10), ([user_target(bob)], 10)])
    await api.use_policy(demo["services"][0]["id"], policy)
    incident = await api.fire_alert(alertmanager_path, "Reassign")
    await drain_jobs(raw_db, paging)
    jobs = await queued_jobs(raw_db)
    assert [job["entrypoint"] for job in jobs] == ["notification.rule_step", "escalation.step"]

    missing = await api.client.post(
        f"/v1/incidents/{incident}/reassign", json={"user_id": str(uuid.uuid4())}, headers=api.auth
    )
    assert missing.status_code == 422
    assert missing.json()["field"] == "user_id"
    await api.post(f"/v1/incidents/{incident}/reassign", {"user_id": dan}, expected=200)
    await drain_jobs(raw_db, paging)

    assert await paged_users(raw_db, incident) == [(0, ada), (2, dan)]
    jobs = await queued_jobs(raw_db)
    assert [job["entrypoint"] for job in jobs] == ["escalation.step"]
    cancelled = await raw_db.fetchval(
        "SELECT count(*) FROM pgqueuer_log WHERE status = 'canceled'"
        " AND entrypoint = 'notification.rule_step'"
    )
    assert cancelled == 1
    # The policy goes on behind the new assignee after the level's delay.
    await advance_clock(raw_db, timedelta(minutes=10))
    await drain_jobs(raw_db, paging)
    assert await paged_users(raw_db, incident) == [(0, ada), (2, dan), (3, bob)]
    assert "incident.reassigned" in await timeline_kinds(raw_db, incident)
