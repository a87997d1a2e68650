"""The notification log, contact method settings, tests and callbacks through the REST API."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.support import fakes
from tests.support.jobs import drain_jobs
from tests.support.paging import add_contact_method, page_once, paging_context
from tests.support.receiver import Receiver
from tests.support.verification import code_from_receiver, verify_contact_method

pytestmark = pytest.mark.asyncio

SLACK_TOKEN = "xoxb-api-test-token"
SLACK_SIGNING_SECRET = "slack-signing-secret-for-tests"


async def test_notifications_list_attempts(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    method = await add_contact_method(client, auth, demo, kind="webhook", address=receiver.url)
    receiver.statuses.extend([500, 500, 500])
    async with httpx.AsyncClient() as http:
        incident_id = await page_once(client, alertmanager_path, raw_db, paging_context(app, http))

    response = await client.get(f"/v1/incidents/{incident_id}/notifications", headers=auth)
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    assert item["contact_method_id"] == method["id"]
    assert item["notifier"] == "webhook"
    assert item["event"] == "incident.triggered"
    assert item["status"] == "sent"
    assert item["attempt_count"] == 4
    assert [attempt["attempt"] for attempt in item["attempts"]] == [1, 2, 3, 4]
    assert [attempt["status_code"] for attempt in item["attempts"]] == [500, 500, 500, 200]
    assert [attempt["outcome"] for attempt in item["attempts"]] == [
        "retry",
        "retry",
        "retry",
        "success",
    ]
    assert item["attempts"][0]["error"] == "receiver answered HTTP 500"
    assert item["attempts"][0]["target"] == f"{receiver.base_url}/***"
    assert response.json()["next_cursor"] is None


async def test_notifications_pages_with_cursor(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    await add_contact_method(client, auth, demo, kind="webhook", address=receiver.url)
    await add_contact_method(client, auth, demo, kind="webhook", address=receiver.url, only=False)
    async with httpx.AsyncClient() as http:
        incident_id = await page_once(client, alertmanager_path, raw_db, paging_context(app, http))

    path = f"/v1/incidents/{incident_id}/notifications?limit=1"
    first = await client.get(path, headers=auth)
    assert first.status_code == 200
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    second = await client.get(f"{path}&cursor={cursor}", headers=auth)
    assert second.status_code == 200
    assert second.json()["next_cursor"] is None
    ids = {first.json()["items"][0]["id"], second.json()["items"][0]["id"]}
    assert len(ids) == 2


async def test_notifications_of_unknown_incident(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.get(
        "/v1/incidents/01900000-0000-7000-8000-000000000000/notifications", headers=auth
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "incident_id"


async def test_unknown_kind_is_rejected(
    client: httpx.AsyncClient, auth: dict[str, str], demo: dict[str, Any]
) -> None:
    user_id = demo["users"][0]["id"]
    response = await client.post(
        f"/v1/users/{user_id}/contact-methods",
        json={"kind": "pigeon", "address": "roof"},
        headers=auth,
    )
    assert response.status_code == 422
    assert response.json()["field"] == "kind"
    assert "slack" in response.json()["detail"]


@pytest.mark.parametrize(
    ("kind", "address", "contact_settings", "field"),
    [
        ("webhook", "ftp://example.com/hook", {}, "address"),
        ("webhook", "https://example.com/hook", {"colour": "red"}, "settings.colour"),
        ("slack", "not a channel!", {}, "address"),
        ("slack", "C0123ABCD", {"token": "short"}, "settings.token"),
        ("teams", "teams-webhook", {}, "address"),
        ("discord", "https://discord.test/api/webhooks/1/x", {"username": 5}, "settings.username"),
        ("telegram", "my chat", {}, "address"),
        ("sms", "555-0123", {}, "address"),
        ("sms", "+14155550123", {"voice": True}, "settings.voice"),
        ("email", "oncall@example.com", {"cc": "x@example.com"}, "settings"),
    ],
)
async def test_invalid_settings_are_rejected(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    kind: str,
    address: str,
    contact_settings: dict[str, Any],
    field: str,
) -> None:
    user_id = demo["users"][0]["id"]
    response = await client.post(
        f"/v1/users/{user_id}/contact-methods",
        json={"kind": kind, "address": address, "settings": contact_settings},
        headers=auth,
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == field


async def test_slack_token_is_encrypted_and_kept(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    receiver.respond = fakes.slack_web_api(SLACK_TOKEN)
    method = await add_contact_method(
        client, auth, demo, kind="slack", address="C0123ABCD", settings={"token": SLACK_TOKEN}
    )
    assert method["settings"] == {}
    assert SLACK_TOKEN not in json.dumps(method)
    stored = await raw_db.fetchval(
        "SELECT secret_settings_encrypted FROM contact_methods WHERE id = $1", method["id"]
    )
    assert SLACK_TOKEN not in stored

    # A new channel without the token keeps the stored token.
    patched = await client.patch(
        f"/v1/contact-methods/{method['id']}", json={"address": "C0999ZZZZ"}, headers=auth
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["address"] == "C0999ZZZZ"
    options = {"slack": {"api_base_url": f"{receiver.base_url}/api"}}
    async with httpx.AsyncClient() as http:
        await page_once(client, alertmanager_path, raw_db, paging_context(app, http, options))

    [request] = receiver.requests
    assert request.headers["authorization"] == f"Bearer {SLACK_TOKEN}"
    assert request.json()["channel"] == "C0999ZZZZ"


async def test_patch_validates_settings(
    client: httpx.AsyncClient, auth: dict[str, str], demo: dict[str, Any], receiver: Receiver
) -> None:
    method = await add_contact_method(client, auth, demo, kind="webhook", address=receiver.url)
    response = await client.patch(
        f"/v1/contact-methods/{method['id']}",
        json={"settings": {"template": "{% if %}"}},
        headers=auth,
    )
    assert response.status_code == 422
    assert response.json()["field"] == "settings.template"


async def test_test_message_marks_verified(
    client: httpx.AsyncClient, auth: dict[str, str], demo: dict[str, Any], receiver: Receiver
) -> None:
    method = await add_contact_method(client, auth, demo, kind="webhook", address=receiver.url)
    receiver.respond = fakes.signed_webhook(method["secret"])

    response = await client.post(f"/v1/contact-methods/{method['id']}/test", headers=auth)

    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True
    assert response.json()["status_code"] == 200
    assert response.json()["verified_at"] is not None
    [request] = receiver.requests
    assert json.loads(request.body)["event"] == "notification.test"
    listed = await client.get(f"/v1/users/{demo['users'][0]['id']}/contact-methods", headers=auth)
    [verified] = [item for item in listed.json()["items"] if item["id"] == method["id"]]
    assert verified["verified_at"] is not None


async def test_test_message_does_not_verify_sms(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway = {"provider": "http", "gateway_url": receiver.url, "from_number": "Tocsin"}
    settings = app.state.settings.model_copy(update={"notifiers": {"sms": gateway}})
    monkeypatch.setattr(app.state, "settings", settings)
    method = await add_contact_method(client, auth, demo, kind="sms", address="+14155550123")

    response = await client.post(f"/v1/contact-methods/{method['id']}/test", headers=auth)

    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True
    # The gateway took the text; only the code shows that the owner gets it.
    assert response.json()["verified_at"] is None
    [request] = receiver.requests
    assert request.json()["to"] == "+14155550123"


async def test_failed_test_message_reports_error(
    client: httpx.AsyncClient, auth: dict[str, str], demo: dict[str, Any], receiver: Receiver
) -> None:
    method = await add_contact_method(client, auth, demo, kind="webhook", address=receiver.url)
    receiver.statuses.append(404)

    response = await client.post(f"/v1/contact-methods/{method['id']}/test", headers=auth)

    assert response.status_code == 200
    assert response.json() == {
        "ok": False,
        "status_code": 404,
        "error": "receiver answered HTTP 404",
        "verified_at": None,
    }


async def test_rotating_a_slack_secret_conflicts(
    client: httpx.AsyncClient, auth: dict[str, str], demo: dict[str, Any]
) -> None:
    method = await add_contact_method(client, auth, demo, kind="slack", address="C0123ABCD")
    response = await client.post(f"/v1/contact-methods/{method['id']}/rotate-secret", headers=auth)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"


def slack_signed(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    base = f"v0:{timestamp}:".encode() + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def test_slack_callback_checks_signature(app: FastAPI, client: httpx.AsyncClient) -> None:
    app.state.settings = app.state.settings.model_copy(
        update={"notifiers": {"slack": {"signing_secret": SLACK_SIGNING_SECRET}}}
    )
    payload = {
        "type": "block_actions",
        "user": {"id": "U123"},
        "actions": [{"action_id": "tocsin_view", "value": "view"}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    now = int(time.time())

    accepted = await client.post(
        "/notifiers/slack/callback",
        content=body,
        headers=slack_signed(body, SLACK_SIGNING_SECRET, now),
    )
    forged = await client.post(
        "/notifiers/slack/callback", content=body, headers=slack_signed(body, "wrong", now)
    )
    replayed = await client.post(
        "/notifiers/slack/callback",
        content=body,
        headers=slack_signed(body, SLACK_SIGNING_SECRET, now - 600),
    )

    assert accepted.status_code == 200
    assert forged.status_code == 401
    assert replayed.status_code == 401


async def test_callback_of_notifier_without_hook(client: httpx.AsyncClient) -> None:
    response = await client.post("/notifiers/email/callback", content=b"{}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_acknowledge_skips_sms(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    sid, token = "AC" + "2" * 32, "token-for-ack-test"
    receiver.respond = fakes.twilio_api(sid, token)
    method = await add_contact_method(client, auth, demo, kind="sms", address="+14155550123")
    options = {
        "sms": {
            "api_base_url": receiver.base_url,
            "account_sid": sid,
            "auth_token": token,
            "from_number": "+14155550100",
        }
    }
    await verify_contact_method(
        app,
        client,
        auth,
        raw_db,
        method["id"],
        options=options,
        read_code=code_from_receiver(receiver),
    )
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http, options)
        incident_id = await page_once(client, alertmanager_path, raw_db, context)
        await client.post(f"/v1/incidents/{incident_id}/acknowledge", headers=auth)
        await drain_jobs(raw_db, context)
        await client.post(f"/v1/incidents/{incident_id}/resolve", headers=auth)
        await drain_jobs(raw_db, context)

    bodies = [request.form()["Body"] for request in receiver.requests]
    assert len(bodies) == 2
    assert bodies[1].startswith("RESOLVED P1 #1")
