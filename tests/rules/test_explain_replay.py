"""POST /v1/rules/explain and POST /v1/rules/replay over stored data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app.incidents.paging import PagingContext
from app.rules.formats import available_formats
from tests.conftest import payload_json
from tests.rules.conftest import am_alert, am_payload, post_alerts
from tests.support.jobs import drain_jobs

pytestmark = pytest.mark.asyncio

# 150 nested brackets: a parse tree deeper than cel-python can transpile recursively.
DEEP_CEL = "(" * 150 + "true" + ")" * 150


async def integration_id(raw_db: asyncpg.Connection) -> str:
    return str(await raw_db.fetchval("SELECT id FROM integrations WHERE kind = 'alertmanager'"))


class TestExplain:
    async def test_explains_each_rule_and_result(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        raw_db: asyncpg.Connection,
    ) -> None:
        for body in (
            {
                "name": "staging",
                "conditions": {"matchers": ['env="staging"']},
                "actions": {"suppress": True},
            },
            {
                "name": "prod critical",
                "conditions": {"matchers": ['env="prod"', 'severity="critical"']},
                "actions": {"priority": "P1", "tags": ["prod"]},
                "continue": True,
            },
            {
                "name": "night",
                "conditions": {
                    "time": [
                        {
                            "time_zone": "Europe/Berlin",
                            "times": [{"start_time": "00:00", "end_time": "06:00"}],
                        }
                    ]
                },
                "actions": {"urgency": "low"},
            },
        ):
            response = await client.post("/v1/rules", headers=auth, json=body)
            assert response.status_code == 201, response.text

        response = await client.post(
            "/v1/rules/explain",
            headers=auth,
            json={
                "integration_id": await integration_id(raw_db),
                "payload": payload_json("alertmanager/firing-two-alerts.json"),
                "at": "2026-03-02T12:00:00Z",
            },
        )
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["format"] == "alertmanager"
        assert len(result["events"]) == 2
        first = result["events"][0]
        assert first["event"]["labels"]["env"] == "prod"
        assert first["event"]["severity"] == "critical"

        staging, prod, night = first["rules"]
        assert staging["matched"] is False
        assert staging["conditions"][0] == {
            "condition": 'matcher env="staging"',
            "matched": False,
            "detail": 'env is "prod"',
        }
        assert 'env="staging" failed' in staging["note"]
        assert prod["applied"] is True
        assert night["matched"] is False
        assert night["conditions"][0]["detail"] == "it is Monday 13:00 in Europe/Berlin"
        assert first["decision"]["priority"] == "P1"
        assert first["decision"]["tags"] == ["prod"]
        assert first["pages"] is True
        assert first["silences"] == []
        assert first["maintenance_window"] is None

    async def test_draft_rules_and_silence(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        service_id: str,
    ) -> None:
        silence = await client.post(
            "/v1/silences",
            headers=auth,
            json={
                "matchers": ['alertname="DiskFull"'],
                "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                "comment": "disk swap",
            },
        )
        assert silence.status_code == 201, silence.text
        response = await client.post(
            "/v1/rules/explain",
            headers=auth,
            json={
                "service_id": service_id,
                "format": "alertmanager",
                "payload": am_payload(am_alert("x1", {"severity": "info"})),
                "rules": [{"name": "draft", "actions": {"impact": "high", "urgency": "high"}}],
            },
        )
        assert response.status_code == 200, response.text
        event = response.json()["events"][0]
        assert event["rules"][0]["name"] == "draft"
        assert event["decision"]["priority"] == "P1"
        assert event["silences"][0]["comment"] == "disk swap"
        assert event["pages"] is False
        assert (await client.get("/v1/rules", headers=auth)).json()["items"] == []

    @pytest.mark.parametrize(
        ("format_name", "fixture"),
        [
            ("alertmanager", "alertmanager/firing-two-alerts.json"),
            ("grafana", "grafana/firing.json"),
            ("pagerduty", "pagerduty/trigger-minimal.json"),
            ("opsgenie", "opsgenie/create-alert.json"),
            ("generic", "generic/alert.json"),
        ],
    )
    async def test_every_sender_format(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        service_id: str,
        format_name: str,
        fixture: str,
    ) -> None:
        response = await client.post(
            "/v1/rules/explain",
            headers=auth,
            json={
                "service_id": service_id,
                "format": format_name,
                "payload": payload_json(fixture),
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()["format"] == format_name
        assert response.json()["events"]
        assert response.json()["events"][0]["decision"]["priority"]

    @pytest.mark.parametrize(
        ("body", "status", "field"),
        [
            ({"format": "fax", "payload": {}}, 422, "format"),
            ({"format": "alertmanager", "payload": {"alerts": "no"}}, 422, "payload.alerts"),
            ({"payload": {}}, 422, "integration_id"),
            ({"integration_id": str(uuid.UUID(int=5)), "payload": {}}, 404, "integration_id"),
            (
                {
                    "format": "alertmanager",
                    "payload": {"alerts": []},
                    "rules": [{"name": "x", "conditions": {"matchers": ['a=~"["']}}],
                },
                422,
                "rules.0.conditions.matchers.0",
            ),
            (
                {
                    "format": "alertmanager",
                    "payload": {"alerts": []},
                    "rules": [{"name": "x", "conditions": {"cel": DEEP_CEL}}],
                },
                422,
                "rules.0.conditions.cel",
            ),
        ],
    )
    async def test_bad_requests(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        service_id: str,
        body: dict[str, Any],
        status: int,
        field: str,
    ) -> None:
        if "integration_id" not in body and body.get("format"):
            body = {**body, "service_id": service_id}
        response = await client.post("/v1/rules/explain", headers=auth, json=body)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"] == field


class TestReplay:
    async def test_reports_differences_without_changing_anything(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
        service_id: str,
    ) -> None:
        start = datetime.now(UTC) - timedelta(seconds=1)
        prod = await post_alerts(client, alertmanager_path, am_alert("p1", {"env": "prod"}))
        staging = await post_alerts(
            client, alertmanager_path, am_alert("s1", {"env": "staging", "severity": "warning"})
        )
        await drain_jobs(raw_db, paging)
        stored_before = await raw_db.fetch("SELECT id, priority FROM incidents ORDER BY id")
        end = datetime.now(UTC) + timedelta(seconds=1)

        draft = [
            {
                "name": "quiet staging",
                "conditions": {"matchers": ['env="staging"']},
                "actions": {"suppress": True},
            },
            {
                "name": "prod is P2",
                "conditions": {"matchers": ['env="prod"']},
                "actions": {"priority": "P2"},
            },
        ]
        response = await client.post(
            "/v1/rules/replay",
            headers=auth,
            json={"since": start.isoformat(), "until": end.isoformat(), "rules": draft},
        )
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["alerts_evaluated"] == 2
        assert report["alerts_without_decision"] == 0
        assert report["incidents_evaluated"] == 2
        assert report["incidents_changed"] == 2
        assert report["changes"] == {"priority": 1, "route": 0, "suppression": 1, "dropped": 0}
        assert report["pages"]["incidents_paged"] == 2
        assert report["pages"]["pages_sent"] == 2
        assert report["pages"]["incidents_not_paging_under_draft"] == 1
        assert report["pages"]["pages_not_sent_under_draft"] == 1

        by_incident = {item["incident_id"]: item for item in report["incidents"]}
        changed_prod = by_incident[prod["incidents_opened"][0]]
        assert changed_prod["changes"] == ["priority"]
        assert changed_prod["current"]["priority"] == "P1"
        assert changed_prod["draft"]["priority"] == "P2"
        assert changed_prod["paging"] is None
        changed_staging = by_incident[staging["incidents_opened"][0]]
        assert changed_staging["changes"] == ["suppression"]
        assert changed_staging["paging"] == "would_not_page"
        assert changed_staging["pages_sent"] == 1

        assert await raw_db.fetch("SELECT id, priority FROM incidents ORDER BY id") == stored_before
        assert await raw_db.fetchval("SELECT count(*) FROM rules") == 0

    async def test_stored_rules_replay_to_no_change(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
    ) -> None:
        response = await client.post(
            "/v1/rules",
            headers=auth,
            json={
                "name": "quiet",
                "conditions": {"matchers": ['env="dev"']},
                "actions": {"suppress": True},
            },
        )
        assert response.status_code == 201
        start = datetime.now(UTC) - timedelta(seconds=1)
        await post_alerts(client, alertmanager_path, am_alert("q1", {"env": "dev"}))
        await post_alerts(client, alertmanager_path, am_alert("q2", {"env": "prod"}))
        report = (
            await client.post(
                "/v1/rules/replay",
                headers=auth,
                json={
                    "since": start.isoformat(),
                    "until": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
                },
            )
        ).json()
        assert report["alerts_evaluated"] == 2
        assert report["incidents_changed"] == 0
        assert report["incidents"] == []

        # Without the rule the suppressed incident would page.
        unsuppressed = (
            await client.post(
                "/v1/rules/replay",
                headers=auth,
                json={
                    "since": start.isoformat(),
                    "until": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
                    "rules": [],
                },
            )
        ).json()
        assert unsuppressed["pages"]["incidents_paging_under_draft"] == 1
        assert unsuppressed["incidents"][0]["paging"] == "would_page"

    async def test_deeply_nested_cel_is_422(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        now = datetime.now(UTC)
        response = await client.post(
            "/v1/rules/replay",
            headers=auth,
            json={
                "since": (now - timedelta(hours=1)).isoformat(),
                "until": now.isoformat(),
                "rules": [{"name": "deep", "conditions": {"cel": DEEP_CEL}}],
            },
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"] == "rules.0.conditions.cel"
        assert "nested too deeply" in response.json()["detail"]

    async def test_range_and_service_filter(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
    ) -> None:
        await post_alerts(client, alertmanager_path, am_alert("old"))
        later = datetime.now(UTC) + timedelta(milliseconds=5)
        empty = (
            await client.post(
                "/v1/rules/replay",
                headers=auth,
                json={
                    "since": later.isoformat(),
                    "until": (later + timedelta(hours=1)).isoformat(),
                },
            )
        ).json()
        assert empty["alerts_evaluated"] == 0
        other = (
            await client.post(
                "/v1/rules/replay",
                headers=auth,
                json={
                    "since": (later - timedelta(hours=1)).isoformat(),
                    "until": later.isoformat(),
                    "service_id": str(uuid.uuid4()),
                },
            )
        ).json()
        assert other["alerts_evaluated"] == 0
        backwards = await client.post(
            "/v1/rules/replay",
            headers=auth,
            json={"since": later.isoformat(), "until": (later - timedelta(hours=1)).isoformat()},
        )
        assert backwards.status_code == 422
        assert backwards.json()["field"] == "until"


async def test_formats_are_the_parser_modules() -> None:
    formats = available_formats()
    assert "alertmanager" in formats
    assert "common" not in formats
    assert all(callable(parse) for parse in formats.values())
