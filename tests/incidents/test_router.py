from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from tests.ingest.test_alertmanager_router import alert_body

pytestmark = pytest.mark.asyncio


async def open_incidents(client: httpx.AsyncClient, path: str, count: int) -> list[str]:
    ids = []
    for index in range(count):
        body = alert_body("firing", fingerprint=f"f{index}")
        body["groupKey"] = f"group-{index}"
        answer = await client.post(path, json=body)
        ids.extend(answer.json()["incidents_opened"])
    return ids


async def test_list_newest_first_with_cursor(
    client: httpx.AsyncClient, alertmanager_path: str, auth: dict[str, str]
) -> None:
    ids = await open_incidents(client, alertmanager_path, 5)
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/incidents", params=params, headers=auth)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert cursor is None


async def test_list_finds_incident_by_number(
    client: httpx.AsyncClient, alertmanager_path: str, auth: dict[str, str]
) -> None:
    ids = await open_incidents(client, alertmanager_path, 3)
    second = (await client.get(f"/v1/incidents/{ids[1]}", headers=auth)).json()

    found = await client.get("/v1/incidents", params={"number": second["number"]}, headers=auth)
    none = await client.get("/v1/incidents", params={"number": 999_999}, headers=auth)
    invalid = await client.get("/v1/incidents", params={"number": 0}, headers=auth)

    assert [item["id"] for item in found.json()["items"]] == [ids[1]]
    assert none.json()["items"] == []
    assert invalid.status_code == 422
    assert invalid.json()["field"] == "query.number"


async def test_list_filters_by_status_and_service(
    client: httpx.AsyncClient, alertmanager_path: str, auth: dict[str, str], demo: dict[str, Any]
) -> None:
    ids = await open_incidents(client, alertmanager_path, 2)
    await client.post(f"/v1/incidents/{ids[0]}/acknowledge", headers=auth)
    triggered = (await client.get("/v1/incidents?status=triggered", headers=auth)).json()
    assert [item["id"] for item in triggered["items"]] == [ids[1]]
    both = (
        await client.get("/v1/incidents?status=triggered&status=acknowledged", headers=auth)
    ).json()
    assert len(both["items"]) == 2
    service_id = demo["services"][0]["id"]
    by_service = (await client.get(f"/v1/incidents?service_id={service_id}", headers=auth)).json()
    assert len(by_service["items"]) == 2
    bad = await client.get("/v1/incidents?status=sleeping", headers=auth)
    assert bad.status_code == 400
    assert bad.json()["field"] == "status"


async def test_detail_has_alerts_and_timeline(
    client: httpx.AsyncClient, alertmanager_path: str, auth: dict[str, str]
) -> None:
    [incident_id] = await open_incidents(client, alertmanager_path, 1)
    detail = (await client.get(f"/v1/incidents/{incident_id}", headers=auth)).json()
    assert detail["status"] == "triggered"
    assert detail["priority"] == "P1"
    assert [alert["dedup_key"] for alert in detail["alerts"]] == ["f0"]
    assert [entry["kind"] for entry in detail["timeline"]] == [
        "incident.triggered",
        "alert.triggered",
        "rules.applied",
    ]
    assert detail["timeline"][0]["actor_type"] == "integration"


async def test_acknowledge_then_resolve(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    raw_db: asyncpg.Connection,
) -> None:
    [incident_id] = await open_incidents(client, alertmanager_path, 1)
    acked = await client.post(f"/v1/incidents/{incident_id}/acknowledge", headers=auth)
    assert acked.status_code == 200
    assert acked.json()["status"] == "acknowledged"
    assert acked.json()["acknowledged_by"]["name"] == "Demo admin"
    again = await client.post(f"/v1/incidents/{incident_id}/acknowledge", headers=auth)
    assert again.status_code == 200

    resolved = await client.post(f"/v1/incidents/{incident_id}/resolve", headers=auth)
    assert resolved.json()["status"] == "resolved"
    assert await raw_db.fetchval("SELECT status FROM alerts") == "resolved"

    late_ack = await client.post(f"/v1/incidents/{incident_id}/acknowledge", headers=auth)
    assert late_ack.status_code == 409
    assert late_ack.headers["content-type"] == "application/problem+json"
    assert "resolved" in late_ack.json()["detail"]

    # A manual resolve ends the alert too: its next trigger opens a new incident.
    answer = await client.post(alertmanager_path, json=alert_body("firing", fingerprint="f0"))
    assert len(answer.json()["incidents_opened"]) == 1


async def test_unknown_incident_is_404(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    answer = await client.get("/v1/incidents/01a242c6-53c5-783f-a266-c87014a9d519", headers=auth)
    assert answer.status_code == 404
    malformed = await client.get("/v1/incidents/not-a-uuid", headers=auth)
    assert malformed.status_code == 422
    assert malformed.json()["field"] == "path.incident_id"


async def test_invalid_cursor_is_400(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    answer = await client.get("/v1/incidents?cursor=garbage", headers=auth)
    assert answer.status_code == 400
    assert answer.json()["field"] == "cursor"


async def test_authentication_and_scopes(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    missing = await client.get("/v1/incidents")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await client.get("/v1/incidents", headers={"Authorization": "Bearer tocsin_nope"})
    assert wrong.status_code == 401

    created = await client.post(
        "/v1/api-keys", json={"name": "reader", "scopes": ["incidents:read"]}, headers=auth
    )
    assert created.status_code == 201
    reader = {"Authorization": f"Bearer {created.json()['key']}"}
    assert (await client.get("/v1/incidents", headers=reader)).status_code == 200
    forbidden = await client.post(
        "/v1/incidents/01a242c6-53c5-783f-a266-c87014a9d519/resolve", headers=reader
    )
    assert forbidden.status_code == 403
    assert "incidents:write" in forbidden.json()["detail"]

    revoked = await client.post(f"/v1/api-keys/{created.json()['id']}/revoke", headers=auth)
    assert revoked.json()["revoked_at"] is not None
    assert (await client.get("/v1/incidents", headers=reader)).status_code == 401
