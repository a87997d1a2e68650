"""Heartbeats: pings move the deadline, a missed deadline opens an incident, a ping ends it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app.incidents.paging import PagingContext
from app.jobs.queue import HEARTBEAT_CHECK
from app.jobs.worker import HANDLERS
from tests.ingest.conftest import PROBLEM_JSON, count, integration_id
from tests.support.jobs import advance_clock, drain_jobs, queued_jobs

pytestmark = pytest.mark.asyncio

INTERVAL = timedelta(seconds=300)


async def heartbeat_checks(raw_db: asyncpg.Connection) -> list[asyncpg.Record]:
    return [job for job in await queued_jobs(raw_db) if job["entrypoint"] == HEARTBEAT_CHECK]


async def test_never_seen_does_not_alarm(
    client: httpx.AsyncClient,
    demo: Any,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> None:
    assert await heartbeat_checks(raw_db) == []
    await advance_clock(raw_db, timedelta(days=1))
    await drain_jobs(raw_db, paging, include_delayed=True)
    assert await count(raw_db, "incidents") == 0


async def test_ping_queues_one_check(
    client: httpx.AsyncClient, keys: dict[str, str], raw_db: asyncpg.Connection
) -> None:
    path = f"/ingest/heartbeat/{keys['heartbeat']}"
    first = await client.post(path)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "ok"
    second = await client.get(path)
    assert second.status_code == 200, second.text
    assert second.json()["next_deadline_at"] > first.json()["next_deadline_at"]
    [job] = await heartbeat_checks(raw_db)
    # The check due at the first deadline re-queues itself for the later one.
    assert timedelta(seconds=290) < job["due_in"] <= INTERVAL


async def test_missed_opens_then_ping_resolves(
    client: httpx.AsyncClient,
    keys: dict[str, str],
    raw_db: asyncpg.Connection,
    paging: PagingContext,
    auth: dict[str, str],
) -> None:
    path = f"/ingest/heartbeat/{keys['heartbeat']}"
    assert (await client.post(path, content=b"backup done")).status_code == 200

    # Not yet due: nothing happens.
    await drain_jobs(raw_db, paging)
    assert await count(raw_db, "incidents") == 0

    await advance_clock(raw_db, INTERVAL)
    # The check is due but the deadline (wall clock) has not passed: it re-queues itself.
    await drain_jobs(raw_db, paging)
    assert await count(raw_db, "incidents") == 0
    assert len(await heartbeat_checks(raw_db)) == 1

    # Move the deadline into the past, as if the interval had elapsed without a ping.
    await raw_db.execute(
        "UPDATE heartbeats SET deadline_at = now() - interval '1 second', "
        "last_ping_at = now() - interval '301 seconds'"
    )
    await advance_clock(raw_db, INTERVAL)
    ran = await drain_jobs(raw_db, paging)
    assert HEARTBEAT_CHECK in ran
    incident = await raw_db.fetchrow("SELECT id, status, title FROM incidents")
    assert incident["status"] == "triggered"
    assert incident["title"].startswith("Heartbeat Demo heartbeat missed")
    assert await count(raw_db, "notifications", "event = 'incident.triggered'") == 1

    recovered = await client.post(path)
    assert recovered.status_code == 200, recovered.text
    assert recovered.json()["incidents_resolved"] == [str(incident["id"])]
    assert await raw_db.fetchval("SELECT status FROM incidents") == "resolved"

    log = await client.get(
        f"/v1/integrations/{await integration_id(raw_db, 'heartbeat')}/events", headers=auth
    )
    outcomes = [item["outcome"] for item in log.json()["items"]]
    assert outcomes == ["alert.resolved", "alert.created"]


async def test_check_job_runs_twice_alarms_once(
    client: httpx.AsyncClient,
    keys: dict[str, str],
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> None:
    await client.post(f"/ingest/heartbeat/{keys['heartbeat']}")
    await raw_db.execute("UPDATE heartbeats SET deadline_at = now() - interval '1 second'")
    heartbeat_id = await integration_id(raw_db, "heartbeat")
    for _ in range(2):
        await paging_check(paging, heartbeat_id)
    assert await count(raw_db, "incidents") == 1
    assert await count(raw_db, "alerts") == 1


async def paging_check(paging: PagingContext, heartbeat_id: str) -> None:
    await HANDLERS[HEARTBEAT_CHECK](paging, {"integration_id": heartbeat_id})


async def test_disabled_heartbeat_does_not_alarm(
    client: httpx.AsyncClient,
    keys: dict[str, str],
    raw_db: asyncpg.Connection,
    paging: PagingContext,
    auth: dict[str, str],
) -> None:
    await client.post(f"/ingest/heartbeat/{keys['heartbeat']}")
    heartbeat_id = await integration_id(raw_db, "heartbeat")
    await client.patch(f"/v1/integrations/{heartbeat_id}", json={"enabled": False}, headers=auth)
    await raw_db.execute("UPDATE heartbeats SET deadline_at = now() - interval '1 second'")
    await paging_check(paging, heartbeat_id)
    assert await count(raw_db, "incidents") == 0


async def test_bearer_ping(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    response = await client.get(
        "/ingest/heartbeat", headers={"Authorization": f"Bearer {keys['heartbeat']}"}
    )
    assert response.status_code == 200, response.text


async def test_interval_required(
    client: httpx.AsyncClient, demo: dict[str, Any], auth: dict[str, str]
) -> None:
    service_id = demo["services"][0]["id"]
    path = f"/v1/services/{service_id}/integrations"
    missing = await client.post(path, json={"name": "nightly", "kind": "heartbeat"}, headers=auth)
    assert missing.status_code == 422
    assert missing.headers["content-type"] == PROBLEM_JSON
    assert missing.json()["field"] == "settings.interval_seconds"
    too_short = await client.post(
        path,
        json={"name": "nightly", "kind": "heartbeat", "settings": {"interval_seconds": 1}},
        headers=auth,
    )
    assert too_short.status_code == 422
    created = await client.post(
        path,
        json={"name": "nightly", "kind": "heartbeat", "settings": {"interval_seconds": 86400}},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    assert created.json()["url"].endswith(f"/ingest/heartbeat/{created.json()['key']}")


async def test_shorter_interval_queues_earlier_check(
    client: httpx.AsyncClient,
    keys: dict[str, str],
    raw_db: asyncpg.Connection,
    auth: dict[str, str],
) -> None:
    path = f"/ingest/heartbeat/{keys['heartbeat']}"
    await client.post(path)
    heartbeat_id = await integration_id(raw_db, "heartbeat")
    patched = await client.patch(
        f"/v1/integrations/{heartbeat_id}",
        json={"settings": {"interval_seconds": 60}},
        headers=auth,
    )
    assert patched.status_code == 200, patched.text
    await client.post(path)
    due = sorted(job["due_in"] for job in await heartbeat_checks(raw_db))
    assert len(due) == 2
    assert due[0] <= timedelta(seconds=60)
