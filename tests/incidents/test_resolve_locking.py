"""Lock order of POST /v1/incidents/{id}/resolve against ingest, and its retry on deadlock.

A second connection plays the other transaction, so each interleaving is forced rather
than hoped for. Ingest locks an alert row first and its incident second.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.paging import trigger

pytestmark = pytest.mark.asyncio


async def wait_until_blocked_by(
    raw_db: asyncpg.Connection, blocker: asyncpg.Connection, timeout: float = 10
) -> None:
    """Wait until some backend waits for a lock that ``blocker`` holds."""
    blocker_pid = blocker.get_server_pid()
    async with asyncio.timeout(timeout):
        while not await raw_db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
            blocker_pid,
        ):
            await asyncio.sleep(0.02)


async def open_connection(database_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(database_url.replace("+asyncpg", ""))


async def test_resolve_waits_for_alert_before_incident(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    database_url: str,
) -> None:
    incident_id = await trigger(client, alertmanager_path, "LockOrder", "lock order")
    ingest = await open_connection(database_url)
    try:
        transaction = ingest.transaction()
        await transaction.start()
        await ingest.fetch(
            "SELECT id FROM alerts WHERE incident_id = $1 FOR UPDATE", uuid.UUID(incident_id)
        )
        resolving = asyncio.create_task(
            client.post(f"/v1/incidents/{incident_id}/resolve", headers=auth)
        )
        await wait_until_blocked_by(raw_db, ingest)

        # The resolve waits for the alert and holds no incident lock yet, so the
        # ingest side gets the incident at once instead of closing a cycle.
        locked = await ingest.fetch(
            "SELECT id FROM incidents WHERE id = $1 FOR UPDATE NOWAIT", uuid.UUID(incident_id)
        )
        assert len(locked) == 1
        await transaction.commit()
        response = await resolving
    finally:
        await ingest.close()

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "resolved"


async def test_resolve_retries_after_deadlock(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    database_url: str,
) -> None:
    incident_id = await trigger(client, alertmanager_path, "Deadlock", "forced deadlock")
    other = await open_connection(database_url)
    try:
        transaction = other.transaction()
        await transaction.start()
        # PostgreSQL aborts the transaction whose deadlock check runs first. With a long
        # timeout here, that is the request's transaction (1 s by default).
        await other.execute("SET LOCAL deadlock_timeout = '60s'")
        await other.fetch(
            "SELECT id FROM incidents WHERE id = $1 FOR UPDATE", uuid.UUID(incident_id)
        )
        resolving = asyncio.create_task(
            client.post(f"/v1/incidents/{incident_id}/resolve", headers=auth)
        )
        await wait_until_blocked_by(raw_db, other)

        # The request holds the alert and waits for the incident; this closes the cycle.
        alerts = await other.fetch(
            "SELECT id FROM alerts WHERE incident_id = $1 FOR UPDATE", uuid.UUID(incident_id)
        )
        assert len(alerts) == 1
        await transaction.rollback()
        response = await resolving
    finally:
        await other.close()

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "resolved"
    status = await raw_db.fetchval(
        "SELECT status FROM incidents WHERE id = $1", uuid.UUID(incident_id)
    )
    assert status == "resolved"


async def test_merge_waits_for_alert_before_incidents(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    database_url: str,
) -> None:
    target_id = await trigger(client, alertmanager_path, "MergeTarget", "merge target")
    source_id = await trigger(client, alertmanager_path, "MergeSource", "merge source")
    ingest = await open_connection(database_url)
    try:
        transaction = ingest.transaction()
        await transaction.start()
        await ingest.fetch(
            "SELECT id FROM alerts WHERE incident_id = $1 FOR UPDATE", uuid.UUID(source_id)
        )
        merging = asyncio.create_task(
            client.post(
                f"/v1/incidents/{target_id}/merge",
                json={"incident_ids": [source_id]},
                headers=auth,
            )
        )
        await wait_until_blocked_by(raw_db, ingest)

        locked = await ingest.fetch(
            "SELECT id FROM incidents WHERE id = ANY($1::uuid[]) FOR UPDATE NOWAIT",
            [uuid.UUID(target_id), uuid.UUID(source_id)],
        )
        assert len(locked) == 2
        await transaction.commit()
        response = await merging
    finally:
        await ingest.close()

    assert response.status_code == 200, response.text
    assert response.json()["alert_count"] == 2
