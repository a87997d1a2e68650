"""The paging jobs: escalation step 0, delivery with retries, resolved notices."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest

from app.core.config import Settings
from app.core.db import create_sessionmaker
from app.incidents.paging import PagingContext
from app.jobs.worker import Worker
from app.notify.adapters.webhook import sign
from tests.ingest.test_alertmanager_router import alert_body
from tests.support.jobs import advance_clock, drain_jobs, queued_jobs
from tests.support.receiver import Receiver

pytestmark = pytest.mark.asyncio


async def add_webhook(
    client: httpx.AsyncClient, auth: dict[str, str], demo: dict[str, Any], url: str
) -> str:
    user_id = demo["users"][0]["id"]
    answer = await client.post(
        f"/v1/users/{user_id}/contact-methods",
        json={"kind": "webhook", "name": "hook", "address": url},
        headers=auth,
    )
    assert answer.status_code == 201, answer.text
    secret: str = answer.json()["secret"]
    return secret


async def test_page_is_signed_and_carries_incident(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    receiver: Receiver,
    paging: PagingContext,
    raw_db: asyncpg.Connection,
) -> None:
    secret = await add_webhook(client, auth, demo, receiver.url)
    opened = await client.post(alertmanager_path, json=alert_body("firing"))
    incident_id = opened.json()["incidents_opened"][0]

    ran = await drain_jobs(raw_db, paging)
    assert ran.count("notification.deliver") == 2  # log and webhook
    [request] = receiver.requests
    timestamp = request.headers["x-tocsin-signature"].split(",")[0].removeprefix("t=")
    assert request.headers["x-tocsin-signature"] == sign(secret, int(timestamp), request.body)
    body = json.loads(request.body)
    assert body["event"] == "incident.triggered"
    assert body["incident"]["id"] == incident_id
    assert body["incident"]["service"]["name"] == "Demo service"
    assert body["recipient"]["name"] == "Demo Responder"
    assert request.headers["idempotency-key"] == body["idempotency_key"]

    timeline = await raw_db.fetch(
        "SELECT kind FROM timeline_entries WHERE incident_id = $1 ORDER BY at, id", incident_id
    )
    kinds = [row["kind"] for row in timeline]
    assert "escalation.paged" in kinds
    assert kinds.count("notification.sent") == 2


async def test_acknowledged_before_delivery_cancels_page(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    receiver: Receiver,
    paging: PagingContext,
    raw_db: asyncpg.Connection,
) -> None:
    await add_webhook(client, auth, demo, receiver.url)
    incident_id = (await client.post(alertmanager_path, json=alert_body("firing"))).json()[
        "incidents_opened"
    ][0]
    await client.post(f"/v1/incidents/{incident_id}/acknowledge", headers=auth)
    await drain_jobs(raw_db, paging)
    assert receiver.requests == []
    assert await raw_db.fetchval("SELECT count(*) FROM notifications") == 0


async def test_retries_after_500_then_succeeds(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    receiver: Receiver,
    paging: PagingContext,
    raw_db: asyncpg.Connection,
) -> None:
    await add_webhook(client, auth, demo, receiver.url)
    receiver.statuses.extend([500, 503])
    await client.post(alertmanager_path, json=alert_body("firing"))
    await drain_jobs(raw_db, paging)
    assert len(receiver.requests) == 1
    [retry] = await queued_jobs(raw_db)
    assert retry["entrypoint"] == "notification.deliver"
    assert retry["due_in"].total_seconds() > 0

    await advance_clock(raw_db, retry["due_in"])
    await drain_jobs(raw_db, paging)
    [retry] = await queued_jobs(raw_db)
    await advance_clock(raw_db, retry["due_in"])
    await drain_jobs(raw_db, paging)

    assert len(receiver.requests) == 3
    keys = {request.headers["idempotency-key"] for request in receiver.requests}
    assert len(keys) == 1
    attempts = await raw_db.fetch(
        "SELECT a.outcome, a.status_code FROM delivery_attempts a JOIN notifications n "
        "ON n.id = a.notification_id WHERE n.notifier = 'webhook' ORDER BY a.attempt"
    )
    assert [(row["outcome"], row["status_code"]) for row in attempts] == [
        ("retry", 500),
        ("retry", 503),
        ("success", 200),
    ]
    assert (
        await raw_db.fetchval("SELECT status FROM notifications WHERE notifier = 'webhook'")
        == "sent"
    )


async def test_no_retry_after_400(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    receiver: Receiver,
    paging: PagingContext,
    raw_db: asyncpg.Connection,
) -> None:
    await add_webhook(client, auth, demo, receiver.url)
    receiver.statuses.append(400)
    incident_id = (await client.post(alertmanager_path, json=alert_body("firing"))).json()[
        "incidents_opened"
    ][0]
    await drain_jobs(raw_db, paging, include_delayed=False)
    assert len(receiver.requests) == 1
    assert [job["entrypoint"] for job in await queued_jobs(raw_db)] == []
    row = await raw_db.fetchrow(
        "SELECT status, last_error FROM notifications WHERE notifier = 'webhook'"
    )
    assert row["status"] == "failed"
    assert "400" in row["last_error"]
    failed = await raw_db.fetchval(
        "SELECT message FROM timeline_entries "
        "WHERE incident_id = $1 AND kind = 'notification.failed'",
        incident_id,
    )
    assert "HTTP 400" in failed


async def test_resolved_notice_goes_to_those_paged(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    receiver: Receiver,
    paging: PagingContext,
    raw_db: asyncpg.Connection,
) -> None:
    await add_webhook(client, auth, demo, receiver.url)
    await client.post(alertmanager_path, json=alert_body("firing"))
    await drain_jobs(raw_db, paging)
    await client.post(alertmanager_path, json=alert_body("resolved"))
    await drain_jobs(raw_db, paging)
    events = [json.loads(request.body)["event"] for request in receiver.requests]
    assert events == ["incident.triggered", "incident.resolved"]
    # Running the resolved job again (a worker died before logging it) sends nothing new.
    incident_id = await raw_db.fetchval("SELECT id FROM incidents")
    from app.incidents.paging import send_status_notices

    await send_status_notices(paging, incident_id)
    await drain_jobs(raw_db, paging)
    assert len(receiver.requests) == 2


async def test_service_without_policy_records_nobody_paged(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    paging: PagingContext,
    raw_db: asyncpg.Connection,
) -> None:
    service_id = demo["services"][0]["id"]
    answer = await client.patch(
        f"/v1/services/{service_id}", json={"escalation_policy_id": None}, headers=auth
    )
    assert answer.status_code == 200
    incident_id = (await client.post(alertmanager_path, json=alert_body("firing"))).json()[
        "incidents_opened"
    ][0]
    await drain_jobs(raw_db, paging)
    message = await raw_db.fetchval(
        "SELECT message FROM timeline_entries "
        "WHERE incident_id = $1 AND kind = 'escalation.no_policy'",
        incident_id,
    )
    assert "Demo service" in message
    assert await raw_db.fetchval("SELECT count(*) FROM notifications") == 0


async def test_real_worker_wakes_on_commit(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    receiver: Receiver,
    settings: Settings,
    database_url: str,
    app: Any,
) -> None:
    await add_webhook(client, auth, demo, receiver.url)
    worker = Worker(settings, database_url, create_sessionmaker(app.state.engine))
    task = asyncio.create_task(worker.run())
    try:
        await client.post(alertmanager_path, json=alert_body("firing"))
        [request] = await receiver.wait_for(1, timeout=15)
        assert json.loads(request.body)["event"] == "incident.triggered"
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=15)
