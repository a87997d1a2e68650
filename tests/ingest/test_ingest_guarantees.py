"""The behaviour every sender relies on, checked through the HTTP endpoints and the job queue."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest

from app.incidents.paging import PagingContext
from tests.conftest import payload_bytes, payload_json
from tests.ingest.conftest import PROBLEM_JSON, count, integration_id, pagerduty_body
from tests.support.jobs import drain_jobs, queued_jobs

pytestmark = pytest.mark.asyncio


class TestEndWithoutOpenAlert:
    @pytest.mark.parametrize("fixture", ["pagerduty/resolve.json", "pagerduty/acknowledge.json"])
    async def test_pagerduty_succeeds_and_logs(
        self,
        client: httpx.AsyncClient,
        keys: dict[str, str],
        auth: dict[str, str],
        raw_db: asyncpg.Connection,
        fixture: str,
    ) -> None:
        body = pagerduty_body(payload_json(fixture), keys["pagerduty"])
        response = await client.post("/v2/enqueue", content=body)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "success"
        assert await count(raw_db, "incidents") == 0
        assert await count(raw_db, "alerts") == 0
        assert await queued_jobs(raw_db) == []

        log = await client.get(
            f"/v1/integrations/{await integration_id(raw_db, 'pagerduty')}/events", headers=auth
        )
        assert log.status_code == 200, log.text
        [event] = log.json()["items"]
        assert event["outcome"] == "ignored.no_open_alert"
        assert event["dedup_key"] == "db-primary-disk-usage/host-db-01"

    async def test_generic_resolve_succeeds(
        self, client: httpx.AsyncClient, keys: dict[str, str], raw_db: asyncpg.Connection
    ) -> None:
        response = await client.post(
            f"/ingest/generic/{keys['generic']}", content=payload_bytes("generic/resolved.json")
        )
        assert response.status_code == 202, response.text
        assert response.json()["events_ignored"] == 1
        assert await count(raw_db, "incidents") == 0
        assert await queued_jobs(raw_db) == []

    async def test_opsgenie_close_unknown_alias(
        self, client: httpx.AsyncClient, keys: dict[str, str], raw_db: asyncpg.Connection
    ) -> None:
        response = await client.post(
            "/v2/alerts/never-created/close?identifierType=alias",
            headers={"Authorization": f"GenieKey {keys['opsgenie']}"},
        )
        assert response.status_code == 202, response.text
        assert await count(raw_db, "events", "outcome = 'ignored.no_open_alert'") == 1
        assert await queued_jobs(raw_db) == []


class TestDuplicateDelivery:
    async def test_alertmanager_ha_pair_pages_once(
        self,
        client: httpx.AsyncClient,
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
    ) -> None:
        body = payload_bytes("alertmanager/firing-two-alerts.json")
        for _ in range(2):
            response = await client.post(alertmanager_path, content=body)
            assert response.status_code == 202, response.text
        await drain_jobs(raw_db, paging)
        assert await count(raw_db, "incidents") == 1
        assert await count(raw_db, "notifications", "event = 'incident.triggered'") == 1

    async def test_pagerduty_retry_pages_once(
        self,
        client: httpx.AsyncClient,
        keys: dict[str, str],
        raw_db: asyncpg.Connection,
        paging: PagingContext,
    ) -> None:
        body = pagerduty_body(payload_json("pagerduty/trigger.json"), keys["pagerduty"])
        answers = [await client.post("/v2/enqueue", content=body) for _ in range(3)]
        assert {answer.status_code for answer in answers} == {202}
        await drain_jobs(raw_db, paging)
        assert await count(raw_db, "incidents") == 1
        assert await raw_db.fetchval("SELECT event_count FROM alerts") == 3
        assert await count(raw_db, "notifications", "event = 'incident.triggered'") == 1


class TestTriggersWithoutKey:
    async def test_each_gets_own_key(
        self, client: httpx.AsyncClient, keys: dict[str, str], raw_db: asyncpg.Connection
    ) -> None:
        body = pagerduty_body(payload_json("pagerduty/trigger-minimal.json"), keys["pagerduty"])
        first = (await client.post("/v2/enqueue", content=body)).json()["dedup_key"]
        second = (await client.post("/v2/enqueue", content=body)).json()["dedup_key"]
        assert first != second
        assert await count(raw_db, "incidents", "status = 'triggered'") == 2

        resolve = {"routing_key": keys["pagerduty"], "event_action": "resolve", "dedup_key": first}
        response = await client.post("/v2/enqueue", content=json.dumps(resolve).encode())
        assert response.status_code == 202
        statuses = await raw_db.fetch("SELECT dedup_key, status FROM alerts")
        assert {row["dedup_key"]: row["status"] for row in statuses} == {
            first: "resolved",
            second: "firing",
        }

    async def test_generic_returns_generated_key(
        self, client: httpx.AsyncClient, keys: dict[str, str], raw_db: asyncpg.Connection
    ) -> None:
        path = f"/ingest/generic/{keys['generic']}"
        first = await client.post(path, json={"title": "Cron failed"})
        second = await client.post(path, json={"title": "Cron failed"})
        [first_key] = first.json()["dedup_keys"]
        [second_key] = second.json()["dedup_keys"]
        assert first_key != second_key
        await client.post(path, json={"status": "resolved", "dedup_key": second_key})
        assert await count(raw_db, "alerts", "status = 'firing'") == 1


async def test_batch_with_missing_fields_processed(
    client: httpx.AsyncClient, alertmanager_path: str, auth: dict[str, str]
) -> None:
    response = await client.post(
        alertmanager_path, content=payload_bytes("alertmanager/missing-fields.json")
    )
    assert response.status_code == 202, response.text
    assert response.json()["alerts_created"] == 4
    incident_id = response.json()["incidents_opened"][0]
    detail = (await client.get(f"/v1/incidents/{incident_id}", headers=auth)).json()
    assert sorted(alert["summary"] for alert in detail["alerts"]) == [
        "Batch queue at 100%",
        "BatchJobFailed",
        "BatchJobSlow",
        "no labels of its own",
    ]


async def test_unicode_survives_byte_identical(
    client: httpx.AsyncClient, keys: dict[str, str], auth: dict[str, str]
) -> None:
    sent = json.loads(payload_bytes("generic/unicode.json"))
    response = await client.post(
        f"/ingest/generic/{keys['generic']}", content=payload_bytes("generic/unicode.json")
    )
    assert response.status_code == 202, response.text
    incident_id = response.json()["incidents_opened"][0]
    detail = await client.get(f"/v1/incidents/{incident_id}", headers=auth)
    alert = detail.json()["alerts"][0]
    assert alert["summary"] == sent["title"]
    assert alert["dedup_key"] == sent["dedup_key"]
    assert alert["source"] == sent["source"]
    assert alert["labels"] == sent["labels"]
    assert alert["details"]["description"] == sent["description"]
    # The response carries the UTF-8 bytes themselves, not \u escapes a client must undo.
    assert sent["title"].encode() in detail.content
    assert sent["labels"]["rtl"].encode() in detail.content
    assert detail.json()["title"] == sent["title"]


class TestUnreadableValues:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"title": "x", "severity": "purple"}, "severity"),
            ({"title": "x", "severity": 11}, "severity"),
            ({"title": "x", "occurred_at": "last tuesday"}, "occurred_at"),
            ({"title": "x", "occurred_at": True}, "occurred_at"),
        ],
    )
    async def test_generic_names_value(
        self,
        client: httpx.AsyncClient,
        keys: dict[str, str],
        raw_db: asyncpg.Connection,
        body: dict[str, Any],
        field: str,
    ) -> None:
        response = await client.post(f"/ingest/generic/{keys['generic']}", json=body)
        assert response.status_code == 400
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["field"] == field
        assert await count(raw_db, "alerts") == 0

    async def test_alertmanager_timestamp_named(
        self, client: httpx.AsyncClient, alertmanager_path: str
    ) -> None:
        payload = payload_json("alertmanager/firing-two-alerts.json")
        payload["alerts"][1]["startsAt"] = "30.11.2026 08:00"
        response = await client.post(alertmanager_path, json=payload)
        assert response.status_code == 400
        assert response.json()["field"] == "alerts.1.startsAt"
        assert "30.11.2026 08:00" in response.json()["detail"]

    async def test_original_severity_kept(
        self,
        client: httpx.AsyncClient,
        keys: dict[str, str],
        auth: dict[str, str],
        raw_db: asyncpg.Connection,
    ) -> None:
        response = await client.post(
            f"/ingest/generic/{keys['generic']}",
            json={"title": "x", "severity": "WARN", "occurred_at": "2026-11-30T09:00:00+01:00"},
        )
        incident_id = response.json()["incidents_opened"][0]
        alert = (await client.get(f"/v1/incidents/{incident_id}", headers=auth)).json()["alerts"][0]
        assert alert["severity"] == "warning"
        assert alert["started_at"] == "2026-11-30T08:00:00Z"
        assert await raw_db.fetchval("SELECT payload->>'severity' FROM alerts") == "WARN"
        assert await raw_db.fetchval("SELECT payload->>'occurred_at' FROM events") == (
            "2026-11-30T09:00:00+01:00"
        )


class TestLimits:
    async def test_body_too_large(
        self, client: httpx.AsyncClient, keys: dict[str, str], settings: Any
    ) -> None:
        body = json.dumps({"title": "x" * settings.ingest_max_body_bytes}).encode()
        response = await client.post(f"/ingest/generic/{keys['generic']}", content=body)
        assert response.status_code == 413
        assert response.headers["content-type"] == PROBLEM_JSON
        assert "TOCSIN_INGEST_MAX_BODY_BYTES" in response.json()["detail"]

    async def test_too_many_labels(self, client: httpx.AsyncClient, keys: dict[str, str]) -> None:
        labels = {f"label{i}": "v" for i in range(200)}
        response = await client.post(
            f"/ingest/generic/{keys['generic']}", json={"title": "x", "labels": labels}
        )
        assert response.status_code == 400
        assert response.json()["field"] == "labels"
        assert "TOCSIN_INGEST_MAX_LABELS" in response.json()["detail"]

    async def test_long_summary_truncated_and_kept(
        self, client: httpx.AsyncClient, keys: dict[str, str], auth: dict[str, str]
    ) -> None:
        title = "Ω" * 3000
        response = await client.post(
            f"/ingest/generic/{keys['generic']}", json={"title": title, "dedup_key": "long"}
        )
        assert response.status_code == 202
        incident_id = response.json()["incidents_opened"][0]
        alert = (await client.get(f"/v1/incidents/{incident_id}", headers=auth)).json()["alerts"][0]
        assert len(alert["summary"]) == 1024
        assert alert["details"]["full_summary"] == title


class TestMalformedBodies:
    @pytest.mark.parametrize(
        ("body", "field", "message"),
        [
            (b'{"alerts": [{"status": "firing"', "body", "invalid JSON"),
            (b"[]", "body", "expected a JSON object, got an array"),
            (b'{"alerts": "none"}', "alerts", "expected an array, got a string"),
            (b'{"alerts": [{"labels": ["a"]}]}', "alerts.0.labels", "expected an object"),
            (b'{"alerts": [{"status": 1}]}', "alerts.0.status", "expected a string"),
        ],
    )
    async def test_named(
        self,
        client: httpx.AsyncClient,
        keys: dict[str, str],
        body: bytes,
        field: str,
        message: str,
    ) -> None:
        for kind in ("alertmanager", "grafana"):
            response = await client.post(f"/ingest/{kind}/{keys[kind]}", content=body)
            assert response.status_code == 400, kind
            assert response.headers["content-type"] == PROBLEM_JSON
            assert response.json()["field"] == field
            assert message in response.json()["detail"]

    async def test_opsgenie_array_body(
        self, client: httpx.AsyncClient, keys: dict[str, str]
    ) -> None:
        response = await client.post(
            "/v2/alerts", content=b"[]", headers={"Authorization": f"GenieKey {keys['opsgenie']}"}
        )
        assert response.status_code == 400
        assert response.json()["field"] == "body"


class TestUnstorableValues:
    """Values JSON allows but PostgreSQL cannot store are a 400 naming them, never a 500."""

    @pytest.mark.parametrize(
        ("path_of", "body", "field", "message"),
        [
            (
                "generic",
                rb'{"title": "x", "dedup_key": "k", "details": {"a": 1e400}}',
                "details.a",
                "beyond the range of a double",
            ),
            (
                "alertmanager",
                rb'{"groupKey": "g", "alerts": [{"labels": {"a": "b"}, "x": -1e400}]}',
                "alerts.0.x",
                "beyond the range of a double",
            ),
            (
                "generic",
                rb'{"title": "x", "dedup_key": "k", "details": {"\ud800": 1}}',
                "details.\\ud800",
                "unpaired surrogate",
            ),
            (
                "grafana",
                rb'{"alerts": [{"labels": {"\udfff": "v"}}]}',
                "alerts.0.labels.\\udfff",
                "unpaired surrogate",
            ),
        ],
    )
    async def test_named(
        self,
        client: httpx.AsyncClient,
        keys: dict[str, str],
        path_of: str,
        body: bytes,
        field: str,
        message: str,
    ) -> None:
        response = await client.post(f"/ingest/{path_of}/{keys[path_of]}", content=body)

        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["field"] == field
        assert message in response.json()["detail"]

    async def test_pagerduty_answers_in_its_shape(
        self, client: httpx.AsyncClient, keys: dict[str, str]
    ) -> None:
        body = (
            b'{"routing_key": "' + keys["pagerduty"].encode() + b'", "event_action": "trigger", '
            b'"payload": {"summary": "s", "source": "h", "severity": "error", '
            b'"custom_details": {"used": 1e400}}}'
        )
        response = await client.post("/v2/enqueue", content=body)

        assert response.status_code == 400, response.text
        assert response.json()["status"] == "invalid event"
        assert "beyond the range of a double" in json.dumps(response.json()["errors"])

    async def test_huge_integer_message(
        self, client: httpx.AsyncClient, keys: dict[str, str]
    ) -> None:
        body = b'{"title": "x", "dedup_key": "k", "details": {"n": ' + b"9" * 5000 + b"}}"
        response = await client.post(f"/ingest/generic/{keys['generic']}", content=body)

        assert response.status_code == 400
        assert "more than 4,300 digits" in response.json()["detail"]
        assert "set_int_max_str_digits" not in response.json()["detail"]


async def test_event_log_pages_without_repeats(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    raw_db: asyncpg.Connection,
) -> None:
    # One batch gives events that share received_at; the cursor must still split them.
    await client.post(alertmanager_path, content=payload_bytes("alertmanager/missing-fields.json"))
    await client.post(alertmanager_path, content=payload_bytes("alertmanager/truncated.json"))
    path = f"/v1/integrations/{await integration_id(raw_db, 'alertmanager')}/events"
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(path, params=params, headers=auth)).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6
    assert len(set(seen)) == 6
    newest = (await client.get(path, params={"limit": 1}, headers=auth)).json()["items"][0]
    assert newest["dedup_key"].startswith("aa")


async def test_event_log_unknown_integration(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.get(
        "/v1/integrations/00000000-0000-7000-8000-000000000000/events", headers=auth
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
