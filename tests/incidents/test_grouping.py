"""Grouping modes, thresholds, flapping, reopening and event order, through the ingest API."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest

from app.incidents.paging import PagingContext
from tests.support.jobs import advance_clock, drain_jobs, queued_jobs

pytestmark = pytest.mark.asyncio


def alert(
    fingerprint: str, *, group_key: str = "g", status: str = "firing", **labels: str
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "Test", **labels},
        "annotations": {"summary": f"alert {fingerprint}"},
        "startsAt": "2026-11-30T08:00:00Z",
        "endsAt": "2026-11-30T08:10:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    }


def body(*alerts: dict[str, Any], group_key: str = "g") -> dict[str, Any]:
    return {"version": "4", "groupKey": group_key, "status": "firing", "alerts": list(alerts)}


async def configure(
    client: httpx.AsyncClient, auth: dict[str, str], demo: dict[str, Any], **settings: Any
) -> None:
    service_id = demo["services"][0]["id"]
    answer = await client.patch(f"/v1/services/{service_id}", json=settings, headers=auth)
    assert answer.status_code == 200, answer.text


async def incidents(raw_db: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(
        await raw_db.fetch(
            "SELECT id, status, alert_count, grouping, flapping FROM incidents ORDER BY number"
        )
    )


async def test_by_fields_groups_across_sender_groups(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    raw_db: asyncpg.Connection,
) -> None:
    await configure(client, auth, demo, grouping_mode="by_fields", grouping_fields=["cluster"])
    await client.post(alertmanager_path, json=body(alert("a", cluster="eu"), group_key="g1"))
    await client.post(alertmanager_path, json=body(alert("b", cluster="eu"), group_key="g2"))
    await client.post(alertmanager_path, json=body(alert("c", cluster="us"), group_key="g1"))
    await client.post(alertmanager_path, json=body(alert("d"), alert("e"), group_key="g1"))
    rows = await incidents(raw_db)
    assert [row["alert_count"] for row in rows] == [2, 1, 1, 1]
    detail = (await client.get(f"/v1/incidents/{rows[0]['id']}", headers=auth)).json()
    assert detail["grouping"]["mode"] == "by_fields"
    assert detail["grouping"]["fields"] == {"cluster": "eu"}
    assert detail["grouping"]["reason"] == "same values of cluster"


async def test_by_fields_window_starts_new_incident(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    raw_db: asyncpg.Connection,
) -> None:
    await configure(
        client,
        auth,
        demo,
        grouping_mode="by_fields",
        grouping_fields=["cluster"],
        grouping_window_seconds=600,
    )
    await client.post(alertmanager_path, json=body(alert("a", cluster="eu")))
    await raw_db.execute("UPDATE incidents SET created_at = created_at - interval '11 minutes'")
    await client.post(alertmanager_path, json=body(alert("b", cluster="eu")))
    await client.post(alertmanager_path, json=body(alert("c", cluster="eu")))
    rows = await incidents(raw_db)
    assert [(row["status"], row["alert_count"]) for row in rows] == [
        ("triggered", 1),
        ("triggered", 2),
    ]
    kinds = await raw_db.fetch(
        "SELECT kind FROM timeline_entries WHERE incident_id = $1", rows[0]["id"]
    )
    assert "incident.grouping_window_closed" in [row["kind"] for row in kinds]


async def test_grouping_none_opens_one_incident_per_alert(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    raw_db: asyncpg.Connection,
) -> None:
    await configure(client, auth, demo, grouping_mode="none")
    await client.post(alertmanager_path, json=body(alert("a"), alert("b")))
    assert [row["alert_count"] for row in await incidents(raw_db)] == [1, 1]


async def test_by_fields_without_fields_is_422(
    client: httpx.AsyncClient, auth: dict[str, str], demo: dict[str, Any]
) -> None:
    service_id = demo["services"][0]["id"]
    answer = await client.patch(
        f"/v1/services/{service_id}", json={"grouping_mode": "by_fields"}, headers=auth
    )
    assert answer.status_code == 422
    assert answer.json()["field"] == "grouping_fields"


async def test_threshold_keeps_alerts_pending(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    raw_db: asyncpg.Connection,
) -> None:
    await configure(client, auth, demo, alert_threshold_count=3, alert_threshold_window_seconds=300)
    first = await client.post(alertmanager_path, json=body(alert("a")))
    assert first.json()["incidents_opened"] == []
    await client.post(alertmanager_path, json=body(alert("b")))
    assert await incidents(raw_db) == []
    outcomes = await raw_db.fetch("SELECT outcome FROM events")
    assert {row["outcome"] for row in outcomes} == {"alert.pending"}

    third = await client.post(alertmanager_path, json=body(alert("c")))
    assert len(third.json()["incidents_opened"]) == 1
    rows = await incidents(raw_db)
    assert [row["alert_count"] for row in rows] == [3]
    attached = await raw_db.fetchval(
        "SELECT count(*) FROM alerts WHERE incident_id = $1", rows[0]["id"]
    )
    assert attached == 3
    jobs = [job["entrypoint"] for job in await queued_jobs(raw_db)]
    assert jobs.count("incident.triggered") == 1


async def test_threshold_window_forgets_old_alerts(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    raw_db: asyncpg.Connection,
) -> None:
    await configure(client, auth, demo, alert_threshold_count=2, alert_threshold_window_seconds=60)
    await client.post(alertmanager_path, json=body(alert("a")))
    await raw_db.execute("UPDATE alerts SET first_seen_at = first_seen_at - interval '2 minutes'")
    await client.post(alertmanager_path, json=body(alert("b")))
    assert await incidents(raw_db) == []


async def cycle(client: httpx.AsyncClient, path: str, minute: int) -> None:
    """One occurrence of alert "f": fires at 08:<minute>, resolves a minute later."""
    firing = alert("f")
    firing["startsAt"] = f"2026-11-30T08:{minute:02d}:00Z"
    await client.post(path, json=body(firing))
    resolved = dict(firing, status="resolved", endsAt=f"2026-11-30T08:{minute + 1:02d}:00Z")
    await client.post(path, json=body(resolved))


async def test_flapping_alert_keeps_incident_open(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> None:
    await configure(
        client, auth, demo, flap_threshold=2, flap_window_seconds=3600, flap_settle_seconds=300
    )
    await cycle(client, alertmanager_path, 0)
    await cycle(client, alertmanager_path, 2)
    assert [row["status"] for row in await incidents(raw_db)] == ["resolved", "resolved"]
    await cycle(client, alertmanager_path, 4)  # the third occurrence: more than 2
    rows = await incidents(raw_db)
    assert [(row["status"], row["flapping"]) for row in rows] == [
        ("resolved", False),
        ("resolved", False),
        ("triggered", True),
    ]
    await cycle(client, alertmanager_path, 6)  # fires again: attaches, opens nothing new
    rows = await incidents(raw_db)
    assert len(rows) == 3
    assert rows[2]["alert_count"] == 2

    # Settling: the jobs run once the alert has stayed resolved for 300 s.
    await drain_jobs(raw_db, paging)
    assert (await incidents(raw_db))[2]["status"] == "triggered"
    await raw_db.execute("UPDATE alerts SET resolved_at = resolved_at - interval '301 seconds'")
    settle_jobs = [
        job for job in await queued_jobs(raw_db) if job["entrypoint"] == "incident.settle"
    ]
    assert settle_jobs
    await advance_clock(raw_db, max(job["due_in"] for job in settle_jobs))
    await drain_jobs(raw_db, paging)
    assert (await incidents(raw_db))[2]["status"] == "resolved"


async def test_reopen_window_reopens_incident(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    raw_db: asyncpg.Connection,
) -> None:
    await configure(client, auth, demo, reopen_window_seconds=600)
    await cycle(client, alertmanager_path, 0)
    firing = alert("f")
    firing["startsAt"] = "2026-11-30T08:05:00Z"
    answer = await client.post(alertmanager_path, json=body(firing))
    assert answer.json()["incidents_opened"] == []
    rows = await incidents(raw_db)
    assert [(row["status"], row["alert_count"]) for row in rows] == [("triggered", 2)]
    epoch = await raw_db.fetchval("SELECT escalation_epoch FROM incidents")
    assert epoch == 1
    jobs = await raw_db.fetch("SELECT payload FROM pgqueuer WHERE entrypoint = 'escalation.step'")
    assert len(jobs) == 1
    kinds = await raw_db.fetch("SELECT kind FROM timeline_entries ORDER BY at, id")
    assert "incident.reopened" in [row["kind"] for row in kinds]


async def test_retrigger_after_resolve_links_previous(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    raw_db: asyncpg.Connection,
) -> None:
    await cycle(client, alertmanager_path, 0)
    firing = alert("f")
    firing["startsAt"] = "2026-11-30T08:05:00Z"
    new_id = (await client.post(alertmanager_path, json=body(firing))).json()["incidents_opened"][0]
    rows = await incidents(raw_db)
    detail = (await client.get(f"/v1/incidents/{new_id}", headers=auth)).json()
    assert detail["previous_incident_id"] == str(rows[0]["id"])
    old = (await client.get(f"/v1/incidents/{rows[0]['id']}", headers=auth)).json()
    assert "reopened as incident #2" in old["timeline"][-1]["message"]


async def test_older_event_does_not_overwrite_newer(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
) -> None:
    pagerduty_like = alert("x")
    pagerduty_like["startsAt"] = "2026-11-30T09:00:00Z"
    pagerduty_like["annotations"]["summary"] = "newer"
    await client.post(alertmanager_path, json=body(pagerduty_like))
    older = dict(pagerduty_like, startsAt="2026-11-30T08:00:00Z", annotations={"summary": "older"})
    await client.post(alertmanager_path, json=body(older))
    row = await raw_db.fetchrow("SELECT summary, event_count FROM alerts")
    assert dict(row) == {"summary": "newer", "event_count": 2}


async def test_late_resolve_of_old_occurrence_is_ignored(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
) -> None:
    firing = alert("y")
    firing["startsAt"] = "2026-11-30T09:00:00Z"
    await client.post(alertmanager_path, json=body(firing))
    stale = dict(
        firing, status="resolved", startsAt="2026-11-30T07:00:00Z", endsAt="2026-11-30T07:30:00Z"
    )
    answer = await client.post(alertmanager_path, json=body(stale))
    assert answer.json()["events_ignored"] == 1
    assert await raw_db.fetchval("SELECT status FROM alerts") == "firing"
    assert (
        await raw_db.fetchval(
            "SELECT outcome FROM events ORDER BY received_at DESC, id DESC LIMIT 1"
        )
        == "ignored.stale"
    )


async def test_routed_alerts_use_target_settings(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    raw_db: asyncpg.Connection,
) -> None:
    created = await client.post(
        "/v1/services",
        headers=auth,
        json={
            "name": "Database",
            "grouping_mode": "by_fields",
            "grouping_fields": ["cluster"],
            "alert_threshold_count": 2,
            "alert_threshold_window_seconds": 300,
            "reopen_window_seconds": 600,
        },
    )
    assert created.status_code == 201, created.text
    database_id = created.json()["id"]
    rule = await client.post(
        "/v1/rules",
        headers=auth,
        json={
            "name": "database alerts",
            "conditions": {"matchers": ['team="db"']},
            "actions": {"route": {"service_id": database_id}},
        },
    )
    assert rule.status_code == 201, rule.text

    # The target's threshold keeps the first alert pending. The integration's service has
    # no threshold.
    first = await client.post(alertmanager_path, json=body(alert("a", team="db", cluster="eu")))
    assert first.json()["incidents_opened"] == []
    local = await client.post(alertmanager_path, json=body(alert("w", team="web"), group_key="w"))
    assert len(local.json()["incidents_opened"]) == 1

    # The target groups by cluster, so another sender group joins the same incident.
    second = await client.post(
        alertmanager_path, json=body(alert("b", team="db", cluster="eu"), group_key="other")
    )
    assert len(second.json()["incidents_opened"]) == 1
    routed_id = second.json()["incidents_opened"][0]
    incident = await raw_db.fetchrow(
        "SELECT service_id, alert_count, grouping FROM incidents WHERE id = $1::uuid", routed_id
    )
    assert str(incident["service_id"]) == database_id
    assert incident["alert_count"] == 2
    grouping = json.loads(incident["grouping"])
    assert grouping["mode"] == "by_fields"
    assert grouping["fields"] == {"cluster": "eu"}

    # Resolved and firing again within the target's reopen window: the same incident.
    for fingerprint, group_key in (("a", "g"), ("b", "other")):
        resolved = alert(fingerprint, status="resolved", team="db", cluster="eu")
        await client.post(alertmanager_path, json=body(resolved, group_key=group_key))
    assert (
        await raw_db.fetchval("SELECT status FROM incidents WHERE id = $1::uuid", routed_id)
        == "resolved"
    )
    again = alert("a", team="db", cluster="eu")
    again["startsAt"] = "2026-11-30T08:30:00Z"
    answer = await client.post(alertmanager_path, json=body(again))
    assert answer.json()["incidents_opened"] == []
    assert (
        await raw_db.fetchval("SELECT status FROM incidents WHERE id = $1::uuid", routed_id)
        == "triggered"
    )
