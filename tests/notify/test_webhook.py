from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.notify import template_renderer
from tests.support.fakes import signed_webhook, webhook_signature_valid
from tests.support.jobs import advance_clock, drain_jobs, queued_jobs
from tests.support.paging import (
    add_contact_method,
    attempt_rows,
    notification_rows,
    page_once,
    paging_context,
    trigger,
)
from tests.support.receiver import Receiver

pytestmark = pytest.mark.asyncio


async def repeat_demo_policy(raw_db: asyncpg.Connection) -> None:
    """Make the demo policy page its one level twice, so a next escalation step exists."""
    await raw_db.execute("UPDATE escalation_policies SET repeat_count = 1")


async def test_default_body_is_signed_json(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    method = await add_contact_method(client, auth, demo, kind="webhook", address=receiver.url)
    receiver.respond = signed_webhook(method["secret"])
    async with httpx.AsyncClient() as http:
        incident_id = await page_once(
            client, alertmanager_path, raw_db, paging_context(app, http), summary="Disk full"
        )

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    body = json.loads(request.body)
    assert body["event"] == "incident.triggered"
    assert body["incident"]["id"] == incident_id
    assert body["incident"]["title"] == "Disk full"
    assert body["links"]["view"].startswith("http://tocsin.test/a/")
    assert body["incident"]["url"].endswith(f"/v1/incidents/{incident_id}")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-tocsin-event"] == "incident.triggered"
    assert request.headers["idempotency-key"] == body["idempotency_key"]
    assert webhook_signature_valid(
        method["secret"], request.headers["x-tocsin-signature"], request.body
    )
    [notification] = await notification_rows(raw_db, "webhook")
    assert notification["status"] == "sent"
    [attempt] = await attempt_rows(raw_db, notification["id"])
    assert attempt["outcome"] == "success"
    assert attempt["status_code"] == 200
    assert attempt["target"] == f"http://127.0.0.1:{receiver.port}/***"


async def test_500_three_times_then_200(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    method = await add_contact_method(client, auth, demo, kind="webhook", address=receiver.url)
    receiver.respond = signed_webhook(method["secret"])
    receiver.statuses.extend([500, 500, 500])
    async with httpx.AsyncClient() as http:
        await page_once(client, alertmanager_path, raw_db, paging_context(app, http))

    assert len(receiver.requests) == 4
    keys = {request.headers["idempotency-key"] for request in receiver.requests}
    assert len(keys) == 1
    [notification] = await notification_rows(raw_db, "webhook")
    assert notification["status"] == "sent"
    assert notification["attempt_count"] == 4
    attempts = await attempt_rows(raw_db, notification["id"])
    assert [row["outcome"] for row in attempts] == ["retry", "retry", "retry", "success"]
    assert [row["status_code"] for row in attempts] == [500, 500, 500, 200]
    assert all(row["duration_ms"] >= 0 for row in attempts)
    assert attempts[0]["error"] == "receiver answered HTTP 500"


async def test_429_waits_for_retry_after(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    await add_contact_method(client, auth, demo, kind="webhook", address=receiver.url)
    receiver.statuses.append(429)
    receiver.headers_for_status[429] = {"Retry-After": "120"}
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http)
        await trigger(client, alertmanager_path, "DiskFull", "Disk full")
        await drain_jobs(raw_db, context)

        assert len(receiver.requests) == 1
        retries = [
            job for job in await queued_jobs(raw_db) if job["entrypoint"] == "notification.deliver"
        ]
        assert len(retries) == 1
        assert timedelta(seconds=100) < retries[0]["due_in"] <= timedelta(seconds=120)

        await advance_clock(raw_db, timedelta(seconds=121))
        await drain_jobs(raw_db, context)

    assert len(receiver.requests) == 2
    [notification] = await notification_rows(raw_db, "webhook")
    assert notification["status"] == "sent"
    attempts = await attempt_rows(raw_db, notification["id"])
    assert [row["status_code"] for row in attempts] == [429, 200]


async def test_400_is_not_retried(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    await add_contact_method(client, auth, demo, kind="webhook", address=receiver.url)
    await repeat_demo_policy(raw_db)
    receiver.statuses.append(400)
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http)
        incident_id = await trigger(client, alertmanager_path, "DiskFull", "Disk full")
        await drain_jobs(raw_db, context)

        assert len(receiver.requests) == 1
        [notification] = await notification_rows(raw_db, "webhook")
        assert notification["status"] == "failed"
        [attempt] = await attempt_rows(raw_db, notification["id"])
        assert attempt["outcome"] == "failed"
        assert attempt["status_code"] == 400
        timeline = await raw_db.fetch(
            "SELECT kind, message FROM timeline_entries WHERE incident_id = $1", incident_id
        )
        failed = [row["message"] for row in timeline if row["kind"] == "notification.failed"]
        assert len(failed) == 1
        assert "failed after 1 attempts" in failed[0]
        # The escalation goes on: its next step is queued whatever happened to the page.
        steps = [job for job in await queued_jobs(raw_db) if job["entrypoint"] == "escalation.step"]
        assert len(steps) == 1


async def test_gives_up_after_max_attempts(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    await add_contact_method(client, auth, demo, kind="webhook", address=receiver.url)
    await repeat_demo_policy(raw_db)
    receiver.statuses.extend([503] * 10)
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http, max_attempts=3)
        incident_id = await trigger(client, alertmanager_path, "DiskFull", "Disk full")
        for _ in range(4):
            await drain_jobs(raw_db, context)
            await advance_clock(raw_db, timedelta(minutes=5))

    first, second = await notification_rows(raw_db, "webhook")
    assert first["escalation_step"] == 0
    assert first["status"] == "failed"
    attempts = await attempt_rows(raw_db, first["id"])
    assert [row["outcome"] for row in attempts] == ["retry", "retry", "failed"]
    timeline = await raw_db.fetch(
        "SELECT kind, message FROM timeline_entries WHERE incident_id = $1 ORDER BY at, id",
        incident_id,
    )
    failures = [row["message"] for row in timeline if row["kind"] == "notification.failed"]
    assert "failed after 3 attempts" in failures[0]
    # The failed page did not stop the escalation: the repeat of level 1 paged again.
    assert second["escalation_step"] == 1


async def test_template_renders_the_body(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    template = (
        '{"text": {{ ("[" ~ (incident.priority or "-") ~ "] " ~ incident.title) | tojson }}, '
        '"state": {{ event | tojson }}}'
    )
    await add_contact_method(
        client, auth, demo, kind="webhook", address=receiver.url, settings={"template": template}
    )
    async with httpx.AsyncClient() as http:
        await page_once(
            client, alertmanager_path, raw_db, paging_context(app, http), summary='Disk "full"'
        )

    [request] = receiver.requests
    assert json.loads(request.body) == {
        "text": '[P1] Disk "full"',
        "state": "incident.triggered",
    }


async def test_plain_text_template(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    await add_contact_method(
        client,
        auth,
        demo,
        kind="webhook",
        address=receiver.url,
        settings={
            "template": "{{ incident.title }} is {{ incident.status }}",
            "content_type": "text/plain; charset=utf-8",
        },
    )
    async with httpx.AsyncClient() as http:
        await page_once(client, alertmanager_path, raw_db, paging_context(app, http))

    [request] = receiver.requests
    assert request.body == b"Disk full on db-1 is triggered"
    assert request.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ incident.title", "syntax error"),
        ("{{ incident.title }}", "not valid JSON"),
        ("{{ ''.__class__.__mro__ }}", "sample incident"),
    ],
)
async def test_invalid_template_is_rejected(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    template: str,
    message: str,
) -> None:
    user_id = demo["users"][0]["id"]
    response = await client.post(
        f"/v1/users/{user_id}/contact-methods",
        json={
            "kind": "webhook",
            "address": "http://127.0.0.1:9/hook",
            "settings": {"template": template},
        },
        headers=auth,
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "settings.template"
    assert message in response.json()["detail"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{% for i in range(100000000) %}x{% endfor %}", "Range too big"),
        ("{{ 'x' * 70000 }}", "larger than 65,536 bytes"),
        ("{{ 'x' * 100000000 }}", "sample incident"),
        ("{{ ('a' * 60000) | replace('', 'b' * 60000) }}", "MiB of memory"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursed too deeply"),
        ("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "nested too deeply"),
        (
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            "timed out after 0.5 seconds",
        ),
    ],
)
async def test_costly_template_is_rejected(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    template: str,
    message: str,
) -> None:
    monkeypatch.setattr(template_renderer.renderer(), "timeout_seconds", 0.5)
    user_id = demo["users"][0]["id"]
    response = await client.post(
        f"/v1/users/{user_id}/contact-methods",
        json={
            "kind": "webhook",
            "address": "http://127.0.0.1:9/hook",
            "settings": {"template": template, "content_type": "text/plain"},
        },
        headers=auth,
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "settings.template"
    assert message in response.json()["detail"]


@pytest.mark.parametrize(
    ("costly", "error"),
    [
        ("{{ 'x' * 70000 }}", "larger than 65,536 bytes"),
        (
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            "timed out after 0.5 seconds",
        ),
    ],
)
async def test_costly_render_fails_without_retry(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    costly: str,
    error: str,
) -> None:
    monkeypatch.setattr(template_renderer.renderer(), "timeout_seconds", 0.5)
    # The sample incident that saving renders has number 0, so only real pages are costly.
    template = f"{{% if incident.number > 0 %}}{costly}{{% else %}}sample{{% endif %}}"
    await add_contact_method(
        client,
        auth,
        demo,
        kind="webhook",
        address=receiver.url,
        settings={"template": template, "content_type": "text/plain"},
    )
    async with httpx.AsyncClient() as http:
        await page_once(client, alertmanager_path, raw_db, paging_context(app, http))

    assert receiver.requests == []
    [notification] = await notification_rows(raw_db, "webhook")
    assert notification["status"] == "failed"
    [attempt] = await attempt_rows(raw_db, notification["id"])
    assert attempt["outcome"] == "failed"
    assert attempt["error"].startswith("body template failed: ")
    assert error in attempt["error"]


async def test_rotated_secret_signs_twice(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    method = await add_contact_method(client, auth, demo, kind="webhook", address=receiver.url)
    old_secret = method["secret"]
    rotated = await client.post(
        f"/v1/contact-methods/{method['id']}/rotate-secret?grace_hours=1", headers=auth
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != old_secret
    async with httpx.AsyncClient() as http:
        await page_once(client, alertmanager_path, raw_db, paging_context(app, http))

    [request] = receiver.requests
    header = request.headers["x-tocsin-signature"]
    assert header.count("v1=") == 2
    assert webhook_signature_valid(new_secret, header, request.body)
    assert webhook_signature_valid(old_secret, header, request.body)
    assert not webhook_signature_valid("some-other-secret-value", header, request.body)


async def test_expired_previous_secret_stops_signing(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    method = await add_contact_method(client, auth, demo, kind="webhook", address=receiver.url)
    rotated = await client.post(
        f"/v1/contact-methods/{method['id']}/rotate-secret?grace_hours=0", headers=auth
    )
    assert rotated.status_code == 200
    async with httpx.AsyncClient() as http:
        await page_once(client, alertmanager_path, raw_db, paging_context(app, http))

    [request] = receiver.requests
    header = request.headers["x-tocsin-signature"]
    assert header.count("v1=") == 1
    assert webhook_signature_valid(rotated.json()["secret"], header, request.body)
    assert not webhook_signature_valid(method["secret"], header, request.body)
