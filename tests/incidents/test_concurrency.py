"""Races between concurrent requests, spread over two API processes sharing one database.

The guarantees rest on unique indexes and row locks in PostgreSQL, not on locks inside
one process; running two servers proves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from app.incidents.paging import PagingContext
from tests.conftest import TEST_SECRET_KEY
from tests.incidents.test_grouping import alert, body
from tests.support.jobs import drain_jobs
from tests.support.processes import start_tocsin

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e]

REQUESTS = 200


@pytest_asyncio.fixture
async def servers(
    database_url: str, demo: dict[str, Any], tmp_path: Path
) -> AsyncIterator[list[str]]:
    processes = []
    urls = []
    try:
        for index in range(2):
            process, url = await start_tocsin(
                database_url,
                tmp_path / f"server-{index}",
                TEST_SECRET_KEY,
                "--no-worker",
                "--no-migrate",
            )
            processes.append(process)
            urls.append(url)
        yield urls
    finally:
        for process in processes:
            process.stop()


async def post_all(
    urls: list[str], path: str, bodies: list[dict[str, Any]]
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(urls[index % 2] + path, json=payload)
                for index, payload in enumerate(bodies)
            )
        )


async def test_identical_triggers_make_one_alert_and_one_page(
    servers: list[str], alertmanager_path: str, raw_db: asyncpg.Connection, paging: PagingContext
) -> None:
    answers = await post_all(servers, alertmanager_path, [body(alert("same"))] * REQUESTS)
    assert [answer.status_code for answer in answers] == [202] * REQUESTS
    alerts = await raw_db.fetch("SELECT event_count FROM alerts")
    assert [row["event_count"] for row in alerts] == [REQUESTS]
    assert await raw_db.fetchval("SELECT count(*) FROM incidents") == 1
    ran = await drain_jobs(raw_db, paging)
    assert ran.count("incident.triggered") == 1
    # One page per contact method of the demo responder (the console log).
    assert await raw_db.fetchval("SELECT count(*) FROM notifications") == 1


async def test_distinct_alerts_of_one_group_share_an_incident(
    servers: list[str], alertmanager_path: str, raw_db: asyncpg.Connection
) -> None:
    bodies = [body(alert(f"alert-{index}")) for index in range(REQUESTS)]
    answers = await post_all(servers, alertmanager_path, bodies)
    assert [answer.status_code for answer in answers] == [202] * REQUESTS
    incidents = await raw_db.fetch("SELECT alert_count FROM incidents")
    assert [row["alert_count"] for row in incidents] == [REQUESTS]
    assert (
        await raw_db.fetchval("SELECT count(*) FROM alerts WHERE incident_id IS NOT NULL")
        == REQUESTS
    )


async def test_acknowledge_and_resolve_race(
    servers: list[str],
    alertmanager_path: str,
    auth: dict[str, str],
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> None:
    count = 20
    bodies = [body(alert(f"race-{index}"), group_key=f"race-{index}") for index in range(count)]
    opened = await post_all(servers, alertmanager_path, bodies)
    ids = [answer.json()["incidents_opened"][0] for answer in opened]
    async with httpx.AsyncClient(timeout=60, headers=auth) as client:
        answers = await asyncio.gather(
            *(
                request
                for incident_id in ids
                for request in (
                    client.post(f"{servers[0]}/v1/incidents/{incident_id}/acknowledge"),
                    client.post(f"{servers[1]}/v1/incidents/{incident_id}/resolve"),
                )
            )
        )
    acknowledge_answers = answers[0::2]
    for incident_id, acknowledged in zip(ids, acknowledge_answers, strict=True):
        assert acknowledged.status_code in (200, 409), acknowledged.text
        assert (
            await raw_db.fetchval("SELECT status FROM incidents WHERE id = $1", incident_id)
            == "resolved"
        )
        kinds = [
            row["kind"]
            for row in await raw_db.fetch(
                "SELECT kind FROM timeline_entries WHERE incident_id = $1 "
                "AND kind IN ('incident.acknowledged', 'incident.resolved') ORDER BY at, id",
                incident_id,
            )
        ]
        if acknowledged.status_code == 200:
            assert kinds == ["incident.acknowledged", "incident.resolved"]
        else:
            assert kinds == ["incident.resolved"]
    assert all(answer.status_code == 200 for answer in answers[1::2])

    # Every page job runs after the resolves: none of them may send a page now.
    await drain_jobs(raw_db, paging)
    sent = await raw_db.fetchval(
        "SELECT count(*) FROM notifications WHERE event = 'incident.triggered' AND status = 'sent'"
    )
    assert sent == 0


async def test_threshold_race_leaves_no_alert_pending(
    servers: list[str],
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    raw_db: asyncpg.Connection,
) -> None:
    service_id = demo["services"][0]["id"]
    async with httpx.AsyncClient(timeout=60, headers=auth) as client:
        configured = await client.patch(
            f"{servers[0]}/v1/services/{service_id}",
            json={
                "grouping_mode": "by_fields",
                "grouping_fields": ["cluster"],
                "alert_threshold_count": 3,
            },
        )
    assert configured.status_code == 200, configured.text
    groups, per_group = 8, 6
    bodies = [
        body(alert(f"c{group}-{index}", cluster=f"c{group}"), group_key=f"c{group}-{index}")
        for index in range(per_group)
        for group in range(groups)
    ]

    answers = await post_all(servers, alertmanager_path, bodies)

    assert [answer.status_code for answer in answers] == [202] * len(bodies)
    pending = await raw_db.fetchval("SELECT count(*) FROM alerts WHERE incident_id IS NULL")
    assert pending == 0
    incidents = await raw_db.fetch("SELECT alert_count FROM incidents")
    assert [row["alert_count"] for row in incidents] == [per_group] * groups
