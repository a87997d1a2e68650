"""Helpers for rule, window and silence tests: Alertmanager payloads, a two-level policy."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio


def am_alert(
    fingerprint: str,
    labels: dict[str, str] | None = None,
    *,
    status: str = "firing",
    summary: str | None = None,
    starts_at: str = "2026-11-30T08:12:41Z",
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "DiskFull", **(labels or {})},
        "annotations": {"summary": summary or f"Disk full ({fingerprint})"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    }


def am_payload(*alerts: dict[str, Any], group_key: str | None = None) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": group_key or f"group-{uuid.uuid4()}",
        "status": "firing",
        "receiver": "tocsin",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "",
        "alerts": list(alerts),
    }


async def post_alerts(
    client: httpx.AsyncClient, path: str, *alerts: dict[str, Any], group_key: str | None = None
) -> dict[str, Any]:
    response = await client.post(path, content=json.dumps(am_payload(*alerts, group_key=group_key)))
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def pages(raw_db: asyncpg.Connection, incident_id: str | uuid.UUID) -> int:
    value: int = await raw_db.fetchval(
        "SELECT count(*) FROM notifications "
        "WHERE incident_id = $1 AND event = 'incident.triggered'",
        uuid.UUID(str(incident_id)),
    )
    return value


async def timeline_kinds(raw_db: asyncpg.Connection, incident_id: str | uuid.UUID) -> list[str]:
    rows = await raw_db.fetch(
        "SELECT kind FROM timeline_entries WHERE incident_id = $1 ORDER BY at, id",
        uuid.UUID(str(incident_id)),
    )
    return [row["kind"] for row in rows]


async def timeline(
    raw_db: asyncpg.Connection, incident_id: str | uuid.UUID, kind: str
) -> list[asyncpg.Record]:
    return list(
        await raw_db.fetch(
            "SELECT kind, actor_type, message, data FROM timeline_entries "
            "WHERE incident_id = $1 AND kind = $2 ORDER BY at, id",
            uuid.UUID(str(incident_id)),
            kind,
        )
    )


@pytest.fixture
def service_id(demo: dict[str, Any]) -> str:
    value: str = demo["services"][0]["id"]
    return value


@pytest_asyncio.fixture
async def two_level_policy(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    service_id: str,
    raw_db: asyncpg.Connection,
) -> str:
    """Give the demo service a policy that pages the demo user at two levels, 5 minutes apart."""
    user = {"type": "user", "id": demo["users"][0]["id"]}
    response = await client.post(
        "/v1/escalation-policies",
        headers=auth,
        json={
            "name": "Two levels",
            "levels": [
                {"delay_minutes": 5, "targets": [user]},
                {"delay_minutes": 5, "targets": [user]},
            ],
        },
    )
    assert response.status_code == 201, response.text
    policy_id: str = response.json()["id"]
    updated = await client.patch(
        f"/v1/services/{service_id}", json={"escalation_policy_id": policy_id}, headers=auth
    )
    assert updated.status_code == 200, updated.text
    return policy_id
