"""End to end: maintenance windows, silences and suppressing rules stop paging and
escalation, and escalation resumes where it paused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app.incidents.paging import PagingContext
from app.rules import holds
from tests.rules.conftest import am_alert, pages, post_alerts, timeline, timeline_kinds
from tests.support.jobs import advance_clock, drain_jobs, queued_jobs

pytestmark = pytest.mark.asyncio


def iso(at: datetime) -> str:
    return at.isoformat()


async def create_window(
    client: httpx.AsyncClient, auth: dict[str, str], service_id: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/maintenance-windows",
        headers=auth,
        json={"service_id": service_id, "name": "Database upgrade", **body},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def create_silence(
    client: httpx.AsyncClient, auth: dict[str, str], **body: Any
) -> dict[str, Any]:
    response = await client.post("/v1/silences", headers=auth, json={"comment": "known", **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def incident_status(raw_db: asyncpg.Connection, incident_id: str) -> tuple[str, int]:
    row = await raw_db.fetchrow(
        "SELECT status, escalation_step FROM incidents WHERE id = $1::uuid", incident_id
    )
    return row["status"], row["escalation_step"]


class TestMaintenanceWindow:
    async def test_window_holds_then_escalation_resumes(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
        service_id: str,
        two_level_policy: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        now = datetime.now(UTC)
        window_end = now + timedelta(minutes=30)
        window = await create_window(
            client,
            auth,
            service_id,
            starts_at=iso(now - timedelta(minutes=1)),
            ends_at=iso(window_end),
        )
        assert window["active"] is True

        body = await post_alerts(client, alertmanager_path, am_alert("m1"), am_alert("m2"))
        incident_id = body["incidents_opened"][0]
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, incident_id) == 0
        assert await incident_status(raw_db, incident_id) == ("triggered", 0)
        held = await timeline(raw_db, incident_id, "escalation.held")
        assert len(held) == 1
        assert "maintenance window 'Database upgrade'" in held[0]["message"]
        applied = await timeline(raw_db, incident_id, "rules.applied")
        assert "maintenance window" in applied[0]["message"]

        # Nothing runs before the window ends, however often the queue is drained.
        await advance_clock(raw_db, timedelta(minutes=29))
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, incident_id) == 0
        resume = [job for job in await queued_jobs(raw_db) if "resume" in job["dedupe_key"]]
        assert len(resume) == 1

        # The window ends: the durable job at its end starts escalation at level 1.
        monkeypatch.setattr(holds, "utcnow", lambda: window_end + timedelta(seconds=1))
        await advance_clock(raw_db, timedelta(minutes=2))
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, incident_id) == 1
        assert await incident_status(raw_db, incident_id) == ("triggered", 1)
        assert "escalation.resumed" in await timeline_kinds(raw_db, incident_id)

        # And goes on to level 2 after its delay.
        await advance_clock(raw_db, timedelta(minutes=6))
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, incident_id) == 2
        assert await incident_status(raw_db, incident_id) == ("triggered", 2)

    async def test_window_of_other_service_does_not_hold(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
    ) -> None:
        other = await client.post("/v1/services", headers=auth, json={"name": "Elsewhere"})
        now = datetime.now(UTC)
        await create_window(
            client,
            auth,
            other.json()["id"],
            starts_at=iso(now - timedelta(minutes=1)),
            ends_at=iso(now + timedelta(hours=1)),
        )
        body = await post_alerts(client, alertmanager_path, am_alert("o1"))
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, body["incidents_opened"][0]) == 1

    async def test_deleting_window_releases_incidents(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
        service_id: str,
    ) -> None:
        now = datetime.now(UTC)
        window = await create_window(
            client,
            auth,
            service_id,
            starts_at=iso(now - timedelta(minutes=1)),
            ends_at=iso(now + timedelta(hours=1)),
        )
        body = await post_alerts(client, alertmanager_path, am_alert("w1"))
        incident_id = body["incidents_opened"][0]
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, incident_id) == 0

        deleted = await client.delete(f"/v1/maintenance-windows/{window['id']}", headers=auth)
        assert deleted.status_code == 204
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, incident_id) == 1
        assert await raw_db.fetchval("SELECT count(*) FROM paging_holds") == 0

    async def test_recurring_window_validation(
        self, client: httpx.AsyncClient, auth: dict[str, str], service_id: str
    ) -> None:
        response = await client.post(
            "/v1/maintenance-windows",
            headers=auth,
            json={
                "service_id": service_id,
                "name": "weekly",
                "starts_at": "2026-03-22T00:00:00Z",
                "ends_at": "2026-03-22T03:00:00Z",
                "time_zone": "Europe/Berlin",
                "rrule": "FREQ=WEEKLY;BYDAY=XX",
            },
        )
        assert response.status_code == 422
        assert response.json()["field"] == "rrule"
        created = await create_window(
            client,
            auth,
            service_id,
            starts_at="2026-03-22T00:00:00Z",
            ends_at="2026-03-22T03:00:00Z",
            time_zone="Europe/Berlin",
            rrule="FREQ=WEEKLY;BYDAY=SU",
        )
        assert created["current_or_next"] is not None
        log = (
            await client.get(
                "/v1/rules/audit-log", headers=auth, params={"entity_id": created["id"]}
            )
        ).json()["items"]
        assert [entry["action"] for entry in log] == ["created"]


class TestSilence:
    async def test_silence_holds_paging_until_expired(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
        service_id: str,
        two_level_policy: str,
    ) -> None:
        silence = await create_silence(
            client,
            auth,
            matchers=['alertname="DiskFull"', 'env=~"prod|staging"'],
            ends_at=iso(datetime.now(UTC) + timedelta(hours=2)),
            comment="disk replaced tonight",
        )
        assert silence["status"] == "active"
        assert silence["created_by"]["name"] == "Demo admin"

        body = await post_alerts(client, alertmanager_path, am_alert("s1", {"env": "prod"}))
        incident_id = body["incidents_opened"][0]
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, incident_id) == 0
        held = await timeline(raw_db, incident_id, "escalation.held")
        assert "disk replaced tonight" in held[0]["message"]
        assert json.loads(held[0]["data"])["hold"] == "silence"
        await advance_clock(raw_db, timedelta(minutes=30))
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, incident_id) == 0
        assert await incident_status(raw_db, incident_id) == ("triggered", 0)

        # Expiring it takes effect at once: the held step runs now.
        expired = await client.post(f"/v1/silences/{silence['id']}/expire", headers=auth)
        assert expired.status_code == 200, expired.text
        assert expired.json()["status"] == "expired"
        assert expired.json()["silenced_alerts"] == 1
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, incident_id) == 1
        assert await incident_status(raw_db, incident_id) == ("triggered", 1)

        # New alerts are no longer silenced either.
        again = await post_alerts(client, alertmanager_path, am_alert("s2", {"env": "prod"}))
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, again["incidents_opened"][0]) == 1

    async def test_escalation_resumes_when_silence_ends(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        ends_at = datetime.now(UTC) + timedelta(minutes=20)
        await create_silence(client, auth, matchers=['alertname="DiskFull"'], ends_at=iso(ends_at))
        body = await post_alerts(client, alertmanager_path, am_alert("e1"))
        incident_id = body["incidents_opened"][0]
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, incident_id) == 0
        hold = await raw_db.fetchrow("SELECT resume_at FROM paging_holds")
        assert hold["resume_at"] == ends_at

        monkeypatch.setattr(holds, "utcnow", lambda: ends_at + timedelta(seconds=1))
        await advance_clock(raw_db, timedelta(minutes=21))
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, incident_id) == 1
        assert await raw_db.fetchval("SELECT count(*) FROM paging_holds") == 0

    async def test_non_matching_alert_still_pages(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
    ) -> None:
        await create_silence(
            client,
            auth,
            matchers=['env="staging"'],
            ends_at=iso(datetime.now(UTC) + timedelta(hours=1)),
        )
        body = await post_alerts(client, alertmanager_path, am_alert("n1", {"env": "prod"}))
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, body["incidents_opened"][0]) == 1

    async def test_paged_then_silenced_incident_stops_paging(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
        service_id: str,
        two_level_policy: str,
    ) -> None:
        body = await post_alerts(client, alertmanager_path, am_alert("p1", {"env": "prod"}))
        incident_id = body["incidents_opened"][0]
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, incident_id) == 1

        await create_silence(
            client,
            auth,
            matchers=['env="prod"'],
            service_id=service_id,
            ends_at=iso(datetime.now(UTC) + timedelta(hours=1)),
            comment="we are on it",
        )
        kinds = await timeline_kinds(raw_db, incident_id)
        assert "escalation.held" in kinds

        # Level 2 is due after 5 minutes, but the silence keeps it from paging.
        await advance_clock(raw_db, timedelta(minutes=10))
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, incident_id) == 1
        assert await incident_status(raw_db, incident_id) == ("triggered", 1)
        hold = await raw_db.fetchrow("SELECT kind, step FROM paging_holds")
        assert (hold["kind"], hold["step"]) == ("silence", 1)

    async def test_silence_cancels_pending_notifications(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
    ) -> None:
        body = await post_alerts(client, alertmanager_path, am_alert("c1"))
        incident_id = body["incidents_opened"][0]
        # Run the escalation step only, so its notification waits for delivery.
        step = await raw_db.fetchrow(
            "DELETE FROM pgqueuer WHERE entrypoint = 'incident.triggered' RETURNING payload"
        )
        assert step is not None
        from app.jobs.worker import HANDLERS

        await HANDLERS["incident.triggered"](paging, json.loads(step["payload"]))
        assert (
            await raw_db.fetchval(
                "SELECT status FROM notifications WHERE incident_id = $1::uuid", incident_id
            )
            == "pending"
        )

        await create_silence(
            client,
            auth,
            matchers=['alertname="DiskFull"'],
            ends_at=iso(datetime.now(UTC) + timedelta(hours=1)),
        )
        assert (
            await raw_db.fetchval(
                "SELECT status FROM notifications WHERE incident_id = $1::uuid", incident_id
            )
            == "cancelled"
        )
        assert "notification.cancelled" in await timeline_kinds(raw_db, incident_id)
        await drain_jobs(raw_db, paging)
        assert await raw_db.fetchval("SELECT count(*) FROM delivery_attempts") == 0

    async def test_until_resolved_silence_ends_with_its_alerts(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
    ) -> None:
        silence = await create_silence(
            client, auth, matchers=['alertname="DiskFull"'], until_resolved=True
        )
        first = await post_alerts(client, alertmanager_path, am_alert("u1"))
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, first["incidents_opened"][0]) == 0

        await post_alerts(client, alertmanager_path, am_alert("u1", status="resolved"))
        await drain_jobs(raw_db, paging)
        # The silenced alert resolved, so the silence is over: the next occurrence pages.
        second = await post_alerts(
            client, alertmanager_path, am_alert("u1", starts_at=iso(datetime.now(UTC)))
        )
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, second["incidents_opened"][0]) == 1
        state = (await client.get(f"/v1/silences/{silence['id']}", headers=auth)).json()
        assert state["status"] == "expired"
        assert state["expired_at"] is not None

    async def test_silence_validation(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        no_end = await client.post(
            "/v1/silences", headers=auth, json={"matchers": ['a="b"'], "comment": "x"}
        )
        assert no_end.status_code == 422
        assert no_end.json()["field"] == "ends_at"
        bad = await client.post(
            "/v1/silences",
            headers=auth,
            json={"matchers": ['a=~"("'], "until_resolved": True, "comment": "x"},
        )
        assert bad.status_code == 422
        assert bad.json()["field"] == "matchers.0"
        no_comment = await client.post(
            "/v1/silences", headers=auth, json={"matchers": ['a="b"'], "until_resolved": True}
        )
        assert no_comment.status_code == 422
        assert no_comment.json()["field"] == "body.comment"


class TestSuppressingRule:
    async def test_suppressed_alert_never_pages_until_another_joins(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
    ) -> None:
        response = await client.post(
            "/v1/rules",
            headers=auth,
            json={
                "name": "quiet dev",
                "conditions": {"matchers": ['env="dev"']},
                "actions": {"suppress": True},
            },
        )
        assert response.status_code == 201
        body = await post_alerts(
            client, alertmanager_path, am_alert("q1", {"env": "dev"}), group_key="shared"
        )
        incident_id = body["incidents_opened"][0]
        await drain_jobs(raw_db, paging)
        await advance_clock(raw_db, timedelta(hours=1))
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, incident_id) == 0
        held = await timeline(raw_db, incident_id, "escalation.held")
        assert "suppressed by a rule" in held[0]["message"]

        # A prod alert in the same group is not suppressed, so the incident pages now.
        joined = await post_alerts(
            client, alertmanager_path, am_alert("q2", {"env": "prod"}), group_key="shared"
        )
        assert joined["incidents_opened"] == []
        await drain_jobs(raw_db, paging)
        assert await pages(raw_db, incident_id) == 1
        assert "escalation.resumed" in await timeline_kinds(raw_db, incident_id)
