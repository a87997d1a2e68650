from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.conftest import payload_bytes

pytestmark = pytest.mark.asyncio


async def count(raw_db: asyncpg.Connection, table: str) -> int:
    value: int = await raw_db.fetchval(f"SELECT count(*) FROM {table}")
    return value


async def test_fixture_sequence_keeps_one_incident(
    client: httpx.AsyncClient, alertmanager_path: str, raw_db: asyncpg.Connection
) -> None:
    first = await client.post(
        alertmanager_path, content=payload_bytes("alertmanager/firing-two-alerts.json")
    )
    assert first.status_code == 202, first.text
    assert first.json()["alerts_created"] == 2
    assert len(first.json()["incidents_opened"]) == 1

    second = await client.post(
        alertmanager_path, content=payload_bytes("alertmanager/resolved-one.json")
    )
    assert second.status_code == 202, second.text
    assert second.json()["alerts_resolved"] == 1
    assert second.json()["incidents_resolved"] == []

    incidents = await raw_db.fetch("SELECT status, alert_count FROM incidents")
    assert [(row["status"], row["alert_count"]) for row in incidents] == [("triggered", 2)]
    alerts = await raw_db.fetch("SELECT dedup_key, status FROM alerts ORDER BY dedup_key")
    assert [(row["dedup_key"], row["status"]) for row in alerts] == [
        ("4f1c9a2b7d3e8f01", "resolved"),
        ("9a7b6c5d4e3f2a10", "firing"),
    ]

    again = await client.post(
        alertmanager_path, content=payload_bytes("alertmanager/firing-two-alerts.json")
    )
    assert again.status_code == 202, again.text
    assert await count(raw_db, "incidents") == 1
    assert await count(raw_db, "alerts") == 2
