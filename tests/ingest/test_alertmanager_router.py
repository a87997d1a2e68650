from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import payload_bytes
from tests.support.receiver import free_port

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


def alert_body(
    status: str, *, fingerprint: str = "f1", ends_at: str | None = None, **labels: str
) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="Test"}',
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "Test", **labels},
                "annotations": {"summary": "Test alert"},
                "startsAt": "2026-11-30T08:00:00Z",
                "endsAt": ends_at
                or ("2026-11-30T08:10:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"),
                "fingerprint": fingerprint,
            }
        ],
    }


async def test_last_alert_resolving_resolves_incident(
    client: httpx.AsyncClient, alertmanager_path: str, raw_db: asyncpg.Connection
) -> None:
    assert (await client.post(alertmanager_path, json=alert_body("firing"))).status_code == 202
    answer = await client.post(alertmanager_path, json=alert_body("resolved"))
    assert answer.status_code == 202
    assert len(answer.json()["incidents_resolved"]) == 1
    incident = await raw_db.fetchrow("SELECT status, resolved_by FROM incidents")
    assert incident["status"] == "resolved"
    jobs = await raw_db.fetch("SELECT entrypoint FROM pgqueuer ORDER BY id")
    assert [job["entrypoint"] for job in jobs] == ["incident.triggered", "incident.resolved"]
    kinds = await raw_db.fetch("SELECT kind FROM timeline_entries ORDER BY at, id")
    assert [row["kind"] for row in kinds] == [
        "incident.triggered",
        "alert.triggered",
        "rules.applied",
        "alert.resolved",
        "incident.resolved",
    ]


async def test_new_occurrence_after_resolve_opens_new_incident(
    client: httpx.AsyncClient, alertmanager_path: str, raw_db: asyncpg.Connection
) -> None:
    await client.post(alertmanager_path, json=alert_body("firing"))
    await client.post(alertmanager_path, json=alert_body("resolved"))
    late = alert_body("firing")  # the same occurrence again, as an HA peer would send it
    assert (await client.post(alertmanager_path, json=late)).json()["events_ignored"] == 1
    fresh = alert_body("firing")
    fresh["alerts"][0]["startsAt"] = "2026-11-30T09:00:00Z"
    answer = await client.post(alertmanager_path, json=fresh)
    assert len(answer.json()["incidents_opened"]) == 1
    statuses = await raw_db.fetch("SELECT status FROM incidents ORDER BY number")
    assert [row["status"] for row in statuses] == ["resolved", "triggered"]


async def test_resolve_without_open_alert_is_accepted_and_logged(
    client: httpx.AsyncClient, alertmanager_path: str, raw_db: asyncpg.Connection
) -> None:
    answer = await client.post(alertmanager_path, json=alert_body("resolved", fingerprint="nope"))
    assert answer.status_code == 202
    assert answer.json()["events_ignored"] == 1
    assert await count(raw_db, "incidents") == 0
    event = await raw_db.fetchrow("SELECT action, outcome, dedup_key FROM events")
    assert dict(event) == {
        "action": "resolve",
        "outcome": "ignored.no_open_alert",
        "dedup_key": "nope",
    }


async def test_repeat_updates_alert_without_new_page(
    client: httpx.AsyncClient, alertmanager_path: str, raw_db: asyncpg.Connection
) -> None:
    await client.post(alertmanager_path, json=alert_body("firing"))
    changed = alert_body("firing")
    changed["alerts"][0]["annotations"]["summary"] = "Test alert, now worse"
    answer = await client.post(alertmanager_path, json=changed)
    assert answer.json()["alerts_updated"] == 1
    alert = await raw_db.fetchrow("SELECT summary, event_count FROM alerts")
    assert dict(alert) == {"summary": "Test alert, now worse", "event_count": 2}
    jobs = await raw_db.fetch("SELECT entrypoint FROM pgqueuer")
    assert [job["entrypoint"] for job in jobs] == ["incident.triggered"]


async def test_unknown_key_is_404_problem(client: httpx.AsyncClient, demo: dict[str, Any]) -> None:
    answer = await client.post("/ingest/alertmanager/" + "0" * 32, json=alert_body("firing"))
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["field"] == "integration_key"


async def test_disabled_integration_is_401(
    client: httpx.AsyncClient, alertmanager_path: str, raw_db: asyncpg.Connection
) -> None:
    await raw_db.execute("UPDATE integrations SET enabled = false")
    answer = await client.post(alertmanager_path, json=alert_body("firing"))
    assert answer.status_code == 401
    assert "disabled" in answer.json()["detail"]


async def test_key_of_other_format_is_400(
    client: httpx.AsyncClient, alertmanager_path: str, raw_db: asyncpg.Connection
) -> None:
    await raw_db.execute("UPDATE integrations SET kind = 'grafana'")
    answer = await client.post(alertmanager_path, json=alert_body("firing"))
    assert answer.status_code == 400
    assert "grafana" in answer.json()["detail"]
    assert "/ingest/grafana/" in answer.json()["detail"]


async def test_invalid_body_is_400_naming_field(
    client: httpx.AsyncClient, alertmanager_path: str, raw_db: asyncpg.Connection
) -> None:
    answer = await client.post(alertmanager_path, content=b'{"alerts": [{"status": "maybe"}]}')
    assert answer.status_code == 400
    problem = answer.json()
    assert answer.headers["content-type"] == "application/problem+json"
    assert problem["field"] == "alerts.0.status"
    assert "firing" in problem["detail"]
    assert await count(raw_db, "events") == 0


async def test_body_over_limit_is_413(client: httpx.AsyncClient, alertmanager_path: str) -> None:
    big = b'{"alerts": [], "pad": "' + b"x" * (1024 * 1024) + b'"}'
    answer = await client.post(alertmanager_path, content=big)
    assert answer.status_code == 413
    assert "TOCSIN_INGEST_MAX_BODY_BYTES" in answer.json()["detail"]


async def test_body_over_limit_without_length_is_413(
    client: httpx.AsyncClient, alertmanager_path: str
) -> None:
    async def chunks() -> Any:
        for _ in range(300):
            yield b"x" * 4096

    answer = await client.post(alertmanager_path, content=chunks())
    assert answer.status_code == 413


async def test_database_outage_is_503_with_retry_after(
    settings: Any, demo: dict[str, Any], alertmanager_path: str
) -> None:
    from app.main import create_app

    # A port that was just free has no PostgreSQL behind it: connecting fails at once.
    closed = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none"
    app = create_app(settings, database_url=closed)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tocsin.test") as client:
            answer = await client.post(alertmanager_path, json=alert_body("firing"))
            health = await client.get("/healthz")
            ready = await client.get("/readyz")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["code"] == "database_unavailable"
    assert health.status_code == 200
    assert ready.status_code == 503


async def test_very_long_keys_are_stored_as_digests(
    client: httpx.AsyncClient, alertmanager_path: str, raw_db: asyncpg.Connection
) -> None:
    body = alert_body("firing", fingerprint="f" * 5000)
    body["groupKey"] = "g" * 5000
    first = await client.post(alertmanager_path, json=body)
    assert first.status_code == 202, first.text
    again = await client.post(alertmanager_path, json=body)
    assert again.json()["alerts_updated"] == 1
    row = await raw_db.fetchrow(
        "SELECT a.dedup_key, i.grouping_key FROM alerts a JOIN incidents i ON i.id = a.incident_id"
    )
    assert row["dedup_key"].startswith("sha256:")
    assert row["grouping_key"].startswith("sha256:")
    resolved = await client.post(
        alertmanager_path,
        json=dict(
            body, alerts=[dict(body["alerts"][0], status="resolved", endsAt="2026-11-30T08:10:00Z")]
        ),
    )
    assert resolved.json()["alerts_resolved"] == 1


async def test_resolve_before_trigger_keeps_late_trigger_quiet(
    client: httpx.AsyncClient, alertmanager_path: str, raw_db: asyncpg.Connection
) -> None:
    early = await client.post(alertmanager_path, json=alert_body("resolved", fingerprint="early"))
    assert early.json()["events_ignored"] == 1
    late = await client.post(alertmanager_path, json=alert_body("firing", fingerprint="early"))
    assert late.json()["incidents_opened"] == []
    assert late.json()["events_ignored"] == 1
    assert await count(raw_db, "incidents") == 0
    # A later occurrence of the same alert still opens an incident.
    fresh = alert_body("firing", fingerprint="early")
    fresh["alerts"][0]["startsAt"] = "2026-11-30T09:00:00Z"
    answer = await client.post(alertmanager_path, json=fresh)
    assert len(answer.json()["incidents_opened"]) == 1


async def test_resolve_dated_in_the_future_does_not_block(
    client: httpx.AsyncClient, alertmanager_path: str, raw_db: asyncpg.Connection
) -> None:
    await client.post(alertmanager_path, json=alert_body("firing", fingerprint="fut"))
    far = alert_body("resolved", fingerprint="fut", ends_at="9999-01-01T00:00:00Z")
    assert (await client.post(alertmanager_path, json=far)).json()["alerts_resolved"] == 1
    again = alert_body("firing", fingerprint="fut")
    again["alerts"][0]["startsAt"] = "2030-01-01T00:00:00Z"
    answer = await client.post(alertmanager_path, json=again)
    assert len(answer.json()["incidents_opened"]) == 1
