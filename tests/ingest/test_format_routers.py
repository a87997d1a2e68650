"""Each sender format end to end through the app: keys, responses, stored alerts and incidents."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest

from app.ingest.signatures import sign
from tests.conftest import payload_bytes, payload_json
from tests.ingest.conftest import PROBLEM_JSON, count, integration_id, pagerduty_body

pytestmark = pytest.mark.asyncio


class TestKeys:
    async def test_bearer_key(self, client: httpx.AsyncClient, keys: dict[str, str]) -> None:
        response = await client.post(
            "/ingest/grafana",
            content=payload_bytes("grafana/firing.json"),
            headers={"Authorization": f"Bearer {keys['grafana']}"},
        )
        assert response.status_code == 202, response.text
        assert response.json()["alerts_created"] == 1

    async def test_missing_bearer_key(self, client: httpx.AsyncClient, demo: Any) -> None:
        response = await client.post("/ingest/grafana", content=b"{}")
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM_JSON
        assert "/ingest/grafana/<key>" in response.json()["detail"]

    async def test_unknown_key(self, client: httpx.AsyncClient, demo: Any) -> None:
        response = await client.post(
            "/ingest/generic/" + "0" * 32, content=payload_bytes("generic/alert.json")
        )
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["field"] == "integration_key"

    async def test_disabled_key(
        self, client: httpx.AsyncClient, keys: dict[str, str], auth: dict[str, str], raw_db: Any
    ) -> None:
        generic_id = await integration_id(raw_db, "generic")
        patched = await client.patch(
            f"/v1/integrations/{generic_id}", json={"enabled": False}, headers=auth
        )
        assert patched.status_code == 200, patched.text
        response = await client.post(
            f"/ingest/generic/{keys['generic']}", content=payload_bytes("generic/alert.json")
        )
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM_JSON
        assert "disabled" in response.json()["detail"]

    @pytest.mark.parametrize(
        ("path", "kind", "hint", "named"),
        [
            (
                "/ingest/grafana/{key}",
                "alertmanager",
                "POST /ingest/alertmanager/{key}",
                "an alertmanager integration",
            ),
            (
                "/ingest/generic/{key}",
                "pagerduty",
                "POST /v2/enqueue with routing_key",
                "a pagerduty integration",
            ),
            (
                "/ingest/alertmanager/{key}",
                "heartbeat",
                "POST /ingest/heartbeat/{key}",
                "a heartbeat integration",
            ),
        ],
    )
    async def test_key_of_other_format(
        self,
        client: httpx.AsyncClient,
        keys: dict[str, str],
        path: str,
        kind: str,
        hint: str,
        named: str,
    ) -> None:
        body = payload_bytes("grafana/firing.json")
        if "generic" in path:
            body = payload_bytes("generic/alert.json")
        response = await client.post(path.format(key=keys[kind]), content=body)
        assert response.status_code == 400
        assert response.headers["content-type"] == PROBLEM_JSON
        assert f"belongs to {named}, not" in response.json()["detail"]
        assert hint in response.json()["detail"]

    async def test_key_error_comes_before_body_error(
        self, client: httpx.AsyncClient, keys: dict[str, str]
    ) -> None:
        other_format = await client.post(f"/ingest/grafana/{keys['alertmanager']}", content=b"{}")
        unknown = await client.post("/ingest/alertmanager/no-such-key", content=b"[]")
        valid_key = await client.post(f"/ingest/grafana/{keys['grafana']}", content=b"{}")

        assert other_format.status_code == 400
        assert other_format.json()["field"] == "integration_key"
        assert "belongs to an alertmanager integration" in other_format.json()["detail"]
        assert unknown.status_code == 404
        assert unknown.json()["field"] == "integration_key"
        assert valid_key.status_code == 400
        assert valid_key.json()["field"] == "alerts"

    async def test_pagerduty_key_on_opsgenie(
        self, client: httpx.AsyncClient, keys: dict[str, str]
    ) -> None:
        response = await client.post(
            "/v2/alerts",
            content=payload_bytes("opsgenie/create-alert.json"),
            headers={"Authorization": f"GenieKey {keys['pagerduty']}"},
        )
        assert response.status_code == 400
        assert "belongs to a pagerduty integration" in response.json()["detail"]


class TestGrafana:
    async def test_firing_then_resolved(
        self, client: httpx.AsyncClient, keys: dict[str, str], auth: dict[str, str]
    ) -> None:
        path = f"/ingest/grafana/{keys['grafana']}"
        fired = await client.post(path, content=payload_bytes("grafana/firing.json"))
        assert fired.status_code == 202, fired.text
        incident_id = fired.json()["incidents_opened"][0]

        detail = (await client.get(f"/v1/incidents/{incident_id}", headers=auth)).json()
        alert = detail["alerts"][0]
        assert alert["severity"] == "warning"
        assert {
            "href": "https://grafana.example.com/d/payments-overview?orgId=1",
            "text": "Dashboard",
        } in alert["links"]
        assert alert["details"]["values"] == {"B": 1.21, "C": 1}

        resolved = await client.post(path, content=payload_bytes("grafana/resolved.json"))
        assert resolved.status_code == 202, resolved.text
        assert resolved.json()["incidents_resolved"] == [incident_id]


class TestPagerDuty:
    async def test_trigger_acknowledge_resolve(
        self,
        client: httpx.AsyncClient,
        keys: dict[str, str],
        auth: dict[str, str],
        raw_db: asyncpg.Connection,
    ) -> None:
        key = keys["pagerduty"]
        trigger = await client.post(
            "/v2/enqueue", content=pagerduty_body(payload_json("pagerduty/trigger.json"), key)
        )
        assert trigger.status_code == 202, trigger.text
        assert trigger.json() == {
            "status": "success",
            "message": "Event processed",
            "dedup_key": "db-primary-disk-usage/host-db-01",
        }
        acknowledge = await client.post(
            "/v2/enqueue", content=pagerduty_body(payload_json("pagerduty/acknowledge.json"), key)
        )
        assert acknowledge.status_code == 202, acknowledge.text
        assert await raw_db.fetchval("SELECT status FROM incidents") == "acknowledged"

        resolve = await client.post(
            "/v2/enqueue", content=pagerduty_body(payload_json("pagerduty/resolve.json"), key)
        )
        assert resolve.status_code == 202, resolve.text
        assert resolve.json()["dedup_key"] == "db-primary-disk-usage/host-db-01"
        assert await raw_db.fetchval("SELECT status FROM incidents") == "resolved"

    async def test_routed_ack_uses_target_timeout(
        self,
        client: httpx.AsyncClient,
        keys: dict[str, str],
        auth: dict[str, str],
        raw_db: asyncpg.Connection,
    ) -> None:
        target = await client.post(
            "/v1/services",
            headers=auth,
            json={"name": "Database", "acknowledge_timeout_seconds": 900},
        )
        assert target.status_code == 201, target.text
        rule = await client.post(
            "/v1/rules",
            headers=auth,
            json={
                "name": "database",
                "conditions": {"matchers": ['source="host-db-01"']},
                "actions": {"route": {"service_id": target.json()["id"]}},
            },
        )
        assert rule.status_code == 201, rule.text

        key = keys["pagerduty"]
        for name in ("trigger", "acknowledge"):
            answer = await client.post(
                "/v2/enqueue", content=pagerduty_body(payload_json(f"pagerduty/{name}.json"), key)
            )
            assert answer.status_code == 202, answer.text

        incident = await raw_db.fetchrow("SELECT id, service_id, status FROM incidents")
        assert str(incident["service_id"]) == target.json()["id"]
        assert incident["status"] == "acknowledged"
        timeouts = await raw_db.fetch(
            "SELECT execute_after - now() AS due_in FROM pgqueuer "
            "WHERE entrypoint = 'incident.acknowledge_timeout'"
        )
        assert len(timeouts) == 1
        assert 890 <= timeouts[0]["due_in"].total_seconds() <= 900

    async def test_routing_key_not_stored(
        self, client: httpx.AsyncClient, keys: dict[str, str], raw_db: asyncpg.Connection
    ) -> None:
        key = keys["pagerduty"]
        await client.post(
            "/v2/enqueue", content=pagerduty_body(payload_json("pagerduty/trigger.json"), key)
        )
        stored = await raw_db.fetch(
            "SELECT payload::text AS p FROM events UNION ALL SELECT payload::text FROM alerts"
        )
        assert stored
        assert all(key not in row["p"] for row in stored)

    @pytest.mark.parametrize(
        ("changes", "error"),
        [
            ({"event_action": "explode"}, "event_action: 'explode' is invalid"),
            ({"routing_key": None}, "routing_key: missing"),
            ({"payload": {"summary": "x", "severity": "loud"}}, "payload.severity"),
            ({"payload": {"summary": "x", "timestamp": "noon"}}, "payload.timestamp"),
        ],
    )
    async def test_invalid_event_in_pagerduty_shape(
        self, client: httpx.AsyncClient, keys: dict[str, str], changes: dict[str, Any], error: str
    ) -> None:
        body = {**payload_json("pagerduty/trigger.json"), "routing_key": keys["pagerduty"]}
        body.update(changes)
        response = await client.post("/v2/enqueue", content=json.dumps(body).encode())
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        answer = response.json()
        assert answer["status"] == "invalid event"
        assert answer["message"] == "Event object is invalid"
        assert error in answer["errors"][0]

    async def test_malformed_json_in_pagerduty_shape(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v2/enqueue", content=b'{"routing_key": "abc"')
        assert response.status_code == 400
        assert response.json()["status"] == "invalid event"
        assert "invalid JSON" in response.json()["errors"][0]

    async def test_unknown_routing_key(self, client: httpx.AsyncClient, demo: Any) -> None:
        body = pagerduty_body(payload_json("pagerduty/trigger.json"), "f" * 32)
        response = await client.post("/v2/enqueue", content=body)
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM_JSON

    async def test_change_events_on_incident(
        self,
        client: httpx.AsyncClient,
        keys: dict[str, str],
        auth: dict[str, str],
        demo: dict[str, Any],
    ) -> None:
        key = keys["pagerduty"]
        change = await client.post(
            "/v2/change/enqueue", content=pagerduty_body(payload_json("pagerduty/change.json"), key)
        )
        assert change.status_code == 202, change.text
        assert change.json() == {"status": "success", "message": "Change event processed"}

        trigger = await client.post(
            "/v2/enqueue",
            content=pagerduty_body(payload_json("pagerduty/trigger.json"), key),
        )
        incident_id = (await client.get("/v1/incidents", headers=auth)).json()["items"][0]["id"]
        assert trigger.status_code == 202
        # The change's own timestamp (2026-11-30) is long before the incident opened.
        narrow = await client.get(
            f"/v1/incidents/{incident_id}/changes", params={"hours_before": 0}, headers=auth
        )
        assert narrow.status_code == 200
        assert narrow.json() == []

        service_id = demo["services"][0]["id"]
        listed = await client.get(f"/v1/services/{service_id}/changes", headers=auth)
        assert listed.status_code == 200
        [item] = listed.json()["items"]
        assert item["summary"] == "Deployed checkout v2.14.0 to production"
        assert item["links"] == [
            {"href": "https://ci.example.com/builds/8812", "text": "Build 8812"}
        ]
        assert item["custom_details"]["commit"] == "3f9a1c2"

    async def test_recent_change_listed_on_incident(
        self, client: httpx.AsyncClient, keys: dict[str, str], auth: dict[str, str]
    ) -> None:
        key = keys["pagerduty"]
        deploy = {"routing_key": key, "payload": {"summary": "Deploy v2.15.0", "source": "ci"}}
        response = await client.post("/v2/change/enqueue", content=json.dumps(deploy).encode())
        assert response.status_code == 202
        await client.post(
            "/v2/enqueue", content=pagerduty_body(payload_json("pagerduty/trigger.json"), key)
        )
        incident_id = (await client.get("/v1/incidents", headers=auth)).json()["items"][0]["id"]
        changes = await client.get(f"/v1/incidents/{incident_id}/changes", headers=auth)
        assert [change["summary"] for change in changes.json()] == ["Deploy v2.15.0"]

    async def test_change_event_without_summary(
        self, client: httpx.AsyncClient, keys: dict[str, str]
    ) -> None:
        body = {"routing_key": keys["pagerduty"], "payload": {"source": "ci"}}
        response = await client.post("/v2/change/enqueue", content=json.dumps(body).encode())
        assert response.status_code == 400
        assert response.json()["errors"] == ["payload.summary: missing; say what changed"]


def genie(key: str) -> dict[str, str]:
    return {"Authorization": f"GenieKey {key}"}


class TestOpsgenie:
    async def test_nul_in_identifier_is_400(
        self, client: httpx.AsyncClient, keys: dict[str, str]
    ) -> None:
        response = await client.post(
            "/v2/alerts/a%00b/close",
            params={"identifierType": "alias"},
            headers=genie(keys["opsgenie"]),
            json={},
        )

        assert response.status_code == 400, response.text
        assert response.json()["field"] == "identifier"

    @pytest.mark.parametrize("identifier", ["a%ED%A0%80b", "%FF%FE"])
    async def test_identifier_not_utf8_is_400(
        self, client: httpx.AsyncClient, keys: dict[str, str], identifier: str
    ) -> None:
        response = await client.post(
            f"/v2/alerts/{identifier}/acknowledge",
            params={"identifierType": "alias"},
            headers=genie(keys["opsgenie"]),
            json={},
        )

        assert response.status_code == 400, response.text
        assert response.json()["field"] == "identifier"
        assert "not valid UTF-8" in response.json()["detail"]

    async def test_create_acknowledge_close_by_alias(
        self, client: httpx.AsyncClient, keys: dict[str, str], raw_db: asyncpg.Connection
    ) -> None:
        headers = genie(keys["opsgenie"])
        created = await client.post(
            "/v2/alerts", content=payload_bytes("opsgenie/create-alert.json"), headers=headers
        )
        assert created.status_code == 202, created.text
        assert created.json()["result"] == "Request will be processed"
        assert len(created.json()["requestId"]) == 36
        assert await raw_db.fetchval("SELECT priority FROM incidents") == "P2"

        alias = "orders-consumer-queue-depth"
        acknowledged = await client.post(
            f"/v2/alerts/{alias}/acknowledge",
            params={"identifierType": "alias"},
            content=payload_bytes("opsgenie/acknowledge-alert.json"),
            headers=headers,
        )
        assert acknowledged.status_code == 202, acknowledged.text
        assert await raw_db.fetchval("SELECT status FROM incidents") == "acknowledged"

        closed = await client.post(
            f"/v2/alerts/{alias}/close",
            params={"identifierType": "alias"},
            content=payload_bytes("opsgenie/close-alert.json"),
            headers=headers,
        )
        assert closed.status_code == 202, closed.text
        assert await raw_db.fetchval("SELECT status FROM incidents") == "resolved"

    async def test_close_by_alert_id(
        self, client: httpx.AsyncClient, keys: dict[str, str], raw_db: asyncpg.Connection
    ) -> None:
        headers = genie(keys["opsgenie"])
        await client.post(
            "/v2/alerts", content=payload_bytes("opsgenie/create-alert.json"), headers=headers
        )
        alert_id = await raw_db.fetchval("SELECT id FROM alerts")
        closed = await client.post(f"/v2/alerts/{alert_id}/close", headers=headers)
        assert closed.status_code == 202, closed.text
        assert await raw_db.fetchval("SELECT status FROM alerts") == "resolved"

    async def test_note_on_timeline(
        self,
        client: httpx.AsyncClient,
        keys: dict[str, str],
        auth: dict[str, str],
        raw_db: asyncpg.Connection,
    ) -> None:
        headers = genie(keys["opsgenie"])
        await client.post(
            "/v2/alerts", content=payload_bytes("opsgenie/create-alert.json"), headers=headers
        )
        noted = await client.post(
            "/v2/alerts/orders-consumer-queue-depth/notes?identifierType=alias",
            content=payload_bytes("opsgenie/add-note.json"),
            headers=headers,
        )
        assert noted.status_code == 202, noted.text
        incident_id = await raw_db.fetchval("SELECT id FROM incidents")
        detail = (await client.get(f"/v1/incidents/{incident_id}", headers=auth)).json()
        notes = [entry for entry in detail["timeline"] if entry["kind"] == "alert.note"]
        assert [entry["data"]["note"] for entry in notes] == ["Lag now 4,210 messages and falling"]

    async def test_missing_genie_key(self, client: httpx.AsyncClient, demo: Any) -> None:
        response = await client.post(
            "/v2/alerts", content=payload_bytes("opsgenie/create-alert.json")
        )
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM_JSON
        assert "GenieKey" in response.json()["detail"]

    async def test_tiny_id_rejected(self, client: httpx.AsyncClient, keys: dict[str, str]) -> None:
        response = await client.post(
            "/v2/alerts/42/close?identifierType=tiny", headers=genie(keys["opsgenie"])
        )
        assert response.status_code == 400
        assert response.json()["field"] == "identifierType"

    async def test_note_without_text(self, client: httpx.AsyncClient, keys: dict[str, str]) -> None:
        response = await client.post(
            "/v2/alerts/a/notes?identifierType=alias",
            content=b'{"user": "x"}',
            headers=genie(keys["opsgenie"]),
        )
        assert response.status_code == 400
        assert response.json()["field"] == "note"


class TestGeneric:
    async def test_alert_then_resolve(
        self, client: httpx.AsyncClient, keys: dict[str, str], raw_db: asyncpg.Connection
    ) -> None:
        path = f"/ingest/generic/{keys['generic']}"
        fired = await client.post(path, content=payload_bytes("generic/alert.json"))
        assert fired.status_code == 202, fired.text
        assert fired.json()["dedup_keys"] == ["backup-nightly/storage-02"]
        resolved = await client.post(path, content=payload_bytes("generic/resolved.json"))
        assert resolved.status_code == 202, resolved.text
        assert await raw_db.fetchval("SELECT status FROM incidents") == "resolved"

    async def test_signature_required_once_secret_set(
        self,
        client: httpx.AsyncClient,
        keys: dict[str, str],
        auth: dict[str, str],
        raw_db: asyncpg.Connection,
    ) -> None:
        generic_id = await integration_id(raw_db, "generic")
        created = await client.post(f"/v1/integrations/{generic_id}/signing-secret", headers=auth)
        assert created.status_code == 201, created.text
        secret = created.json()["signing_secret"]
        stored = await raw_db.fetchval(
            "SELECT signing_secret_encrypted FROM integrations WHERE id = $1::uuid", generic_id
        )
        assert stored and secret not in stored

        path = f"/ingest/generic/{keys['generic']}"
        body = payload_bytes("generic/alert.json")
        unsigned = await client.post(path, content=body)
        assert unsigned.status_code == 401
        assert unsigned.json()["field"] == "X-Tocsin-Signature"
        wrong = await client.post(
            path, content=body, headers={"X-Tocsin-Signature": sign("other", body)}
        )
        assert wrong.status_code == 401
        assert "does not match" in wrong.json()["detail"]
        # An unsigned invalid body gets 401 too, not a parse error about the format.
        invalid = await client.post(path, content=b'{"title": 1}')
        assert invalid.status_code == 401
        assert invalid.json()["field"] == "X-Tocsin-Signature"
        assert await count(raw_db, "alerts") == 0
        signed_invalid = await client.post(
            path,
            content=b'{"title": 1}',
            headers={"X-Tocsin-Signature": sign(secret, b'{"title": 1}')},
        )
        assert signed_invalid.status_code == 400
        assert signed_invalid.json()["field"] == "title"

        signed = await client.post(
            path, content=body, headers={"X-Tocsin-Signature": sign(secret, body)}
        )
        assert signed.status_code == 202, signed.text

        removed = await client.delete(f"/v1/integrations/{generic_id}/signing-secret", headers=auth)
        assert removed.status_code == 204
        again = await client.post(path, content=payload_bytes("generic/resolved.json"))
        assert again.status_code == 202

    async def test_signing_secret_only_for_generic(
        self, client: httpx.AsyncClient, auth: dict[str, str], raw_db: asyncpg.Connection
    ) -> None:
        alertmanager_id = await integration_id(raw_db, "alertmanager")
        refused = await client.post(
            f"/v1/integrations/{alertmanager_id}/signing-secret", headers=auth
        )
        assert refused.status_code == 422
        assert "only generic" in refused.json()["detail"]
        stored = await raw_db.fetchval(
            "SELECT signing_secret_encrypted FROM integrations WHERE id = $1::uuid",
            alertmanager_id,
        )
        assert stored is None


class TestDemo:
    async def test_every_format_has_key_and_url(self, demo: dict[str, Any]) -> None:
        integrations = demo["services"][0]["integrations"]
        assert set(integrations) == {
            "alertmanager",
            "grafana",
            "pagerduty",
            "opsgenie",
            "generic",
            "heartbeat",
        }
        assert integrations["pagerduty"]["url"] == "http://tocsin.test/v2/enqueue"
        assert integrations["opsgenie"]["url"] == "http://tocsin.test/v2/alerts"
        assert integrations["grafana"]["url"] == (
            f"http://tocsin.test/ingest/grafana/{integrations['grafana']['key']}"
        )
        assert all(len(integration["key"]) == 32 for integration in integrations.values())


async def test_generic_group_key_groups_alerts(
    client: httpx.AsyncClient, demo: dict[str, Any], raw_db: asyncpg.Connection
) -> None:
    url = demo["services"][0]["integrations"]["generic"]["url"].split("tocsin.test", 1)[-1]
    for key in ("disk-a", "disk-b"):
        answer = await client.post(
            url, json={"title": f"Disk {key}", "dedup_key": key, "group_key": "storage"}
        )
        assert answer.status_code == 202, answer.text
    rows = await raw_db.fetch("SELECT alert_count, grouping->>'reason' AS reason FROM incidents")
    assert [row["alert_count"] for row in rows] == [2]
    assert rows[0]["reason"] == "same generic group (group_key)"
