"""The incident lifecycle: transitions, snooze, timeouts, sweeps, notes, merge, postmortems."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app.incidents import lifecycle
from app.incidents.paging import PagingContext
from tests.incidents.test_grouping import alert, body, configure
from tests.incidents.test_paging import add_webhook
from tests.support.jobs import advance_clock, drain_jobs, queued_jobs
from tests.support.receiver import Receiver

pytestmark = pytest.mark.asyncio


async def open_incident(
    client: httpx.AsyncClient, path: str, fingerprint: str = "a", group_key: str = "g"
) -> str:
    answer = await client.post(path, json=body(alert(fingerprint), group_key=group_key))
    incident_id: str = answer.json()["incidents_opened"][0]
    return incident_id


async def kinds(raw_db: asyncpg.Connection, incident_id: str) -> list[str]:
    rows = await raw_db.fetch(
        "SELECT kind FROM timeline_entries WHERE incident_id = $1 ORDER BY at, id", incident_id
    )
    return [row["kind"] for row in rows]


async def test_invalid_transitions_are_409_with_state(
    client: httpx.AsyncClient, alertmanager_path: str, auth: dict[str, str]
) -> None:
    incident_id = await open_incident(client, alertmanager_path)
    await client.post(f"/v1/incidents/{incident_id}/resolve", headers=auth)
    for path, payload in [("acknowledge", None), ("snooze", {"minutes": 10})]:
        answer = await client.post(
            f"/v1/incidents/{incident_id}/{path}", json=payload, headers=auth
        )
        assert answer.status_code == 409, path
        assert answer.json()["field"] == "status"
        assert "is resolved" in answer.json()["detail"]
    early = await client.put(
        f"/v1/incidents/{incident_id}/postmortem", json={"summary": "x"}, headers=auth
    )
    assert early.status_code == 200
    closed = await client.patch(
        f"/v1/incidents/{incident_id}", json={"priority": "P3"}, headers=auth
    )
    assert closed.status_code == 409
    assert "is closed" in closed.json()["detail"]


async def test_snooze_then_trigger_again_and_repage(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    receiver: Receiver,
    paging: PagingContext,
    raw_db: asyncpg.Connection,
) -> None:
    await add_webhook(client, auth, demo, receiver.url)
    incident_id = await open_incident(client, alertmanager_path)
    await drain_jobs(raw_db, paging)
    assert len(receiver.requests) == 1

    snoozed = await client.post(
        f"/v1/incidents/{incident_id}/snooze", json={"minutes": 60}, headers=auth
    )
    assert snoozed.status_code == 200, snoozed.text
    assert snoozed.json()["status"] == "acknowledged"
    assert snoozed.json()["snoozed_until"] is not None
    [job] = await queued_jobs(raw_db)
    assert job["entrypoint"] == "incident.snooze_ended"
    assert timedelta(minutes=59) < job["due_in"] <= timedelta(minutes=60)

    await advance_clock(raw_db, timedelta(minutes=60))
    await drain_jobs(raw_db, paging)
    detail = (await client.get(f"/v1/incidents/{incident_id}", headers=auth)).json()
    assert detail["status"] == "triggered"
    assert detail["snoozed_until"] is None
    assert len(receiver.requests) == 2
    assert json.loads(receiver.requests[1].body)["event"] == "incident.triggered"
    assert "incident.snooze_ended" in await kinds(raw_db, incident_id)


async def test_snooze_validation(
    client: httpx.AsyncClient, alertmanager_path: str, auth: dict[str, str]
) -> None:
    incident_id = await open_incident(client, alertmanager_path)
    both = await client.post(
        f"/v1/incidents/{incident_id}/snooze",
        json={"minutes": 5, "until": "2030-01-01T00:00:00Z"},
        headers=auth,
    )
    assert both.status_code == 422
    past = await client.post(
        f"/v1/incidents/{incident_id}/snooze", json={"until": "2020-01-01T00:00:00Z"}, headers=auth
    )
    assert past.status_code == 422
    assert past.json()["field"] == "until"


async def test_acknowledgement_timeout_restarts_escalation(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    receiver: Receiver,
    paging: PagingContext,
    raw_db: asyncpg.Connection,
) -> None:
    await configure(client, auth, demo, acknowledge_timeout_seconds=1800)
    await add_webhook(client, auth, demo, receiver.url)
    incident_id = await open_incident(client, alertmanager_path)
    await drain_jobs(raw_db, paging)
    await client.post(f"/v1/incidents/{incident_id}/acknowledge", headers=auth)
    await drain_jobs(raw_db, paging)
    timeouts = [
        job
        for job in await queued_jobs(raw_db)
        if job["entrypoint"] == "incident.acknowledge_timeout"
    ]
    assert len(timeouts) == 1
    await advance_clock(raw_db, timedelta(minutes=30))
    await drain_jobs(raw_db, paging)
    detail = (await client.get(f"/v1/incidents/{incident_id}", headers=auth)).json()
    assert detail["status"] == "triggered"
    assert detail["acknowledged_at"] is None
    events = [json.loads(request.body)["event"] for request in receiver.requests]
    assert events == ["incident.triggered", "incident.acknowledged", "incident.triggered"]
    assert "incident.acknowledgement_timed_out" in await kinds(raw_db, incident_id)


async def test_acknowledgement_timeout_ignored_after_resolve(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    paging: PagingContext,
    raw_db: asyncpg.Connection,
) -> None:
    await configure(client, auth, demo, acknowledge_timeout_seconds=60)
    incident_id = await open_incident(client, alertmanager_path)
    await client.post(f"/v1/incidents/{incident_id}/acknowledge", headers=auth)
    await client.post(f"/v1/incidents/{incident_id}/resolve", headers=auth)
    await advance_clock(raw_db, timedelta(minutes=2))
    await drain_jobs(raw_db, paging)
    assert await raw_db.fetchval("SELECT status FROM incidents") == "resolved"


async def test_auto_resolve_and_late_acknowledge(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    paging: PagingContext,
    raw_db: asyncpg.Connection,
) -> None:
    await configure(client, auth, demo, auto_resolve_seconds=600)
    incident_id = await open_incident(client, alertmanager_path)
    await lifecycle.sweep(paging)
    assert await raw_db.fetchval("SELECT status FROM incidents") == "triggered"
    await raw_db.execute(
        "UPDATE incidents SET created_at = created_at - interval '11 minutes';"
        "UPDATE alerts SET last_seen_at = last_seen_at - interval '11 minutes'"
    )
    await lifecycle.sweep(paging)
    assert await raw_db.fetchval("SELECT status FROM incidents") == "resolved"
    assert await raw_db.fetchval("SELECT status FROM alerts") == "resolved"
    late = await client.post(f"/v1/incidents/{incident_id}/acknowledge", headers=auth)
    assert late.status_code == 409
    assert await raw_db.fetchval("SELECT status FROM incidents") == "resolved"
    assert "incidents.sweep" in [job["entrypoint"] for job in await queued_jobs(raw_db)]


async def test_retention_closes_resolved(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    demo: dict[str, Any],
    paging: PagingContext,
    raw_db: asyncpg.Connection,
) -> None:
    await configure(client, auth, demo, close_after_seconds=86400)
    incident_id = await open_incident(client, alertmanager_path)
    await client.post(f"/v1/incidents/{incident_id}/resolve", headers=auth)
    await raw_db.execute("UPDATE incidents SET resolved_at = resolved_at - interval '2 days'")
    await lifecycle.sweep(paging)
    assert await raw_db.fetchval("SELECT status FROM incidents") == "closed"
    assert (await kinds(raw_db, incident_id))[-1] == "incident.closed"


async def test_priority_change_and_notes(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    raw_db: asyncpg.Connection,
) -> None:
    incident_id = await open_incident(client, alertmanager_path)
    changed = await client.patch(
        f"/v1/incidents/{incident_id}",
        json={"priority": "P3", "title": "Checkout errors"},
        headers=auth,
    )
    assert changed.status_code == 200
    assert changed.json()["priority"] == "P3"
    invalid = await client.patch(
        f"/v1/incidents/{incident_id}", json={"priority": "P9"}, headers=auth
    )
    assert invalid.status_code == 422
    note = await client.post(
        f"/v1/incidents/{incident_id}/notes", json={"text": "Rolled back 1.2.3"}, headers=auth
    )
    assert note.status_code == 201
    assert note.json()["actor_name"] == "Demo admin"

    page = (await client.get(f"/v1/incidents/{incident_id}/timeline?limit=3", headers=auth)).json()
    assert len(page["items"]) == 3
    rest = (
        await client.get(
            f"/v1/incidents/{incident_id}/timeline?cursor={page['next_cursor']}", headers=auth
        )
    ).json()
    all_kinds = [entry["kind"] for entry in page["items"] + rest["items"]]
    assert all_kinds == [
        "incident.triggered",
        "alert.triggered",
        "rules.applied",
        "incident.title_changed",
        "incident.priority_changed",
        "note.added",
    ]
    assert rest["next_cursor"] is None


async def test_merge_moves_alerts(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    raw_db: asyncpg.Connection,
) -> None:
    target = await open_incident(client, alertmanager_path, "a", "g1")
    source = await open_incident(client, alertmanager_path, "b", "g2")
    merged = await client.post(
        f"/v1/incidents/{target}/merge", json={"incident_ids": [source]}, headers=auth
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["alert_count"] == 2
    source_detail = (await client.get(f"/v1/incidents/{source}", headers=auth)).json()
    assert source_detail["status"] == "resolved"
    assert source_detail["merged_into_id"] == target
    assert await raw_db.fetchval("SELECT count(*) FROM alerts WHERE incident_id = $1", target) == 2
    assert "incident.merged" in await kinds(raw_db, target)
    assert "incident.merged_into" in await kinds(raw_db, source)
    itself = await client.post(
        f"/v1/incidents/{target}/merge", json={"incident_ids": [target]}, headers=auth
    )
    assert itself.status_code == 422
    again = await client.post(
        f"/v1/incidents/{target}/merge", json={"incident_ids": [source]}, headers=auth
    )
    assert again.status_code == 409
    assert "already merged into incident" in again.json()["detail"]
    # The moved alert resolving now counts for the target.
    resolved = dict(alert("b"), status="resolved", endsAt="2026-11-30T08:10:00Z")
    await client.post(alertmanager_path, json=body(resolved, group_key="g2"))
    assert (
        await raw_db.fetchval("SELECT status FROM incidents WHERE id = $1", target) == "triggered"
    )


async def test_subscriber_gets_state_changes(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    auth: dict[str, str],
    receiver: Receiver,
    paging: PagingContext,
    raw_db: asyncpg.Connection,
) -> None:
    user = await client.post(
        "/v1/users", json={"name": "Stake Holder", "email": "stake@example.com"}, headers=auth
    )
    user_id = user.json()["id"]
    await client.post(
        f"/v1/users/{user_id}/contact-methods",
        json={"kind": "webhook", "address": receiver.url},
        headers=auth,
    )
    incident_id = await open_incident(client, alertmanager_path)
    subscribed = await client.post(
        f"/v1/incidents/{incident_id}/subscribers", json={"user_id": user_id}, headers=auth
    )
    assert subscribed.status_code == 204
    listed = (await client.get(f"/v1/incidents/{incident_id}/subscribers", headers=auth)).json()
    assert [entry["email"] for entry in listed] == ["stake@example.com"]
    await drain_jobs(raw_db, paging)
    assert receiver.requests == []  # subscribers are not paged
    await client.post(f"/v1/incidents/{incident_id}/acknowledge", headers=auth)
    await drain_jobs(raw_db, paging)
    await client.post(f"/v1/incidents/{incident_id}/resolve", headers=auth)
    await drain_jobs(raw_db, paging)
    events = [json.loads(request.body)["event"] for request in receiver.requests]
    assert events == ["incident.acknowledged", "incident.resolved"]
    removed = await client.delete(
        f"/v1/incidents/{incident_id}/subscribers/{user_id}", headers=auth
    )
    assert removed.status_code == 204


async def test_postmortem_json_and_markdown(
    client: httpx.AsyncClient, alertmanager_path: str, auth: dict[str, str]
) -> None:
    incident_id = await open_incident(client, alertmanager_path)
    missing = await client.get(f"/v1/incidents/{incident_id}/postmortem", headers=auth)
    assert missing.status_code == 404
    await client.post(f"/v1/incidents/{incident_id}/resolve", headers=auth)
    postmortem = {
        "summary": "Checkout returned 5xx for 20 minutes.",
        "impact": "3% of orders failed.",
        "root_cause": "A connection pool limit set too low in release 1.2.3.",
        "lessons_learned": "Load-test pool settings.",
        "action_items": [
            {"description": "Add a pool saturation alert", "owner": "Ana", "due_date": "2026-12-31"}
        ],
    }
    saved = await client.put(
        f"/v1/incidents/{incident_id}/postmortem", json=postmortem, headers=auth
    )
    assert saved.status_code == 200, saved.text
    assert [entry["kind"] for entry in saved.json()["timeline"]] == [
        "incident.triggered",
        "incident.resolved",
        "incident.closed",
    ]
    detail = (await client.get(f"/v1/incidents/{incident_id}", headers=auth)).json()
    assert detail["status"] == "closed"

    markdown = await client.get(
        f"/v1/incidents/{incident_id}/postmortem?format=markdown", headers=auth
    )
    assert markdown.headers["content-type"].startswith("text/markdown")
    text = markdown.text
    assert text.startswith("# Postmortem: incident #1")
    assert "## Root cause\n\nA connection pool limit set too low in release 1.2.3." in text
    assert "- [ ] Add a pool saturation alert (owner: Ana), due 2026-12-31" in text
    by_accept = await client.get(
        f"/v1/incidents/{incident_id}/postmortem", headers={**auth, "Accept": "text/markdown"}
    )
    assert by_accept.text == text

    bad = dict(postmortem, timeline_entry_ids=["01a242c6-53c5-783f-a266-c87014a9d519"])
    rejected = await client.put(f"/v1/incidents/{incident_id}/postmortem", json=bad, headers=auth)
    assert rejected.status_code == 422
    assert rejected.json()["field"] == "timeline_entry_ids.0"


async def test_postmortem_markdown_escapes_sender_text(
    client: httpx.AsyncClient, demo: dict[str, Any], auth: dict[str, str]
) -> None:
    key = demo["services"][0]["integrations"]["generic"]["key"]
    title = "Disk full\n\n## Root cause\n\nIt was <img src=x onerror=alert(1)> [x](javascript:y)"
    opened = await client.post(
        f"/ingest/generic/{key}", json={"title": title, "dedup_key": "markdown"}
    )
    incident_id = opened.json()["incidents_opened"][0]
    await client.post(f"/v1/incidents/{incident_id}/resolve", headers=auth)
    await client.put(f"/v1/incidents/{incident_id}/postmortem", json={"summary": "s"}, headers=auth)

    text = (
        await client.get(f"/v1/incidents/{incident_id}/postmortem?format=markdown", headers=auth)
    ).text

    heading = text.splitlines()[0]
    assert heading.startswith("# Postmortem: incident #1 Disk full \\#\\# Root cause")
    assert text.count("## Root cause") == 1
    # Markup survives only escaped: every < and [ is preceded by a backslash.
    assert re.search(r"(?<!\\)[<\[]", text) is None
    assert "\\[x\\](javascript:y)" in text
